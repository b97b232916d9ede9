"""The notebook's sigmoid MLP as a LightningModule: BCE loss, an optimizer chosen by config."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric, MinMetric
from torchmetrics.classification import BinaryAccuracy

from experiment.nets import build_mlp, initialise

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]


class BinaryClassifier(L.LightningModule):
    """Sigmoid MLP trained with ``BCELoss``.

    ``optimizer`` (and the optional ``scheduler``) are factories, Hydra ``_partial_`` nodes
    called with the parameters, so a new optimizer is a new YAML file, not new code.
    """

    def __init__(
        self,
        input_size: int,
        hidden_sizes: Sequence[int] = (256, 1024),
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        init: str = "default",
        init_params: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        # The factories are functools.partial objects: kept out of hparams so hparams.yaml and
        # the checkpoint stay plain data that yaml.safe_load and weights_only loading accept.
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler

        self.net = build_mlp(input_size, hidden_sizes)
        initialise(self.net, init, (init_params or {}).get(init, {}))
        self.criterion = nn.BCELoss()

        # Metrics as torchmetrics objects: accumulated over batches and devices, computed and
        # reset at each epoch's end. The training loss is saved in checkpoints, so a run
        # resumed mid-epoch still averages over the whole epoch.
        self.train_loss = MeanMetric()
        self.train_loss.persistent(True)
        self.val_loss, self.val_acc = MeanMetric(), BinaryAccuracy()
        self.test_loss, self.test_acc = MeanMetric(), BinaryAccuracy()
        # The best validation values so far, saved in checkpoints so a resumed run keeps them.
        self.val_loss_best, self.val_acc_best = MinMetric(), MaxMetric()
        self.val_loss_best.persistent(True)
        self.val_acc_best.persistent(True)

    def setup(self, stage: str) -> None:
        # The epoch's loss is summed in float64, as the notebook sums Python floats, so the
        # printed figures match its digits (Apple's MPS has no float64).
        if self.trainer.strategy.root_device.type != "mps":
            self.train_loss.set_dtype(torch.float64)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def model_step(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Loss, predicted probabilities and targets of one batch: shared by every stage."""
        x, y = batch
        probabilities = self(x)
        # torch refuses BCELoss under CUDA autocast (16-mixed), where float16 logs lose too
        # much: the loss is computed outside autocast, in float32 or wider (64-true).
        with torch.autocast(self.device.type, enabled=False):
            dtype = torch.promote_types(probabilities.dtype, torch.float32)
            loss = self.criterion(probabilities.to(dtype), y.to(dtype))
        return loss, probabilities, y

    def on_train_epoch_start(self) -> None:
        self.train_loss.reset()  # not called when a run resumes mid-epoch: the restored sum goes on

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss, _, _ = self.model_step(batch)
        self.train_loss.update(loss, weight=len(batch[0]))
        self.log("train/loss_step", loss, prog_bar=True)  # every trainer.log_every_n_steps steps
        return loss

    def on_train_epoch_end(self) -> None:
        # The mean over the epoch's rows: the notebook's printed sum divided by the training rows.
        # compute() already gathered every DDP rank's rows; sync_dist averages those equal values.
        self.log("train/loss_epoch", self.train_loss.compute(), prog_bar=True, sync_dist=True)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        loss, probabilities, y = self.model_step(batch)
        self.val_loss(loss, weight=len(y))
        self.val_acc(probabilities, y)
        self.log("val/loss", self.val_loss, prog_bar=True)
        self.log("val/acc", self.val_acc, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:  # a sanity check is not a result
            return
        self.val_loss_best(self.val_loss.compute())
        self.val_acc_best(self.val_acc.compute())
        self.log("val/loss_best", self.val_loss_best.compute(), sync_dist=True)
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        loss, probabilities, y = self.model_step(batch)
        self.test_loss(loss, weight=len(y))
        self.test_acc(probabilities, y)
        self.log("test/loss", self.test_loss)
        self.log("test/acc", self.test_acc)

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise ValueError(
                "BinaryClassifier needs an optimizer factory to train, e.g. functools.partial(torch.optim.Adam, lr=1e-3)"
            )
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "epoch"}}
