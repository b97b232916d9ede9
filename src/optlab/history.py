"""``metrics.jsonl``: every metric a run logs, with the stage that logged it, whatever its loggers.

:class:`MetricHistory` writes it (the task adds it to every run, beside the configured
loggers); :func:`read_history` reads it back for the closing block and the sweep report.
One line per ``log_metrics`` call: ``{"step", "stage", "time", "epoch", <metrics>}``, ``time`` in seconds
since training began.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import lightning as L
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.trainer.states import TrainerState
from lightning.pytorch.utilities import rank_zero_only

HISTORY_FILE = "metrics.jsonl"


class MetricHistory(Logger, Callback):
    """Appends every metric Lightning logs to ``<run dir>/metrics.jsonl``, one line per call.

    The task adds it next to the configured loggers, so ``result.json`` and the sweep
    report read the same numbers whether a run logs to TensorBoard, CSV, MLflow, W&B or
    nothing at all (``~logger``). Lines are written as they come: a run that is killed
    still leaves the curve it had so far.

    It is also a callback, registered with the Trainer, for one thing: to write with each
    line the stage that logged it (``train``, ``validate``, ``test``). The report and the
    console then tell a model's validation metrics from its training ones whatever their names.
    """

    def __init__(self, save_dir: str | Path) -> None:
        super().__init__()
        self._save_dir = Path(save_dir)
        self._stream: IO[str] | None = None
        self._state: TrainerState | None = None
        self._started: float | None = None  # when fitting began: each record says how long after
        self._stages: set[str | None] = set()  # the stages that logged something in this process

    @property
    def name(self) -> str:
        return ""

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self._save_dir)

    @property
    def log_dir(self) -> str:
        return str(self._save_dir)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._state = trainer.state
        if self._started is None:
            self._started = time.perf_counter()

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Hyper-parameters are in ``.hydra/config.yaml`` already."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        stage = self._state.stage if self._state is not None else None
        seconds = None if self._started is None else round(time.perf_counter() - self._started, 4)
        record = {"step": step, "stage": None if stage is None else str(stage.value), "time": seconds}
        self._stages.add(record["stage"])  # on every rank: the task's decisions from it must agree across DDP ranks
        if rank_zero_only.rank != 0:
            return
        path = self._save_dir / HISTORY_FILE
        try:
            if self._stream is None:
                self._save_dir.mkdir(parents=True, exist_ok=True)
                self._stream = path.open("a", buffering=1)  # line-buffered
            self._stream.write(json.dumps({**record, **{tag: float(value) for tag, value in metrics.items()}}) + "\n")
        except OSError as error:  # a full disk: say which file
            raise OSError(error.errno, error.strerror, str(path)) from error

    def logged(self, stage: str) -> bool:
        """Whether ``stage`` (``validate``...) logged anything in this process."""
        return stage in self._stages

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


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
    problems: list[str] = field(default_factory=list)  # lines that could not be read, each named

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
RECORD_KEYS = ("step", "stage", "time", "epoch")


def _epoch(record: dict[str, Any]) -> int | None:
    epoch = record.get("epoch")
    return None if epoch is None else int(epoch)


def read_history(run_dir: Path) -> History:
    """The run's ``metrics.jsonl``. A last line cut short (a run killed while writing it) is left out; any other line
    that cannot be read is left out and named in ``problems``."""
    path = run_dir / HISTORY_FILE
    history = History()
    if not path.is_file():
        return history
    content = path.read_bytes()
    lines = content.splitlines()
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except UnicodeDecodeError:
            history.problems.append(f"{HISTORY_FILE} line {number} is not UTF-8 text")
            continue
        except ValueError:
            if number < len(lines) or content.endswith(b"\n"):
                history.problems.append(f"{HISTORY_FILE} line {number} is not JSON")
            continue
        if isinstance(record, dict) and "step" in record:
            history.records.append(record)
        else:
            history.problems.append(f"{HISTORY_FILE} line {number} is not a record of logged metrics")
    return history


def test_counterpart(metric: str, tested: Collection[str]) -> str | None:
    """The test metric going with ``metric``: itself, or its name with ``val`` read as ``test`` (``val/loss``, ``test/loss``)."""
    if metric in tested:
        return metric
    counterpart = re.sub(r"(?<![A-Za-z])val(idation)?(?![A-Za-z])", "test", metric, count=1)
    return counterpart if counterpart in tested else None
