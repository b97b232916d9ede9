"""The notebook's Adam job as a plain script: data, model, 10 epochs, test accuracy.

The whole-process baseline for ``bench_train.py``: what ``python train.py`` is compared
with, import time and memory included.
"""

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import make_blobs

X, y = make_blobs(n_samples=5000, centers=2, n_features=64, cluster_std=10, random_state=2020)
X, y = torch.from_numpy(X).float(), torch.from_numpy(y.reshape(-1, 1)).float()
X_train, x_test, Y_train, y_test = X[:4000], X[4000:], y[:4000], y[4000:]

torch.manual_seed(2020)
model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 1), nn.Sigmoid())
loss_function = nn.BCELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
for epoch in range(10):
    train_loss = 0.0
    for i in range(0, len(X_train), 16):
        optimizer.zero_grad()
        loss = loss_function(model(X_train[i : i + 16]), Y_train[i : i + 16])
        loss.backward()
        optimizer.step()
        train_loss += loss.item() * 16
    print(f"Epoch: {epoch + 1} - Loss:{train_loss:.4f}")
with torch.no_grad():
    accuracy = (np.where(model(x_test) > 0.5, 1, 0) == y_test.numpy()).mean()
print(f"test accuracy {accuracy:.4f}")
