"""The blob data module: the notebook's split, shapes, determinism and batch order."""

from __future__ import annotations

import torch
from hydra.utils import instantiate

from experiment.batches import TensorBatches
from experiment.blobs import BlobDataModule

from conftest import compose_config
from notebook_reference import notebook_data


def test_splits_are_the_notebooks_rows() -> None:
    datamodule = BlobDataModule()
    x_train, y_train = datamodule.splits["train"]
    x_held, y_held = datamodule.splits["held_out"]
    X_train, x_test, Y_train, y_test = notebook_data()
    assert x_train.shape == (4000, 64) and y_train.shape == (4000, 1)
    assert x_held.shape == (1000, 64) and y_held.shape == (1000, 1)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.float32
    assert torch.equal(x_train, X_train) and torch.equal(y_train, Y_train)
    assert torch.equal(x_held, x_test) and torch.equal(y_held, y_test)


def test_data_is_deterministic_and_follows_random_state() -> None:
    first, second = BlobDataModule(), BlobDataModule()
    assert torch.equal(first.splits["train"][0], second.splits["train"][0])
    other = BlobDataModule(random_state=7)
    assert not torch.equal(first.splits["train"][0], other.splits["train"][0])


def test_train_fraction_and_features_are_configurable() -> None:
    datamodule = BlobDataModule(n_samples=1000, n_features=10, train_fraction=0.5)
    assert datamodule.splits["train"][0].shape == (500, 10)
    assert datamodule.splits["held_out"][0].shape == (500, 10)
    assert datamodule.n_features == 10


def test_train_batches_are_the_notebooks_slices() -> None:
    datamodule = BlobDataModule()
    X_train, _, Y_train, _ = notebook_data()
    batches = list(datamodule.train_dataloader())
    assert len(batches) == len(datamodule.train_dataloader()) == 250
    for i, (x, y) in enumerate(batches):
        assert torch.equal(x, X_train[i * 16 : (i + 1) * 16])
        assert torch.equal(y, Y_train[i * 16 : (i + 1) * 16])


def test_last_batch_may_be_short() -> None:
    x = torch.arange(10.0).reshape(10, 1)
    sizes = [len(xb) for xb, _ in TensorBatches(x, x, batch_size=4)]
    assert sizes == [4, 4, 2]


def test_shuffle_is_a_seeded_permutation_per_epoch() -> None:
    x = torch.arange(100.0).reshape(100, 1)
    batches = TensorBatches(x, x * 2, batch_size=10, shuffle=True, seed=3)

    def next_epoch_rows() -> torch.Tensor:
        pairs = list(batches)
        rows = torch.cat([xb for xb, _ in pairs])
        assert torch.equal(torch.cat([yb for _, yb in pairs]), rows * 2)  # pairs stay together
        return rows

    epoch0, epoch1 = next_epoch_rows(), next_epoch_rows()
    assert torch.equal(epoch0.sort(dim=0).values, x)
    assert not torch.equal(epoch0, x) and not torch.equal(epoch0, epoch1)
    again = TensorBatches(x, x * 2, batch_size=10, shuffle=True, seed=3)
    assert torch.equal(torch.cat([xb for xb, _ in again]), epoch0)  # the same seed, the same order


def test_a_checking_iter_starts_no_epoch() -> None:
    """Lightning calls iter() once to check a loader is iterable: that must not count as an epoch."""
    x = torch.arange(20.0).reshape(20, 1)
    batches = TensorBatches(x, x, batch_size=5, shuffle=True)
    iter(batches)
    assert torch.equal(torch.cat([xb for xb, _ in batches]), torch.cat([xb for xb, _ in TensorBatches(x, x, 5, shuffle=True)]))


def test_state_dict_resumes_mid_epoch_with_the_next_unseen_batch() -> None:
    x = torch.arange(60.0).reshape(60, 1)
    straight = TensorBatches(x, x, batch_size=4, shuffle=True, seed=1)
    expected = [xb for _ in range(2) for xb, _ in straight]  # two whole epochs, 15 batches each

    first = TensorBatches(x, x, batch_size=4, shuffle=True, seed=1)
    seen = [xb for xb, _ in first]  # epoch 0
    iterator = iter(first)
    seen += [next(iterator)[0] for _ in range(6)]  # 6 batches into epoch 1, then "stopped"
    state = first.state_dict()
    assert state == {"epoch": 1, "served": 6}

    resumed = TensorBatches(x, x, batch_size=4, shuffle=True, seed=1)
    resumed.load_state_dict(state)
    seen += [xb for xb, _ in resumed]
    assert len(seen) == len(expected) and all(torch.equal(a, b) for a, b in zip(seen, expected))


def test_ranks_get_disjoint_equal_shares_of_batches() -> None:
    x = torch.arange(50.0).reshape(50, 1)
    shares = [list(TensorBatches(x, x, batch_size=4, rank=r, world_size=2)) for r in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == 6  # 13 batches: the odd one out is dropped
    rows = [set(torch.cat([xb for xb, _ in share]).flatten().tolist()) for share in shares]
    assert not rows[0] & rows[1]


def test_model_input_size_comes_from_the_data(tmp_path) -> None:
    cfg = compose_config(tmp_path, ["data.n_features=10", "model.hidden_sizes=[8]"])
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model, input_size=datamodule.n_features, optimizer=instantiate(cfg.optimizer))
    first, last = model.net[0], model.net[-2]
    assert (first.in_features, first.out_features, last.in_features) == (10, 8, 8)
    x, _ = next(iter(datamodule.train_dataloader()))
    assert model(x).shape == (16, 1)
