"""``metrics.jsonl``: every metric a run logs, with the stage that logged it, whatever its loggers.

:class:`MetricHistory` writes it (the task adds it to every run, beside the configured
loggers); :func:`read_history` reads it back for ``result.json``'s closing block and the
sweep report. One line per ``log_metrics`` call: ``{"step", "stage", "epoch", <metrics>}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


HISTORY_FILE = "metrics.jsonl"


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
