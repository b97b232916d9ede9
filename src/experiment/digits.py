"""Scikit-learn's handwritten digits (8x8 pixels, 10 classes): a multi-class experiment.

Written as Lightning's documentation writes a data module and a model, with nothing from
the template: ``python train.py data=digits model=mlp_multiclass`` runs it. The template
hands the model what it declares: ``input_size`` and ``num_classes`` from the data
module's attributes of the same names, and the ``optimizer`` / ``scheduler`` factories
from ``optimizer=`` / ``scheduler=``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy


class DigitsDataModule(L.LightningDataModule):
    """1797 digits, split into stratified train / validation / test sets (no download)."""

    def __init__(
        self, batch_size: int = 16, val_fraction: float = 0.2, test_fraction: float = 0.2, split_seed: int = 2020
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # Known before any data is loaded, so a model can be built from them.
        self.input_size = 64
        self.num_classes = 10

    def setup(self, stage: str) -> None:
        images, labels = load_digits(return_X_y=True)
        x = torch.tensor(images / 16.0, dtype=torch.float32)  # pixel intensities 0..16 -> 0..1
        y = torch.tensor(labels)
        held_out = self.hparams.val_fraction + self.hparams.test_fraction
        x_train, x_rest, y_train, y_rest = train_test_split(
            x, y, test_size=held_out, stratify=y, random_state=self.hparams.split_seed
        )
        x_val, x_test, y_val, y_test = train_test_split(
            x_rest,
            y_rest,
            test_size=self.hparams.test_fraction / held_out,
            stratify=y_rest,
            random_state=self.hparams.split_seed,
        )
        self.train_set = TensorDataset(x_train, y_train)
        self.val_set = TensorDataset(x_val, y_val)
        self.test_set = TensorDataset(x_test, y_test)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=512)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=512)


class MulticlassMLP(L.LightningModule):
    """An MLP over flattened inputs, trained with cross-entropy.

    ``optimizer`` and ``scheduler`` are factories called with the parameters (Hydra
    ``_partial_`` nodes); without one the model trains with Adam at its default rate.
    """

    def __init__(
        self,
        input_size: int,
        num_classes: int,
        hidden_sizes: Sequence[int] = (256,),
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
        scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        layers: list[nn.Module] = []
        width = input_size
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, num_classes))
        self.train_acc = MulticlassAccuracy(num_classes)
        self.val_acc = MulticlassAccuracy(num_classes)
        self.test_acc = MulticlassAccuracy(num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # logits

    def model_step(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        logits = self(x)
        return F.cross_entropy(logits, y), logits.argmax(dim=1), y

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss, predictions, y = self.model_step(batch)
        self.train_acc(predictions, y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        loss, predictions, y = self.model_step(batch)
        self.val_acc(predictions, y)
        self.log("val/loss", loss, prog_bar=True)
        self.log("val/acc", self.val_acc, prog_bar=True)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        loss, predictions, y = self.model_step(batch)
        self.test_acc(predictions, y)
        self.log("test/loss", loss)
        self.log("test/acc", self.test_acc)

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            return torch.optim.Adam(self.parameters())
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}
