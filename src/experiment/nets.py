"""The notebook's network in plain PyTorch: layers and weight initialisation, no Lightning."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from optlab.errors import InvalidArgument, is_int


def build_mlp(input_size: int, hidden_sizes: Sequence[int]) -> nn.Sequential:
    """Linear + ReLU per hidden size, then one sigmoid output unit.

    Layers are created in the notebook's order (fc1, fc2, out), so the same seed draws the
    same initial weights as ``NeuralNetwork()`` there.
    """
    if not all(is_int(width) and width >= 1 for width in hidden_sizes):
        raise InvalidArgument(
            "hidden_sizes", list(hidden_sizes), "expected a list of layer widths, each an integer >= 1, e.g. [256,1024]"
        )
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
        raise InvalidArgument("init", scheme, f"expected one of default, {', '.join(INITIALISERS)}")
    try:
        INITIALISERS[scheme](torch.empty(2, 2), **params)  # a trial on a small tensor: unknown or bad arguments
    except (TypeError, ValueError) as error:
        raise InvalidArgument(
            f"init_params.{scheme}", dict(params), f"not accepted by torch.nn.init.{scheme}_: {error}"
        ) from None
    for layer in net.modules():
        if isinstance(layer, nn.Linear):
            INITIALISERS[scheme](layer.weight, **params)
            nn.init.zeros_(layer.bias)
