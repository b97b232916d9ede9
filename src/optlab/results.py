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
from typing import Any

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
    epochs: int | None = None  # epochs trained to the end (a resumed run counts the ones before it too)
    objective: str | None = None  # the metric the task returns: optimized_metric, or eval's test counterpart of it

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


@dataclass(frozen=True)
class Point:
    """One logged value: the optimizer step and epoch Lightning logged it at."""

    step: int
    epoch: int | None
    value: float


@dataclass
class History:
    """What a run logged, read back from its ``metrics.jsonl``: one record per ``log_metrics`` call.

    Each record holds the stage that logged it (``train``, ``validate``, ``test``), so a reader
    can tell a model's validation metrics from its training ones whatever it names them.
    """

    records: list[dict[str, Any]] = field(default_factory=list)

    def points(self, tag: str) -> list[Point]:
        return [Point(record["step"], _epoch(record), record[tag]) for record in self.records if tag in record]

    def values(self, tag: str) -> list[float]:
        return [record[tag] for record in self.records if tag in record]

    @property
    def tags(self) -> list[str]:
        """Every metric logged, in the order first seen (not Lightning's ``epoch`` counter)."""
        names = (tag for record in self.records for tag in record if tag not in RECORD_KEYS)
        return list(dict.fromkeys(names))

    def stage_of(self, tag: str) -> str | None:
        return next((record.get("stage") for record in self.records if tag in record), None)

    def tags_of(self, stage: str) -> list[str]:
        return [tag for tag in self.tags if self.stage_of(tag) == stage]

    def stage_records(self, stage: str) -> list[dict[str, float]]:
        """Each ``log_metrics`` call of ``stage``: a validation pass's metrics together, with its epoch and step."""
        return [record for record in self.records if record.get("stage") == stage]

    def per_epoch(self, tag: str) -> bool:
        """Whether ``tag`` has at most one point per epoch (an epoch-level metric), not one per logged step."""
        epochs = [point.epoch for point in self.points(tag)]
        return None not in epochs and len(epochs) == len(set(epochs))


# Lightning names the per-step half of a metric logged both per step and per epoch ``<name>_step``;
# lightning-hydra-template names a running best ``<name>_best``. Neither is a result of its own.
def shown_by_default(tag: str) -> bool:
    return not tag.endswith(("_step", "_best"))


# What a record holds besides the metrics: Lightning adds ``epoch`` to every call.
RECORD_KEYS = ("step", "stage", "epoch")


def _epoch(record: dict[str, Any]) -> int | None:
    epoch = record.get("epoch")
    return None if epoch is None else int(epoch)


def read_history(run_dir: Path) -> History:
    """The run's ``metrics.jsonl``; a line that cannot be read (the last of a killed run) is skipped."""
    path = run_dir / HISTORY_FILE
    history = History()
    if not path.is_file():
        return history
    for line in path.read_bytes().splitlines():
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(record, dict) and "step" in record:
            history.records.append(record)
    return history
