"""The console: what a user reads or acts on, once; everything else Lightning says goes to the run's ``train.log``.

Hydra's logging config (``configs/hydra/default.yaml``) installs :class:`TqdmHandler` and
:class:`ConsoleFilter` on the console handler; the task calls :func:`quiet_lightning`.
"""

from __future__ import annotations

import logging
import os
import warnings

# Lightning's INFO lines that do not show up in the console: the header and the epoch
# table say the same, or they are advertisements. MLflow's (and its database migrations')
# INFO lines are bookkeeping of the same kind.
_QUIET_LOGGERS = ("lightning", "pytorch_lightning", "mlflow", "alembic")
# Lightning's packages that add a console handler of their own when imported before logging is configured.
_LIGHTNING_PACKAGES = ("lightning.pytorch", "lightning.fabric")
# Warnings that report normal operation: a first MLflow run creates its experiment.
_NOT_WARNINGS = ("Experiment with name",)


class TqdmHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A console handler that writes above an active progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001  (logging must never raise)
            self.handleError(record)


class ConsoleFilter(logging.Filter):
    """Keep Lightning's warnings and errors in the console, not its INFO chatter (it stays in train.log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(_QUIET_LOGGERS) and (
            record.levelno < logging.WARNING or str(record.msg).startswith(_NOT_WARNINGS)
        ):
            return False
        if record.name == "py.warnings":  # a Python warning: its message, not the file and line it came from
            text = str(record.args[0]) if record.args else record.getMessage()
            record.msg, record.args = f"warning: {_warning_text(text)}", ()
        return True


def _warning_text(formatted: str) -> str:
    """``path:12: UserWarning: text`` -> ``text`` (warnings.formatwarning's layout)."""
    first_line = formatted.strip().splitlines()[0] if formatted.strip() else formatted
    head, separator, text = first_line.partition("Warning: ")
    return text if separator else first_line


def quiet_lightning() -> None:
    """Send Lightning's messages through Hydra's handlers only, once, and drop a warning no user can act on.

    Lightning's top-level package adds a console handler to the ``lightning`` logger and still
    lets its records reach the root logger, where Hydra prints them a second time.
    """
    for name in (*_QUIET_LOGGERS, *_LIGHTNING_PACKAGES):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True  # imported before logging was configured, Lightning turns propagation off
    # MLflow, once imported, would print through a handler of its own; its records go through Hydra's.
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    logging.captureWarnings(True)  # warnings reach the console filter and train.log
    # Raised inside Lightning's own pytree helper with torch >= 2.13; nothing in a user's code causes it.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)
    # On any machine with SLURM's client installed; this template runs on SLURM through hydra/launcher=slurm.
    warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system but is not used")
