"""What replicas refuse: anything that would couple them, or that cannot be vectorised, as one line naming the key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch

from optlab.errors import ConfigError, UserError
from optlab.replicas.module import FORWARDED_HOOKS, UNFORWARDED_HOOKS

# Element-wise update rules: over stacked weights, K independent optimizers.
ELEMENTWISE_OPTIMIZERS = ("Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "ASGD", "NAdam", "RAdam", "RMSprop", "Rprop", "SGD")


def check_replicable(
    replicas: int, model_class: type, factories: Mapping[str, Any], ignored: Mapping[str, str], trainer: Mapping[str, Any]
) -> None:
    """What would couple the replicas, or cannot be vectorised, as one line naming the key."""
    if replicas == 1:
        return
    name = model_class.__name__
    if not callable(getattr(model_class, "model_step", None)):
        raise UserError(
            f"replicas={replicas}: {name} has no model_step(batch) to vectorise; replicas need its "
            "training/validation/test steps to take their loss from self.model_step(batch) (docs/replicas.md)"
        )
    if "optimizer" in ignored:
        raise UserError(
            f"replicas={replicas}: {ignored['optimizer']}; replicas build the optimizer from optimizer= over "
            "their stacked weights, so the model must take it from there"
        )
    if overridden := [
        hook for hook in UNFORWARDED_HOOKS if getattr(model_class, hook, None) is not getattr(L.LightningModule, hook)
    ]:
        raise UserError(
            f"replicas={replicas}: {name} overrides {', '.join(overridden)}, which replicas do not run per "
            f"replica; they run {', '.join(FORWARDED_HOOKS)} (docs/replicas.md)"
        )
    precision = str(trainer.get("precision", "32-true"))
    if precision.startswith("16"):
        raise ConfigError(
            "trainer.precision",
            precision,
            f"replicas={replicas}: float16's one gradient scaler would skip "
            "every replica's step when one replica's gradients overflow; use bf16-mixed or 32-true",
        )
    optimizer = factories.get("optimizer")
    target = getattr(optimizer, "func", None)
    if (
        optimizer is None
        or getattr(target, "__name__", None) not in ELEMENTWISE_OPTIMIZERS
        or not getattr(target, "__module__", "").startswith("torch.optim")
    ):
        shown = getattr(target, "__name__", None) or optimizer
        raise ConfigError(
            "optimizer._target_",
            shown,
            f"replicas={replicas} needs an element-wise torch optimizer "
            f"(one of {', '.join(ELEMENTWISE_OPTIMIZERS)}), which over stacked weights is one per replica",
        )
    scheduler = getattr(factories.get("scheduler"), "func", None)
    if scheduler is torch.optim.lr_scheduler.ReduceLROnPlateau:
        raise ConfigError(
            "scheduler._target_",
            scheduler.__name__,
            f"replicas={replicas}: a schedule that reads a "
            "metric would read the replicas' mean for all of them; use a fixed schedule (cosine, step)",
        )
    clip = trainer.get("gradient_clip_val")
    if clip and trainer.get("gradient_clip_algorithm", "norm") == "norm":
        raise ConfigError(
            "trainer.gradient_clip_val",
            clip,
            f"replicas={replicas}: the gradient norm would be one "
            "norm over all replicas; add +trainer.gradient_clip_algorithm=value (element-wise) or use replicas=1",
        )
