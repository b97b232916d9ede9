"""OmegaConf resolvers used by the configs, registered when the package is imported."""

from __future__ import annotations

import os
import re
from pathlib import Path

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


def wandb_offline() -> bool:
    """True unless this machine is logged in to Weights & Biases (an API key in the environment or ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return False
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return not (netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"))


def slurm_gpus(accelerator: str, devices: object) -> object:
    """GPUs per node to ask SLURM for: the devices when the run trains on GPUs, none otherwise."""
    return devices if accelerator in ("gpu", "cuda") else None


def mode(direction: str) -> str:
    """``optimized_direction`` as Lightning's callbacks spell it: ``minimize`` -> ``min``."""
    return {"minimize": "min", "maximize": "max"}.get(direction, direction)


def evaluation_home(ckpt_path: str | None, log_dir: str) -> str:
    """Where ``eval.py`` writes: in the run that wrote the checkpoint (``<run>/eval/``), so that TensorBoard
    lists an evaluation under its run rather than among the training runs; ``<log_dir>/eval/`` for a
    checkpoint from anywhere else."""
    run = Path(ckpt_path).parent.parent if ckpt_path else None
    return str(run / "eval") if run is not None and (run / ".hydra").is_dir() else f"{log_dir}/eval"


RESOLVERS = {
    "optlab.evaluation_home": evaluation_home,
    "optlab.mode": mode,
    "optlab.path_safe": path_safe,
    "optlab.name_suffix": name_suffix,
    "optlab.basename": lambda path: Path(path).name,
    "optlab.absolute": lambda path: str(Path(path).absolute()),
    "optlab.wandb_offline": wandb_offline,
    "optlab.slurm_gpus": slurm_gpus,
}


def register() -> None:
    for name, function in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


register()
