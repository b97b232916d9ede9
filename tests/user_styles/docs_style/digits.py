"""A classifier and a DataModule as Lightning's docs write them ("Lightning in 15 minutes")."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def digits_splits(seed: int = 42) -> dict[str, TensorDataset]:
    """Stratified 60/20/20 train/val/test splits of scikit-learn's digits, pixels scaled to [0, 1]."""
    x, y = load_digits(return_X_y=True)
    x_fit, x_test, y_fit, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    x_train, x_val, y_train, y_val = train_test_split(
        x_fit, y_fit, test_size=0.25, stratify=y_fit, random_state=seed
    )

    def to_dataset(x, y) -> TensorDataset:
        return TensorDataset(torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y))

    return {
        "train": to_dataset(x_train, y_train),
        "val": to_dataset(x_val, y_val),
        "test": to_dataset(x_test, y_test),
    }


class LitClassifier(L.LightningModule):
    """A small MLP over the 64 pixels of a digit."""

    def __init__(self, input_dim: int = 64, hidden_dim: int = 128, num_classes: int = 10, lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = nn.Sequential(
            nn.Linear(input_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        preds = torch.argmax(logits, dim=1)
        acc = (preds == y).float().mean()
        self.log("val_loss", loss)
        self.log("val_acc", acc)

    def test_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        preds = torch.argmax(logits, dim=1)
        acc = (preds == y).float().mean()
        self.log("test_loss", loss)
        self.log("test_acc", acc)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class DigitsData(L.LightningDataModule):
    """scikit-learn's digits: nothing to download, so no prepare_data."""

    def __init__(self, batch_size: int = 32):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage: str):
        splits = digits_splits()
        # Assign train/val datasets for use in dataloaders
        if stage == "fit":
            self.digits_train, self.digits_val = splits["train"], splits["val"]

        # Assign test dataset for use in dataloader(s)
        if stage == "test":
            self.digits_test = splits["test"]

    def train_dataloader(self):
        return DataLoader(self.digits_train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.digits_val, batch_size=self.batch_size)

    def test_dataloader(self):
        return DataLoader(self.digits_test, batch_size=self.batch_size)
