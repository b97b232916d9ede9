"""Each replica's metrics to its own loggers in ``<run>/replica_NN/``; the run's loggers get the replicas' mean.

TensorBoard then overlays the replicas like separate runs, each with its own HParams session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from optlab.history import MetricHistory
from optlab.replicas.records import split_replica_metrics


def replica_run_loggers(directory: Path, run_loggers: Sequence[Logger]) -> list[Logger]:
    """A replica's loggers: TensorBoard events where the run writes them, and its ``metrics.jsonl``."""
    loggers: list[Logger] = [MetricHistory(directory)]
    if any(isinstance(logger, TensorBoardLogger) for logger in run_loggers):
        loggers.insert(0, TensorBoardLogger(save_dir=directory, name="", version="", default_hp_metric=False))
    return loggers


def replica_hparams(
    replica_loggers: Sequence[Sequence[Logger]], hparams: Mapping[str, Any], seeds: Sequence[int]
) -> list[tuple[Sequence[Logger], dict[str, Any]]]:
    """Each replica's loggers with the hyper-parameters of the single run it equals: its own seed."""
    return [(loggers, {**hparams, "seed": seed}) for loggers, seed in zip(replica_loggers, seeds, strict=True)]


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
