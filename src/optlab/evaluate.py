"""The evaluation task: score a checkpoint on the test data, with the model built as ``train.py`` builds it.

The model, data and optimizer settings are those of the run that wrote the checkpoint (its
``.hydra/config.yaml``, two folders up), so ``python eval.py ckpt_path=<run>/checkpoints/last.ckpt``
needs nothing else; what eval.py's own command line sets (``data=...``, ``data.batch_size=...``)
goes on top. A checkpoint from elsewhere is scored with eval.py's config as composed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from omegaconf import DictConfig, OmegaConf, open_dict

from optlab.building import build, build_group, build_trainer
from optlab.checkpoints import check_state_fits, configured_classes, load_checkpoint, state_dict_for, trained_with
from optlab.console import closing_block, metric_list, quiet_lightning
from optlab.errors import UserError
from optlab.history import test_counterpart
from optlab.hydra_context import command_line_overrides
from optlab.model_building import build_model
from optlab.replicas.records import replica_summary, split_replica_metrics
from optlab.results import RunResult

log = logging.getLogger(__name__)

# What a run's own config decides about its model and data; the rest (trainer, loggers, paths) is eval.py's.
RUN_KEYS = ("data", "model", "optimizer", "scheduler", "seed", "replicas", "optimized_metric", "optimized_direction")


def run_config(cfg: DictConfig) -> DictConfig:
    """eval.py's config with the model and data settings of the run that wrote the checkpoint, command-line overrides on top."""
    saved = trained_with(cfg.ckpt_path)
    if saved is None:
        return cfg
    overrides = command_line_overrides()
    merged = cfg.copy()
    with open_dict(merged):
        for key in RUN_KEYS:
            if key in saved and key not in (name for name, _ in overrides):  # data=digits replaces the whole group
                merged[key] = saved[key]
        for name, _ in overrides:  # data.batch_size=32 changes one value of the run's group
            if name.split(".", 1)[0] in RUN_KEYS and "." in name and OmegaConf.select(cfg, name) is not None:
                OmegaConf.update(merged, name, OmegaConf.select(cfg, name), force_add=True)
    return merged


def load_weights(cfg: DictConfig, run: DictConfig, model: L.LightningModule) -> None:
    """The checkpoint's weights into ``model``, under its own names (a compiled network saves them as ``_orig_mod``)."""
    checkpoint = load_checkpoint(cfg.ckpt_path, lambda: configured_classes(run), trusted=cfg.get("trust_checkpoint", False))
    check_state_fits(checkpoint, cfg.ckpt_path, model, run)
    model.on_load_checkpoint(checkpoint)  # as Lightning's own restore does, before the weights
    model.load_state_dict(state_dict_for(model, checkpoint["state_dict"]))


def evaluate(cfg: DictConfig) -> RunResult:
    """Test the checkpoint's weights (the file checked by ``optlab.config_checks.check_evaluation_config``)."""
    quiet_lightning()
    run = run_config(cfg)
    datamodule: L.LightningDataModule = build(run.data, "data")
    built = build_model(run, datamodule)
    if untested := built.missing_loop("test", datamodule):
        raise UserError(f"eval.py cannot test: {untested} (Lightning's Trainer.test needs a test_step and a test_dataloader)")
    load_weights(cfg, run, built.model)
    trainer: L.Trainer = build_trainer(cfg.trainer, logger=build_group(cfg.get("logger"), "logger"))
    tested = trainer.test(built.model, datamodule=datamodule, verbose=False)
    metrics = {name: float(value) for name, value in (tested[0] if tested else {}).items()}
    # A replicas checkpoint: the loggers get each replica's test metrics as replica_NN/<name>, the table their mean.
    metrics, each_replica = split_replica_metrics(metrics, built.replicas)
    objective = test_counterpart(str(run.get("optimized_metric", "")), metrics)
    if trainer.is_global_zero:
        spread = replica_summary(objective or next(iter(metrics), ""), each_replica, where="each logged as replica_NN/<name>")
        rows = [
            ("checkpoint", str(cfg.ckpt_path)),
            ("test", metric_list(metrics) or "the model logged no test metric"),
            ("replicas", spread),
        ]
        log.info("%s", closing_block(rows, Path(cfg.paths.output_dir), cfg.get("logger")))
    return RunResult(status="ok", metrics=metrics, objective=objective)
