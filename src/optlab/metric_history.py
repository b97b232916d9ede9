"""``MetricHistory``: the logger that writes every run's ``metrics.jsonl`` (its format: :mod:`optlab.history`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import lightning as L
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.trainer.states import TrainerState
from lightning.pytorch.utilities import rank_zero_only

from optlab.history import HISTORY_FILE


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

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Hyper-parameters are in ``.hydra/config.yaml`` already."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        stage = self._state.stage if self._state is not None else None
        record = {"step": step, "stage": None if stage is None else str(stage.value)}
        self._stages.add(record["stage"])  # on every rank: the task's decisions from it must agree across DDP ranks
        if rank_zero_only.rank != 0:
            return
        if self._stream is None:
            self._save_dir.mkdir(parents=True, exist_ok=True)
            self._stream = (self._save_dir / HISTORY_FILE).open("a", buffering=1)  # line-buffered
        self._stream.write(json.dumps({**record, **{tag: float(value) for tag, value in metrics.items()}}) + "\n")

    def logged(self, stage: str) -> bool:
        """Whether ``stage`` (``validate``...) logged anything in this process."""
        return stage in self._stages

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
