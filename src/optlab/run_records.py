"""What a run records besides its checkpoints: ``metrics.jsonl``, HParams sessions, ``result.json``; with
``replicas=K``, each replica's own run directory too. One object, so the training task needs one call each."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard.summary import hparams as hparams_summaries

from optlab.history import MetricHistory
from optlab.replicas.records import replica_dirs, split_replica_metrics, write_replica_records
from optlab.results import RunResult, write_result
from optlab.upstream import tensorboard_file_writer

# TensorBoard's HParams dashboard: Fill TensorBoard's HParams dashboard with each run's settings and its real metrics.
#
# Lightning's default writes an ``hp_metric`` of -1 and, per run, a full "experiment"
# summary; TensorBoard then shows only the first run's hyper-parameter columns. Writing
# just the session start/end summaries lets TensorBoard build the table from every run
# (an SGD run's ``momentum`` next to an Adam run's ``betas``) and read each metric from
# the run's own scalar tags, so the table shows what the charts show.
#
Scalar = int | float | str


def run_hparams(cfg: DictConfig, choices: Mapping[str, str], ignored: Mapping[str, str]) -> dict[str, Scalar]:
    """The settings that tell runs apart, flattened to scalars HParams can display.

    The optimizer the model really gets (the ``optimizer=`` group's, or its own config's
    ``model.optimizer``), then every top-level setting of the model and data configs (nested
    nodes, such as a ``net``, are left to the resolved config), whatever the model and data are.
    """
    values: dict[str, Any] = {"seed": cfg.seed}
    node = OmegaConf.select(cfg, "model.optimizer") if "optimizer" in ignored else cfg.get("optimizer")
    if node is not None:
        optimizer = OmegaConf.to_container(node, resolve=True)
        assert isinstance(optimizer, dict)
        name = str(optimizer["_target_"]).rsplit(".", 1)[-1].lower()
        values["optimizer"] = choices.get("optimizer", name) if "optimizer" not in ignored else name
        values.update({f"optimizer/{key}": value for key, value in optimizer.items() if not key.startswith("_")})
    for group in ("model", "data"):
        group_node = OmegaConf.to_container(cfg[group], resolve=True) if cfg.get(group) is not None else {}
        assert isinstance(group_node, dict)
        values.update(
            {
                f"{group}/{key}": value
                for key, value in group_node.items()
                if not key.startswith("_") and not isinstance(value, Mapping)
            }
        )
    values["trainer/max_epochs"] = cfg.trainer.max_epochs
    return {key: _scalar(value) for key, value in values.items()}


def _scalar(value: Any) -> Scalar:
    if isinstance(value, bool):  # torch's summary would store a bool as the number 1.0
        return str(value).lower()
    if isinstance(value, int | float | str):
        return value
    if isinstance(value, Sequence | Mapping):
        return str(value)
    return repr(value)


@rank_zero_only
def write_hparams_session(loggers: Sequence[Logger], hparams: Mapping[str, Scalar]) -> None:
    """Record one HParams session per TensorBoard run; its metrics are the run's own scalar tags.

    A plain function called once before ``fit`` rather than a callback: every callback is
    visited on each of Lightning's per-step hooks.
    """
    _, session_start, session_end = hparams_summaries(dict(hparams), {})
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            writer = tensorboard_file_writer(logger.experiment)
            writer.add_summary(session_start)
            writer.add_summary(session_end)


def judged(result: RunResult, verdict: tuple[str, str] | None) -> RunResult:
    """``result`` with the status and reason of a run that trained to the end but is no result, if it is one."""
    return result if verdict is None or result.status != "ok" else replace(result, status=verdict[0], error=verdict[1])


class RunRecords:
    """The run's history, and with several seeds, each replica's loggers and the router between them."""

    def __init__(self, run_dir: Path, seeds: Sequence[int]) -> None:
        self.run_dir, self.seeds = run_dir, list(seeds)
        self.history = MetricHistory(run_dir)  # every metric, whatever the configured loggers: result.json and reports read it
        self._run_loggers: list[Logger] = [self.history]
        self._replica_loggers: list[list[Logger]] = []
        self._router: Logger | None = None

    @property
    def replicas(self) -> int:
        return len(self.seeds)

    def loggers(self, configured: list[Logger]) -> list[Logger]:
        """What the Trainer logs to: the loggers and the history; with replicas, a router to them and to each replica."""
        self._run_loggers = [*configured, self.history]
        if self.replicas == 1:
            return self._run_loggers
        from optlab.replicas.routing import ReplicaRouter, replica_run_loggers

        self._replica_loggers = [
            replica_run_loggers(directory, self._run_loggers) for directory in replica_dirs(self.run_dir, self.replicas)
        ]
        self._router = ReplicaRouter(self._run_loggers, self._replica_loggers)
        return [self._router]

    @property
    def callbacks(self) -> list[Callback]:
        """The histories, which hear from the Trainer which stage logs each metric (after :meth:`loggers`)."""
        return [
            logger
            for loggers in [self._run_loggers, *self._replica_loggers]
            for logger in loggers
            if isinstance(logger, MetricHistory)
        ]

    def log_hyperparams(self, trainer: L.Trainer, hparams: Mapping[str, Scalar]) -> None:
        """The run's settings to its loggers and HParams, each replica's with its own seed; ``replica.json`` per replica."""
        sessions = [(trainer.loggers, dict(hparams))]  # debug=fast_dev_run: Lightning put a logger that writes nothing in
        if self._router is not None and self._router in trainer.loggers:
            # The run is the replicas' mean: a row of its own in HParams, told apart from replica 0 by "replica".
            sessions = [(self._run_loggers, {**hparams, "replica": f"mean of {self.replicas}"})]
            sessions += [
                (loggers, {**hparams, "seed": seed, "replica": str(k)})
                for k, (loggers, seed) in enumerate(zip(self._replica_loggers, self.seeds, strict=True))
            ]
        for loggers, params in sessions:
            for logger in loggers:
                logger.log_hyperparams(params)
            write_hparams_session(loggers, params)
        if self.replicas > 1 and trainer.is_global_zero:
            write_replica_records(self.run_dir, self.seeds)

    def finish(
        self, result: RunResult, write: bool, judge: Callable[[Path], tuple[str, str] | None]
    ) -> tuple[RunResult, list[dict[str, float]]]:
        """The run's result (the replicas' mean) and each replica's metrics, written to its ``result.json`` when ``write``.

        ``judge(directory)`` says why the run recorded there is no result (diverged, learned nothing), or None; each
        replica is judged by its own record, the run by its own.
        """
        metrics, each_replica = split_replica_metrics(result.metrics, self.replicas)
        if self.replicas > 1 and write:
            for directory, replica_metrics in zip(replica_dirs(self.run_dir, self.replicas), each_replica, strict=True):
                write_result(directory, judged(replace(result, metrics=replica_metrics), judge(directory)))
        return judged(replace(result, metrics=metrics), judge(self.run_dir) if write else None), each_replica
