"""OmegaConf resolvers used by the configs, registered when the package is imported."""

from __future__ import annotations

import re

from omegaconf import OmegaConf


def path_safe(text: str) -> str:
    """Make an override string one directory name that Hydra also accepts unquoted as a value.

    Slashes (``data.path-/a/b``) and characters Hydra's override grammar reserves (``=``,
    ``,``, quotes, brackets) become ``_``.
    """
    return re.sub(r"[^\w.+-]", "_", text).strip("_")[:120]


def name_suffix(overrides: str) -> str:
    """``_optimizer-sgd`` for a run with overrides, nothing for the default run."""
    return f"_{path_safe(overrides)}" if overrides else ""


def register() -> None:
    for name, function in {"optlab.path_safe": path_safe, "optlab.name_suffix": name_suffix}.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


register()
