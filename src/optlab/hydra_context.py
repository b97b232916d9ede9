"""What Hydra and the launcher say about this job: a sweep or not, the group choices, the overrides, the rank."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override


def in_sweep() -> bool:
    """Whether this process runs a job of a Hydra multirun (-m) sweep."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def hydra_choices() -> dict[str, str]:
    """The group choices Hydra composed the config from (``optimizer: adam``), if Hydra did."""
    if not HydraConfig.initialized():
        return {}
    return {group: str(choice) for group, choice in HydraConfig.get().runtime.choices.items() if choice is not None}


def task_overrides() -> list[Override]:
    """The overrides this job was given (a sweep job's included), parsed; none outside Hydra."""
    if not HydraConfig.initialized():
        return []
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(list(HydraConfig.get().overrides.task))


def command_line_overrides() -> list[tuple[str, str]]:
    """``(key, value)`` of each override this job was given (``optimizer=sgd`` -> ``("optimizer", "sgd")``)."""
    return [(override.key_or_group, override.input_line.partition("=")[2]) for override in task_overrides()]


def resume_command(checkpoint: Path) -> str:
    """``python train.py <this job's overrides> ckpt_path=<checkpoint>``: the command that carries on this run.

    The job's own overrides (a sweep job's included), so the resumed run trains what this one did;
    Hydra's (``hydra.run.dir``, the launcher) are left out: the resumed run gets a directory of its own.
    """
    script = f"{HydraConfig.get().job.name}.py" if HydraConfig.initialized() else "train.py"
    overrides = [override.input_line for override in task_overrides() if override.key_or_group != "ckpt_path"]
    return shlex.join(["python", script, *overrides, f"ckpt_path={checkpoint}"])


def override_group(key: str) -> str:
    """The config group an override key belongs to: ``optimizer.lr`` -> ``optimizer``."""
    return key.split(".", 1)[0].split("/", 1)[0].split("@", 1)[0]


def launched_rank() -> int:
    """This process's rank as the launcher that started it says (0 for a plain run), known before Lightning starts."""
    for variable in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        value = os.environ.get(variable, "0")
        if value.isdigit() and int(value) != 0:
            return int(value)
    return 0
