"""The notebook's experiment in plain PyTorch, written from ../shared/seed/notebook.txt.

This is the independent oracle for the Lightning template: no code here is shared with
the ``optlab`` package.
"""

from __future__ import annotations

import torch
import torch as tch
import torch.nn as nn
from sklearn.datasets import make_blobs

# The losses the notebook printed for its Adam run (sum over batches of loss * 16).
NOTEBOOK_ADAM_LOSSES = [107.9976, 8.7378, 8.2710, 0.8969, 0.2221, 0.0017, 0.0016, 0.0014]


def notebook_data(samples: int = 5000) -> tuple[torch.Tensor, ...]:
    train_split = int(samples * 0.8)
    X, y = make_blobs(n_samples=samples, centers=2, n_features=64, cluster_std=10, random_state=2020)
    y = y.reshape(-1, 1)
    X, y = tch.from_numpy(X), tch.from_numpy(y)
    X, y = X.float(), y.float()
    return X[:train_split], X[train_split:], y[:train_split], y[train_split:]


class NeuralNetwork(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        tch.manual_seed(2020)
        self.fc1 = nn.Linear(64, 256)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(256, 1024)
        self.relu2 = nn.ReLU()
        self.out = nn.Linear(1024, 1)
        self.final = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.out(self.relu2(self.fc2(self.relu1(self.fc1(x))))))


NOTEBOOK_OPTIMIZERS = {
    "adam": lambda params: tch.optim.Adam(params, lr=0.001),
    "sgd": lambda params: tch.optim.SGD(params, lr=0.01, momentum=0.9),
    "rmsprop": lambda params: tch.optim.RMSprop(
        params, lr=0.01, alpha=0.9, eps=1e-08, weight_decay=0.1, momentum=0.1, centered=True
    ),
}


def train_network(model, optimizer, loss_function, num_epochs, batch_size, X_train, Y_train) -> list[float]:
    """The notebook's ``train_network``: returns the per-epoch sum of ``loss * batch_size``."""
    model.train()
    loss_across_epochs = []
    for _ in range(num_epochs):
        train_loss = 0.0
        for i in range(0, X_train.shape[0], batch_size):
            input_data = X_train[i : min(X_train.shape[0], i + batch_size)]
            labels = Y_train[i : min(X_train.shape[0], i + batch_size)]
            optimizer.zero_grad()
            output_data = model(input_data)
            loss = loss_function(output_data, labels)
            loss.backward()
            optimizer.step()
            train_loss += loss.item() * batch_size
        loss_across_epochs.append(train_loss)
    return loss_across_epochs


def notebook_losses(optimizer: str, num_epochs: int = 10, samples: int = 5000) -> list[float]:
    X_train, _, Y_train, _ = notebook_data(samples)
    model = NeuralNetwork()
    return train_network(
        model, NOTEBOOK_OPTIMIZERS[optimizer](model.parameters()), nn.BCELoss(), num_epochs, 16, X_train, Y_train
    )
