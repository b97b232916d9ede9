"""The private attributes of Lightning, torch, Hydra and wandb that this template relies on, each used here only.

None has a public equivalent at the tested versions (``pyproject.toml``'s bounds); each is
wrapped in one function, and ``tests/test_upstream.py`` checks that every one still exists,
so an upgrade that removes one fails there, naming it, instead of somewhere in a run.
submitit's, which the SLURM launcher's state watcher extends, are in
``hydra_plugins/optlab_launcher/_slurm_states.py`` and checked by the same test.
"""

from __future__ import annotations

from typing import Any


def current_hook(module: Any) -> str | None:
    """The hook Lightning is running on a LightningModule (``training_step``, ...)."""
    return module._current_fx_name


def logs_this_step(trainer: Any) -> bool:
    """Whether Lightning passes this training step's per-step values to the loggers (``trainer.log_every_n_steps``)."""
    return bool(trainer._logger_connector.should_update_logs)


def tensorboard_file_writer(writer: Any) -> Any:
    """The event-file writer behind a ``SummaryWriter``: summaries added to it land in the run's own event file."""
    return writer._get_file_writer()


def wandb_init_arguments(logger: Any) -> dict[str, Any]:
    """What Lightning's ``WandbLogger`` will pass to ``wandb.init``."""
    return logger._wandb_init


def detach_wandb_run(logger: Any) -> Any:
    """The W&B run a ``WandbLogger`` started (or None), no longer held by it."""
    run, logger._experiment = logger._experiment, None
    return run


def job_return_value(result: Any) -> Any:
    """What a Hydra job returned, or the exception it raised (``JobReturn.return_value`` raises that one again)."""
    return result._return_value
