"""Each run's record on disk, so a sweep report needs nothing but files.

``result.json`` is the outcome: a job that finishes writes ``status: ok`` with its final
metrics and timings; one that raises writes ``status: failed`` with the error's last
line. A job killed outright writes nothing, which the report also treats as failed.
``metrics.jsonl`` is every metric the run logged, written as it goes by
:class:`optlab.loggers.MetricHistory`, whichever loggers are configured.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULT_FILE = "result.json"
HISTORY_FILE = "metrics.jsonl"
# A run with replicas=K keeps each replica's record in <run>/replica_00/ ... (optlab.replicas),
# with replica.json naming its seed.
REPLICA_PREFIX = "replica_"
REPLICA_FILE = "replica.json"


@dataclass
class RunResult:
    status: str  # "ok" or "failed"
    error: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    fit_seconds: float | None = None
    steps: int | None = None

    @property
    def steps_per_second(self) -> float | None:
        if not self.steps or not self.fit_seconds:
            return None
        return self.steps / self.fit_seconds


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


def write_result(output_dir: Path, result: RunResult) -> None:
    """Write atomically: a report reading the sweep meanwhile never sees half a file."""
    output_dir.mkdir(parents=True, exist_ok=True)
    temporary = output_dir / f".{RESULT_FILE}.tmp"
    temporary.write_text(json.dumps(asdict(result), indent=2) + "\n")
    os.replace(temporary, output_dir / RESULT_FILE)


def read_result(run_dir: Path) -> RunResult | None:
    path = run_dir / RESULT_FILE
    if not path.is_file():
        return None
    return RunResult(**json.loads(path.read_text()))


def last_line(error: BaseException) -> str:
    """The error's last line for the report table (the full trace stays in the log).

    A user error is its own message; any other error keeps its type, e.g.
    ``ValueError: Invalid learning rate: -1.0``.
    """
    from optlab.errors import UserError

    lines = str(error).strip().splitlines()
    message = lines[-1] if lines else ""
    if isinstance(error, UserError):
        return message
    return f"{type(error).__name__}: {message}".rstrip(": ")


def read_history(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Each logged tag's ``(step, value)`` points, in the order they were logged."""
    path = run_dir / HISTORY_FILE
    series: dict[str, list[tuple[int, float]]] = {}
    if not path.is_file():
        return series
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # the last line of a run killed while writing it
            continue
        step = record.pop("step")
        for tag, value in record.items():
            series.setdefault(tag, []).append((step, value))
    return series
