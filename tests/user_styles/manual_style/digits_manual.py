"""A classifier that steps its optimizer itself, and a small self-contained digits DataModule."""

from typing import Callable, Optional

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split


class DigitsDataModule(L.LightningDataModule):
    """scikit-learn's digits split 70/15/15; `input_size` and `num_classes` are plain attributes."""

    def __init__(self, batch_size: int = 64, seed: int = 0) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.seed = seed
        self.input_size = 64
        self.num_classes = 10

    def setup(self, stage: Optional[str] = None) -> None:
        x, y = load_digits(return_X_y=True)
        dataset = TensorDataset(torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y))
        generator = torch.Generator().manual_seed(self.seed)
        self.train_set, self.val_set, self.test_set = random_split(dataset, [0.7, 0.15, 0.15], generator=generator)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=self.batch_size)


class ManualClassifier(L.LightningModule):
    """An MLP whose training_step calls zero_grad, manual_backward and step itself."""

    def __init__(
        self,
        input_size: int,
        num_classes: int = 10,
        hidden_size: int = 64,
        optimizer: Optional[Callable[..., torch.optim.Optimizer]] = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.save_hyperparameters(ignore=["optimizer"])
        self.optimizer_factory = optimizer
        self.net = nn.Sequential(
            nn.Linear(input_size, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        opt = self.optimizers()
        loss = F.cross_entropy(self(x), y)
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        self.log("train/loss", loss, on_step=False, on_epoch=True)

    def _evaluate(self, batch, stage: str) -> None:
        x, y = batch
        logits = self(x)
        self.log(f"{stage}/loss", F.cross_entropy(logits, y))
        self.log(f"{stage}/acc", (logits.argmax(dim=1) == y).float().mean())

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.optimizer_factory is None:
            return torch.optim.Adam(self.parameters(), lr=1e-3)
        return self.optimizer_factory(self.parameters())
