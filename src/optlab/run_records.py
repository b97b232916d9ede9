"""What a run records besides its checkpoints: ``metrics.jsonl``, HParams sessions, ``result.json``; with
``replicas=K``, each replica's own run directory too. One object, so the training task needs one call each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import lightning as L
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger

from optlab.metric_history import MetricHistory
from optlab.replicas.records import replica_dirs, split_replica_metrics, write_replica_records
from optlab.replicas.routing import ReplicaRouter, replica_hparams, replica_run_loggers
from optlab.results import RunResult, write_result
from optlab.tb_hparams import Scalar, write_hparams_session


class RunRecords:
    """The run's history, and with several seeds, each replica's loggers and the router between them."""

    def __init__(self, run_dir: Path, seeds: Sequence[int]) -> None:
        self.run_dir, self.seeds = run_dir, list(seeds)
        self.history = MetricHistory(run_dir)  # every metric, whatever the configured loggers: result.json and reports read it
        self._run_loggers: list[Logger] = [self.history]
        self._replica_loggers: list[list[Logger]] = []

    @property
    def replicas(self) -> int:
        return len(self.seeds)

    def loggers(self, configured: list[Logger]) -> list[Logger]:
        """What the Trainer logs to: the configured loggers and the history, or with replicas, one router to those and each replica's."""
        self._run_loggers = [*configured, self.history]
        if self.replicas == 1:
            return self._run_loggers
        self._replica_loggers = [replica_run_loggers(directory, self._run_loggers)
                                 for directory in replica_dirs(self.run_dir, self.replicas)]
        return [ReplicaRouter(self._run_loggers, self._replica_loggers)]

    @property
    def callbacks(self) -> list[Callback]:
        """The histories, which hear from the Trainer which stage logs each metric (after :meth:`loggers`)."""
        return [logger for loggers in [self._run_loggers, *self._replica_loggers] for logger in loggers
                if isinstance(logger, MetricHistory)]

    def log_hyperparams(self, trainer: L.Trainer, hparams: Mapping[str, Scalar]) -> None:
        """The run's settings to its loggers and HParams, each replica's with its own seed; ``replica.json`` per replica."""
        sessions = [(trainer.loggers, dict(hparams))]  # debug=fast_dev_run: Lightning put a logger that writes nothing in
        if any(isinstance(logger, ReplicaRouter) for logger in trainer.loggers):
            sessions = [(self._run_loggers, dict(hparams)), *replica_hparams(self._replica_loggers, hparams, self.seeds)]
        for loggers, params in sessions:
            for logger in loggers:
                logger.log_hyperparams(params)
            write_hparams_session(loggers, params)
        if self.replicas > 1 and trainer.is_global_zero:
            write_replica_records(self.run_dir, self.seeds)

    def finish(self, result: RunResult, write: bool) -> tuple[RunResult, list[dict[str, float]]]:
        """The run's result (the replicas' mean) and each replica's metrics, written to its ``result.json`` when ``write``."""
        metrics, each_replica = split_replica_metrics(result.metrics, self.replicas)
        if self.replicas > 1 and write:
            for directory, replica_metrics in zip(replica_dirs(self.run_dir, self.replicas), each_replica, strict=True):
                write_result(directory, replace(result, metrics=replica_metrics))
        return replace(result, metrics=metrics), each_replica
