"""Tabular binary-classification data: scikit-learn's breast cancer set and any numeric CSV.

Both use a stratified split and standardise features with the training rows' mean and
standard deviation only, so nothing about the held-out rows leaks into training.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from experiment.in_memory import InMemoryDataModule, Split, check_train_fraction
from optlab.errors import InvalidArgument


def stratified_standardised_splits(x: np.ndarray, y: np.ndarray, train_fraction: float, random_state: int) -> dict[str, Split]:
    check_train_fraction(train_fraction, len(y))
    x_train, x_held, y_train, y_held = train_test_split(x, y, train_size=train_fraction, stratify=y, random_state=random_state)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0  # a constant column stays constant (zero) instead of dividing by zero

    def tensors(features: np.ndarray, labels: np.ndarray) -> Split:
        scaled = (features - mean) / std
        return torch.from_numpy(scaled).float(), torch.from_numpy(labels.reshape(-1, 1)).float()

    return {"train": tensors(x_train, y_train), "held_out": tensors(x_held, y_held)}


class BreastCancerDataModule(InMemoryDataModule):
    """Wisconsin breast cancer (569 rows, 30 features, binary), shipped with scikit-learn."""

    def __init__(
        self,
        train_fraction: float = 0.8,
        random_state: int = 2020,
        batch_size: int = 16,
        eval_batch_size: int = 1000,
        shuffle: bool = False,
        shuffle_seed: int = 0,
        val_fraction: float = 0.0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, shuffle, shuffle_seed, val_fraction)
        self.save_hyperparameters()

    def make_splits(self) -> dict[str, Split]:
        from sklearn.datasets import load_breast_cancer

        x, y = load_breast_cancer(return_X_y=True)
        return stratified_standardised_splits(x, y.astype(np.float64), self.hparams.train_fraction, self.hparams.random_state)


def read_numeric_csv(path: Path, target: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features, 0/1 labels and feature names; every problem an InvalidArgument naming the argument."""
    if not path.is_file():
        raise InvalidArgument("path", str(path), "expected an existing CSV file")
    with path.open(newline="", encoding="utf-8-sig") as stream:  # utf-8-sig: a spreadsheet's byte-order mark is not a column name
        rows = list(csv.reader(stream))
    if len(rows) < 2:
        raise InvalidArgument("path", str(path), "expected a header row and at least one data row")
    header, body = rows[0], rows[1:]
    if target not in header:
        raise InvalidArgument("target", target, f"expected one of the CSV's columns: {', '.join(header)}")
    values = np.empty((len(body), len(header)))
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise InvalidArgument("path", str(path), f"line {line} has {len(row)} fields, the header has {len(header)}")
        for column, cell in enumerate(row):
            try:
                values[line - 2, column] = float(cell)
            except ValueError:
                raise InvalidArgument(
                    "path", str(path), f"column {header[column]!r} is not numeric (line {line}: {cell!r})"
                ) from None
            if not math.isfinite(values[line - 2, column]):
                raise InvalidArgument(
                    "path", str(path), f"column {header[column]!r} has a missing or infinite value on line {line}"
                )
    target_column = header.index(target)
    classes = np.unique(values[:, target_column])
    if len(classes) != 2:
        shown = ", ".join(f"{c:g}" for c in classes[:5]) + (", ..." if len(classes) > 5 else "")
        raise InvalidArgument("target", target, f"expected a binary column (two distinct values), found {len(classes)}: {shown}")
    labels = (values[:, target_column] == classes[1]).astype(np.float64)  # the larger value is class 1
    features = np.delete(values, target_column, axis=1)
    return features, labels, [name for name in header if name != target]


class CsvDataModule(InMemoryDataModule):
    """Any CSV of numeric columns with a binary target column."""

    def __init__(
        self,
        path: str,
        target: str,
        train_fraction: float = 0.8,
        random_state: int = 2020,
        batch_size: int = 16,
        eval_batch_size: int = 1000,
        shuffle: bool = False,
        shuffle_seed: int = 0,
        val_fraction: float = 0.0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, shuffle, shuffle_seed, val_fraction)
        self.save_hyperparameters()
        if path is None or target is None:
            missing = "path" if path is None else "target"
            raise InvalidArgument(missing, None, "required: data=csv data.path=<file.csv> data.target=<column>")
        self.features, self.labels, self.feature_names = read_numeric_csv(Path(path), target)
        counts = np.bincount(self.labels.astype(int))
        if counts.min() < 2:
            raise InvalidArgument("target", target, "each class needs at least two rows for a stratified split")

    def make_splits(self) -> dict[str, Split]:
        return stratified_standardised_splits(self.features, self.labels, self.hparams.train_fraction, self.hparams.random_state)
