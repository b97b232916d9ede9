"""``logger=wandb``: Lightning's Weights & Biases logger, one W&B run per training run."""

from __future__ import annotations

from typing import Any, ClassVar

from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.utilities import rank_zero_only

from optlab.upstream import detach_wandb_run, wandb_init_arguments


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
            wandb_init_arguments(self).pop("anonymous", None)
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
        run = detach_wandb_run(self)
        if run is not None:
            run.finish(exit_code=self._exit_code)
