"""Each optimizer config builds the torch optimizer the notebook used, with its arguments."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import CONFIG_DIR, compose_config

NOTEBOOK_OPTIMIZERS = {
    "adam": (torch.optim.Adam, {"lr": 0.001}),
    "sgd": (torch.optim.SGD, {"lr": 0.01, "momentum": 0.9}),
    "rmsprop": (
        torch.optim.RMSprop,
        {"lr": 0.01, "alpha": 0.9, "eps": 1e-8, "weight_decay": 0.1, "momentum": 0.1, "centered": True},
    ),
    "adamw": (torch.optim.AdamW, {"lr": 0.001, "weight_decay": 0.01}),
}
OPTIMIZER_FILES = sorted(path.stem for path in (CONFIG_DIR / "optimizer").glob("*.yaml"))


def build(tmp_path: Path, overrides: list[str]) -> torch.optim.Optimizer:
    cfg = compose_config(tmp_path, overrides)
    return instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(3))])


@pytest.mark.parametrize("name", sorted(NOTEBOOK_OPTIMIZERS))
def test_optimizer_config_builds_the_right_class_and_arguments(tmp_path: Path, name: str) -> None:
    expected_class, expected_args = NOTEBOOK_OPTIMIZERS[name]
    optimizer = build(tmp_path, [f"optimizer={name}"])
    assert type(optimizer) is expected_class
    for key, value in expected_args.items():
        assert optimizer.defaults[key] == value, key


@pytest.mark.parametrize("name", OPTIMIZER_FILES)
def test_every_optimizer_file_passes_its_values_to_torch(tmp_path: Path, name: str) -> None:
    """A new optimizer is one YAML file; whatever it sets reaches the torch optimizer."""
    node = OmegaConf.load(CONFIG_DIR / "optimizer" / f"{name}.yaml")
    assert node._partial_ is True
    optimizer = build(tmp_path, [f"optimizer={name}"])
    for key, value in node.items():
        if not key.startswith("_"):
            assert optimizer.defaults[key] == value, (name, key)


def test_any_torch_argument_can_be_overridden(tmp_path: Path) -> None:
    optimizer = build(tmp_path, ["optimizer=adam", "optimizer.lr=0.05", "+optimizer.amsgrad=true"])
    assert optimizer.defaults["lr"] == 0.05 and optimizer.defaults["amsgrad"] is True
