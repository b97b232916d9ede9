"""The composed config as a tree, groups first: saved with every run, printed on request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from optlab.hydra_context import launched_rank

GROUP_ORDER = ("data", "model", "optimizer", "scheduler", "trainer", "callbacks", "logger", "paths")
TREE_FILE = "config_tree.txt"


def config_tree(cfg: DictConfig) -> Any:
    """A ``rich`` tree of the resolved config: every value as the run uses it."""
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    keys = [k for k in GROUP_ORDER if k in cfg] + [k for k in cfg if k not in GROUP_ORDER]
    for key in keys:
        node = cfg[key]
        text = OmegaConf.to_yaml(node, resolve=True) if isinstance(node, DictConfig) else f"{node}\n"
        tree.add(key).add(Syntax(text.rstrip(), "yaml", theme="ansi_dark", background_color="default"))
    return tree


def print_config_tree(cfg: DictConfig) -> None:
    from rich import print as rich_print

    rich_print(config_tree(cfg))


def save_config_tree(cfg: DictConfig, output_dir: Path) -> None:
    """Plain text next to ``.hydra/config.yaml`` (which keeps the interpolations unresolved), printed with ``print_config``.

    Rank 0's alone: DDP's other ranks share its directory.
    """
    from rich.console import Console

    if launched_rank() != 0:
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    with (output_dir / TREE_FILE).open("w") as stream:
        Console(file=stream, color_system=None, width=120).print(config_tree(cfg))
    if cfg.get("print_config"):
        print_config_tree(cfg)
