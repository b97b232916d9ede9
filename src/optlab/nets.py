"""The notebook's network in plain PyTorch: layers and weight initialisation, no Lightning."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn


def build_mlp(input_size: int, hidden_sizes: Sequence[int]) -> nn.Sequential:
    """Linear + ReLU per hidden size, then one sigmoid output unit.

    Layers are created in the notebook's order (fc1, fc2, out), so the same seed draws the
    same initial weights as ``NeuralNetwork()`` there.
    """
    layers: list[nn.Module] = []
    width = input_size
    for hidden in hidden_sizes:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers += [nn.Linear(width, 1), nn.Sigmoid()]
    return nn.Sequential(*layers)


# The notebook's weight-initialisation section, as schemes for every Linear layer's weights
# (biases start at zero). "default" keeps PyTorch's own (Kaiming-uniform) initialisation.
INITIALISERS: dict[str, Callable[..., Tensor]] = {
    "normal": nn.init.normal_,
    "uniform": nn.init.uniform_,
    "xavier_uniform": nn.init.xavier_uniform_,
    "kaiming_normal": nn.init.kaiming_normal_,
}


def initialise(net: nn.Module, scheme: str, params: Mapping[str, Any]) -> None:
    """Re-draw every Linear layer's weights with ``scheme`` (from the current torch seed)."""
    if scheme == "default":
        return
    if scheme not in INITIALISERS:
        raise ValueError(f"init={scheme!r}: expected one of default, {', '.join(INITIALISERS)}")
    for layer in net.modules():
        if isinstance(layer, nn.Linear):
            INITIALISERS[scheme](layer.weight, **params)
            nn.init.zeros_(layer.bias)
