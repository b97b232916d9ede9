"""Diabetes progression regression: a data module that exposes its input size, and an MLP regressor."""

from typing import Any, Callable, Optional

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import MeanAbsoluteError


class DiabetesDataModule(L.LightningDataModule):
    """scikit-learn's diabetes data (442 rows, 10 features), standardised with the training rows' statistics."""

    def __init__(self, batch_size: int = 32, val_size: float = 0.2, test_size: float = 0.2, seed: int = 0) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.val_size = val_size
        self.test_size = test_size
        self.seed = seed
        self.input_size = 10  # read by the model's `input_size`

    def setup(self, stage: Optional[str] = None) -> None:
        x, y = load_diabetes(return_X_y=True)
        x = torch.tensor(x, dtype=torch.float32)
        y = torch.tensor(y, dtype=torch.float32)
        x_fit, x_test, y_fit, y_test = train_test_split(x, y, test_size=self.test_size, random_state=self.seed)
        x_train, x_val, y_train, y_val = train_test_split(
            x_fit, y_fit, test_size=self.val_size / (1 - self.test_size), random_state=self.seed
        )
        x_mean, x_std = x_train.mean(0), x_train.std(0)
        y_mean, y_std = y_train.mean(), y_train.std()

        def scaled(x: torch.Tensor, y: torch.Tensor) -> TensorDataset:
            return TensorDataset((x - x_mean) / x_std, (y - y_mean) / y_std)

        self.train_set = scaled(x_train, y_train)
        self.val_set = scaled(x_val, y_val)
        self.test_set = scaled(x_test, y_test)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=self.batch_size)


class Regressor(L.LightningModule):
    """Linear -> BatchNorm1d -> ReLU -> Dropout -> Linear, trained with MSE on the standardised target."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 64,
        dropout: float = 0.1,
        optimizer: Optional[Callable[..., torch.optim.Optimizer]] = None,
        scheduler: Optional[Callable[..., Any]] = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.net = nn.Sequential(
            nn.Linear(input_size, hidden_size),
            nn.BatchNorm1d(hidden_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, 1),
        )
        self.val_mae = MeanAbsoluteError()
        self.test_mae = MeanAbsoluteError()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)

    def model_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = batch
        preds = self(x)
        return F.mse_loss(preds, y), preds, y

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, _, _ = self.model_step(batch)
        self.log("train/loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        loss, preds, y = self.model_step(batch)
        self.val_mae(preds, y)
        self.log("val/loss", loss, prog_bar=True)
        self.log("val/mae", self.val_mae)

    def test_step(self, batch, batch_idx: int) -> None:
        loss, preds, y = self.model_step(batch)
        self.test_mae(preds, y)
        self.log("test/loss", loss)
        self.log("test/mae", self.test_mae)

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            optimizer = torch.optim.Adam(self.parameters(), lr=1e-3)
        else:
            optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}
