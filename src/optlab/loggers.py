"""The run's own record of its metrics, kept whatever loggers the config chooses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from optlab.results import HISTORY_FILE


class MetricHistory(Logger):
    """Appends every metric Lightning logs to ``<run dir>/metrics.jsonl``, one line per call.

    The task adds it next to the configured loggers, so ``result.json`` and the sweep
    report read the same numbers whether a run logs to TensorBoard, CSV, MLflow, W&B or
    nothing at all (``~logger``). Lines are written as they come: a run that is killed
    still leaves the curve it had so far.
    """

    def __init__(self, save_dir: str | Path) -> None:
        super().__init__()
        self._save_dir = Path(save_dir)
        self._stream: IO[str] | None = None

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

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Hyper-parameters are in ``.hydra/config.yaml`` already."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self._stream is None:
            self._save_dir.mkdir(parents=True, exist_ok=True)
            self._stream = (self._save_dir / HISTORY_FILE).open("a", buffering=1)  # line-buffered
        self._stream.write(json.dumps({"step": step, **{tag: float(value) for tag, value in metrics.items()}}) + "\n")

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
