"""One directory, one run: an earlier run's files are never added to or overwritten."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig

from optlab.errors import OutputDirInUse
from optlab.history import HISTORY_FILE
from optlab.hydra_context import launched_rank
from optlab.results import RESULT_FILE

log = logging.getLogger(__name__)


def requeued() -> bool:
    """Whether SLURM restarted this job (``scontrol requeue``, preemption, its time limit)."""
    return os.environ.get("SLURM_RESTART_COUNT", "0") not in ("", "0")


def earlier_run_file(output_dir: Path) -> Path | None:
    """A file that shows ``output_dir`` already holds a run: its record, events or checkpoints."""
    candidates = [output_dir / RESULT_FILE, output_dir / HISTORY_FILE]
    candidates += sorted(output_dir.glob("events.out.tfevents.*")) + sorted(output_dir.glob("checkpoints/*.ckpt"))
    return next((path for path in candidates if path.is_file()), None)


def in_use_message(output_dir: Path, earlier: Path) -> str:
    return (
        f"output directory {output_dir} already holds an earlier run ({earlier.relative_to(output_dir)}); "
        "pick a new hydra.run.dir (to continue that run, pass ckpt_path=.../last.ckpt instead)"
    )


def ensure_fresh_output_dir(output_dir: Path) -> None:
    """Refuse to add a second event file or overwrite checkpoints in an earlier run's directory."""
    if launched_rank() != 0 or requeued():  # DDP's extra ranks share rank 0's directory; a requeued job is its own
        return
    if earlier := earlier_run_file(output_dir):
        raise OutputDirInUse(in_use_message(output_dir, earlier))


def resume_from(cfg: DictConfig, output_dir: Path) -> str | None:
    """``ckpt_path``, or for a job SLURM requeued, the ``last.ckpt`` its earlier attempt saved in this directory."""
    if cfg.get("ckpt_path"):
        return str(cfg.ckpt_path)
    last = output_dir / "checkpoints" / "last.ckpt"
    if requeued() and last.is_file():
        log.info("requeued by SLURM (restart %s): resuming from %s", os.environ["SLURM_RESTART_COUNT"], last)
        return str(last)
    return None
