"""``result.json``: each run's outcome on disk, so a sweep report needs nothing but files.

A job that finishes writes ``status: ok`` with its final metrics and timings; one that
raises writes ``status: failed`` with the error's last line. A job killed outright writes
nothing, which the report also treats as failed. What it logged on the way is in its
``metrics.jsonl`` (:mod:`optlab.history`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULT_FILE = "result.json"


@dataclass
class RunResult:
    status: str  # "ok" or "failed"
    error: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    fit_seconds: float | None = None
    steps: int | None = None
    epochs: int | None = None  # epochs trained to the end (a resumed run counts the ones before it too)
    objective: str | None = None  # the metric the task returns: optimized_metric, or eval's test counterpart of it

    @property
    def steps_per_second(self) -> float | None:
        if not self.steps or not self.fit_seconds:
            return None
        return self.steps / self.fit_seconds


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
    fields = RunResult.__dataclass_fields__
    return RunResult(**{key: value for key, value in json.loads(path.read_text()).items() if key in fields})


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
