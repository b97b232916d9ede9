"""Data modules: the notebook's blobs, scikit-learn's breast cancer set, any numeric CSV."""

from optlab.data.base import InMemoryDataModule
from optlab.data.blobs import BlobDataModule
from optlab.data.tabular import BreastCancerDataModule, CsvDataModule

__all__ = ["BlobDataModule", "BreastCancerDataModule", "CsvDataModule", "InMemoryDataModule"]
