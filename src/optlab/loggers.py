"""The run's own record of its metrics, kept whatever loggers the config chooses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any, ClassVar

import lightning as L
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.trainer.states import TrainerState
from lightning.pytorch.utilities import rank_zero_only

from optlab.results import HISTORY_FILE


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


class WandbLogger(LightningWandbLogger):
    """Lightning's ``WandbLogger`` with one W&B run per training run (``logger=wandb``).

    Lightning's logger reuses a W&B run still open in the process (``wandb.run``). In a
    sweep whose jobs run one after another in one process (Hydra's basic launcher, the
    Optuna sweeper) every job after the first therefore logged into the first job's run:
    its steps started again from 0 in a run that already had them, and its own directory
    held no W&B run. Here a new logger first finishes the run that the previous one
    started (failed if Lightning reported its training failed), so each job has its own.
    The last run of a process is finished by wandb when the process exits, or by
    ``WandbLogger.finish_last()``.

    Lightning also always passes ``anonymous=None`` to ``wandb.init``, which recent wandb
    (0.31 here) answers with a deprecation warning on the console at every run: the
    argument is passed only when it is set.
    """

    _last: ClassVar[WandbLogger | None] = None  # the newest logger of this process, whose run may still be open

    def __init__(self, *args: Any, anonymous: bool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, anonymous=anonymous, **kwargs)
        if anonymous is None:
            self._wandb_init.pop("anonymous", None)
        self._exit_code = 0
        WandbLogger.finish_last()
        WandbLogger._last = self

    @classmethod
    def finish_last(cls) -> None:
        """Finish the run of this process's newest logger, as a new logger does first (a notebook or a
        test that reads the run back in the same process calls it once training is over)."""
        if cls._last is not None:
            cls._last.finish()
            cls._last = None

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if status != "success":
            self._exit_code = 1
        super().finalize(status)

    @rank_zero_only
    def finish(self) -> None:
        """Finish the W&B run this logger started, if any: wandb writes its last records and closes the run."""
        run, self._experiment = self._experiment, None
        if run is not None:
            run.finish(exit_code=self._exit_code)


class ReplicaRouter(Logger):
    """The one logger Lightning sees in a run with replicas: each metric goes to its run.

    ``Replicas`` logs replica k's metrics as ``replica_NN/<name>`` and their mean as
    ``<name>``. The mean goes to the run's configured loggers; replica k's metrics, under
    the model's names, go to its own loggers in ``<run>/replica_NN/`` (TensorBoard events
    where the run logs to TensorBoard, and ``metrics.jsonl``). The steps are Lightning's, so
    replicas overlay in TensorBoard like separate runs.
    """

    def __init__(self, run_loggers: list[Logger], replica_loggers: list[list[Logger]]) -> None:
        super().__init__()
        self.run_loggers, self.replica_loggers = run_loggers, replica_loggers

    @property
    def _first(self) -> Logger:
        return self.run_loggers[0]

    @property
    def name(self) -> str | None:
        return self._first.name

    @property
    def version(self) -> str | int | None:
        return self._first.version

    @property
    def save_dir(self) -> str | None:
        return self._first.save_dir

    @property
    def log_dir(self) -> str | None:
        return getattr(self._first, "log_dir", self._first.save_dir)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        for logger in self.run_loggers:
            logger.log_hyperparams(params, *args, **kwargs)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:  # on every rank: the loggers decide
        from optlab.replicas import split_replica_metrics

        own, each = split_replica_metrics(metrics, len(self.replica_loggers))
        shared = {"epoch": metrics["epoch"]} if "epoch" in metrics else {}
        if set(own) - {"epoch"}:  # a step where only replicas logged: nothing of the run's own
            for logger in self.run_loggers:
                logger.log_metrics(own, step)
        for loggers, replica in zip(self.replica_loggers, each, strict=True):
            if replica:
                for logger in loggers:
                    logger.log_metrics({**replica, **shared}, step)

    def _all(self) -> list[Logger]:
        return [*self.run_loggers, *(logger for loggers in self.replica_loggers for logger in loggers)]

    @rank_zero_only
    def save(self) -> None:
        for logger in self._all():
            logger.save()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        for logger in self._all():
            logger.finalize(status)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        for logger in self.run_loggers:
            logger.after_save_checkpoint(checkpoint_callback)
