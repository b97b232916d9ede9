"""Fill TensorBoard's HParams dashboard with each run's settings and its real metrics.

Lightning's default writes an ``hp_metric`` of -1 and, per run, a full "experiment"
summary; TensorBoard then shows only the first run's hyper-parameter columns. Writing
just the session start/end summaries lets TensorBoard build the table from every run
(an SGD run's ``momentum`` next to an Adam run's ``betas``) and read each metric from
the run's own scalar tags, so the table shows what the charts show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard.summary import hparams as hparams_summaries

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
        values.update({f"{group}/{key}": value for key, value in group_node.items()
                       if not key.startswith("_") and not isinstance(value, Mapping)})
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
            writer = logger.experiment._get_file_writer()
            writer.add_summary(session_start)
            writer.add_summary(session_end)
