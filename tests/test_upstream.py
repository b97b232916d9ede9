"""Every private attribute of Lightning, torch, Hydra, wandb and submitit the template relies on still exists.

``src/optlab/upstream.py`` and ``src/hydra_plugins/optlab_launcher/_slurm_states.py`` are the only
places that use them; an upgrade that removes one fails here, naming it.
"""

from __future__ import annotations

import inspect

import lightning as L
import pytest
import torch
from hydra.core.utils import JobReturn, JobStatus
from lightning.pytorch.loggers import WandbLogger
from submitit.slurm.slurm import SlurmInfoWatcher
from torch.utils.tensorboard import SummaryWriter

from optlab import upstream


class Probe(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.seen: list[tuple[str | None, bool]] = []

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        self.seen.append((upstream.current_hook(self), upstream.logs_this_step(self.trainer)))
        return self.layer(batch).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightnings_current_hook_and_logging_cadence(tmp_path: object) -> None:
    model = Probe()
    trainer = L.Trainer(
        max_steps=4,
        log_every_n_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(model, torch.utils.data.DataLoader(torch.ones(8, 2), batch_size=2))
    assert model.seen == [("training_step", False), ("training_step", True), ("training_step", False), ("training_step", True)]


def test_a_summary_writers_event_file_writer(tmp_path: object) -> None:
    writer = SummaryWriter(str(tmp_path))
    assert hasattr(upstream.tensorboard_file_writer(writer), "add_summary")
    writer.close()


def test_lightnings_wandb_logger_keeps_its_init_arguments_and_run(tmp_path: object) -> None:
    pytest.importorskip("wandb")
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="probe")
    assert upstream.wandb_init_arguments(logger)["project"] == "probe"
    assert upstream.detach_wandb_run(logger) is None  # no run started yet


def test_a_hydra_job_return_holds_what_the_job_raised() -> None:
    error = ValueError("raised in the job")
    result = JobReturn(status=JobStatus.FAILED)
    result.return_value = error
    assert upstream.job_return_value(result) is error


def test_torch_modules_apply_is_the_one_path_of_every_move() -> None:
    assert list(inspect.signature(torch.nn.Module._apply).parameters)[:2] == ["self", "fn"]


def test_submitits_slurm_watcher_state() -> None:
    watcher = SlurmInfoWatcher(delay_s=1)
    for attribute in ("_registered", "_finished", "_num_calls", "_last_status_check", "_info_dict"):
        assert hasattr(watcher, attribute), attribute
    assert callable(watcher._make_command) and callable(watcher.read_info)
