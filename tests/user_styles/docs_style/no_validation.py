"""A DataModule with no val_dataloader: Lightning then trains without a validation loop."""

import lightning as L
from torch.utils.data import ConcatDataset, DataLoader

from docs_style.digits import digits_splits


class DigitsTrainOnly(L.LightningDataModule):
    """Digits for training without validation: the validation rows join the training set."""

    def __init__(self, batch_size: int = 32):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage: str):
        splits = digits_splits()
        if stage == "fit":
            self.digits_train = ConcatDataset([splits["train"], splits["val"]])
        if stage == "test":
            self.digits_test = splits["test"]

    def train_dataloader(self):
        return DataLoader(self.digits_train, batch_size=self.batch_size, shuffle=True)

    def test_dataloader(self):
        return DataLoader(self.digits_test, batch_size=self.batch_size)
