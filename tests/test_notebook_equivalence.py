"""The default run is the notebook: same data, model, seed and batch order, same losses."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import compose_config, read_scalars, train_here
from notebook_reference import NOTEBOOK_ADAM_LOSSES, notebook_losses

# Its module-scoped fixture runs once: the file's tests share one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("notebook_equivalence")


N_TRAIN = 4000  # epoch mean loss * 4000 == the notebook's sum of loss * 16 over 250 batches
# Adam over the epochs the notebook printed; the other optimizers over their first 3, where
# their curves change most.
EPOCHS = {"adam": len(NOTEBOOK_ADAM_LOSSES), "sgd": 3, "rmsprop": 3}


def assert_close_to_notebook(ours: list[float], expected: list[float]) -> None:
    """1e-3 relative, or 2e-4 absolute for the smallest values (the notebook prints 4 decimals)."""
    assert len(ours) >= len(expected)
    for epoch, (value, target) in enumerate(zip(ours, expected), start=1):
        assert abs(value - target) <= max(1e-3 * abs(target), 2e-4), f"epoch {epoch}: {value:.6f} vs {target:.6f}"


@pytest.fixture(scope="module")
def lightning_epoch_sums(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[float]]:
    """Train each notebook optimizer through the template and read its epoch losses back from TensorBoard."""
    sums = {}
    for optimizer, epochs in EPOCHS.items():
        run_dir: Path = tmp_path_factory.mktemp(optimizer)
        train_here(compose_config(run_dir, [f"optimizer={optimizer}", f"trainer.max_epochs={epochs}"]))
        epoch_means = [value for _, value in read_scalars(run_dir)["train/loss_epoch"]]
        sums[optimizer] = [mean * N_TRAIN for mean in epoch_means]
    return sums


@pytest.fixture(scope="module")
def plain_epoch_sums() -> dict[str, list[float]]:
    """The notebook's loop for each optimizer, run once for every test here."""
    return {optimizer: notebook_losses(optimizer, epochs) for optimizer, epochs in EPOCHS.items()}


def test_reference_loop_reproduces_the_notebook_printout(plain_epoch_sums: dict[str, list[float]]) -> None:
    assert_close_to_notebook(plain_epoch_sums["adam"], NOTEBOOK_ADAM_LOSSES)


def test_default_run_reproduces_the_notebook_adam_losses(lightning_epoch_sums: dict[str, list[float]]) -> None:
    assert len(lightning_epoch_sums["adam"]) == len(NOTEBOOK_ADAM_LOSSES)
    assert_close_to_notebook(lightning_epoch_sums["adam"], NOTEBOOK_ADAM_LOSSES)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_lightning_matches_the_plain_loop_epoch_by_epoch(
    optimizer: str, lightning_epoch_sums: dict[str, list[float]], plain_epoch_sums: dict[str, list[float]]
) -> None:
    assert len(lightning_epoch_sums[optimizer]) == EPOCHS[optimizer]
    assert_close_to_notebook(lightning_epoch_sums[optimizer], plain_epoch_sums[optimizer])
