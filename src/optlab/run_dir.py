"""One directory, one run: a run claims its directory before writing there, and never adds to an earlier run's files."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from optlab.errors import OutputDirInUse
from optlab.history import HISTORY_FILE
from optlab.hydra_context import launched_rank
from optlab.results import RESULT_FILE

log = logging.getLogger(__name__)


def requeued() -> bool:
    """Whether SLURM restarted this job (``scontrol requeue``, preemption, its time limit)."""
    return os.environ.get("SLURM_RESTART_COUNT", "0") not in ("", "0")


# Written first, exclusively, by the run that takes the directory: which process owns it.
CLAIM_FILE = ".run_claim"


def earlier_run_file(output_dir: Path) -> Path | None:
    """A file that shows ``output_dir`` already holds a run: its record, events, checkpoints, or (still starting) its claim."""
    candidates = [output_dir / RESULT_FILE, output_dir / HISTORY_FILE]
    candidates += sorted(output_dir.glob("events.out.tfevents.*")) + sorted(output_dir.glob("checkpoints/*.ckpt"))
    candidates.append(output_dir / CLAIM_FILE)
    return next((path for path in candidates if path.is_file()), None)


def in_use_message(output_dir: Path, earlier: Path) -> str:
    holder = read_claim(output_dir) if earlier.name == CLAIM_FILE else None
    what = (
        f"is another run's (pid {holder.get('pid')} on {holder.get('host')})"
        if holder
        else f"already holds an earlier run ({earlier.relative_to(output_dir)})"
    )
    return (
        f"output directory {output_dir} {what}; pick a new hydra.run.dir "
        "(to continue that run, pass ckpt_path=.../last.ckpt instead)"
    )


def read_claim(output_dir: Path) -> dict[str, Any] | None:
    """Who claimed ``output_dir`` (pid, host, SLURM job), or None: no claim, or one still being written."""
    try:
        claim = json.loads((output_dir / CLAIM_FILE).read_text())
    except (OSError, ValueError):
        return None
    return claim if isinstance(claim, dict) else None


def ours(claim: dict[str, Any] | None) -> bool:
    """This process's claim, or one by an earlier attempt of this SLURM job (a requeued job carries on in its directory)."""
    if claim is None:
        return False
    if claim.get("pid") == os.getpid() and claim.get("host") == socket.gethostname():
        return True
    return requeued() and claim.get("slurm_job") == os.environ.get("SLURM_JOB_ID")


def claim_run_dir(output_dir: Path) -> None:
    """Take ``output_dir`` for this run before anything is written there, or refuse in one line.

    The claim is a file created exclusively (``O_EXCL``): of two runs started together with the
    same directory exactly one creates it, and the other writes nothing there. DDP's other ranks
    share rank 0's directory.
    """
    if launched_rank() != 0:
        return
    if ours(read_claim(output_dir)):
        return
    if earlier := earlier_run_file(output_dir):
        raise OutputDirInUse(in_use_message(output_dir, earlier))
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(output_dir / CLAIM_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise OutputDirInUse(in_use_message(output_dir, output_dir / CLAIM_FILE)) from None
    with os.fdopen(descriptor, "w") as stream:
        json.dump(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "slurm_job": os.environ.get("SLURM_JOB_ID"),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
            stream,
        )


def claim_state(output_dir: Path) -> str | None:
    """A run without ``result.json``: ``running`` or ``gone`` when its claim names a process on this machine, else None."""
    claim = read_claim(output_dir)
    if claim is None or claim.get("host") != socket.gethostname() or not isinstance(claim.get("pid"), int):
        return None
    try:
        os.kill(claim["pid"], 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        return "running"
    return "running"


def resume_from(cfg: DictConfig, output_dir: Path) -> str | None:
    """``ckpt_path``, or for a job SLURM requeued, the ``last.ckpt`` its earlier attempt saved in this directory."""
    if cfg.get("ckpt_path"):
        return str(cfg.ckpt_path)
    last = output_dir / "checkpoints" / "last.ckpt"
    if requeued() and last.is_file():
        log.info("requeued by SLURM (restart %s): resuming from %s", os.environ["SLURM_RESTART_COUNT"], last)
        return str(last)
    return None
