"""Lightning's docs often stop at ``trainer.fit``: a module with no ``test_step``, a DataModule with no ``test_dataloader``."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from docs_style.digits import digits_splits


class FitOnlyClassifier(L.LightningModule):
    """A linear classifier over the 64 pixels, trained and validated, never tested."""

    def __init__(self, lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = nn.Linear(64, 10)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.model(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self.model(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class DigitsFitOnly(L.LightningDataModule):
    """Digits for training and validation; the test rows are left out."""

    def __init__(self, batch_size: int = 32):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage: str):
        splits = digits_splits()
        self.digits_train, self.digits_val = splits["train"], splits["val"]

    def train_dataloader(self):
        return DataLoader(self.digits_train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.digits_val, batch_size=self.batch_size)
