"""The notebook's sigmoid MLP as a LightningModule with BCE loss and a config-chosen optimizer."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from optlab.errors import ConfigError, NumericalError

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]


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
        raise ConfigError("model.init", scheme, f"expected one of default, {', '.join(INITIALISERS)}")
    for layer in net.modules():
        if isinstance(layer, nn.Linear):
            try:
                INITIALISERS[scheme](layer.weight, **params)
            except TypeError as error:
                raise ConfigError(f"model.init_params.{scheme}", dict(params), f"not accepted by torch.nn.init.{scheme}_: {error}") from None
            nn.init.zeros_(layer.bias)


class BinaryClassifier(L.LightningModule):
    """Sigmoid MLP trained with ``BCELoss``.

    ``optimizer`` is a factory (a Hydra ``_partial_`` node) called with the parameters, so
    a new optimizer is a new YAML file, not new code.
    """

    def __init__(
        self,
        input_size: int,
        hidden_sizes: Sequence[int] = (256, 1024),
        optimizer: OptimizerFactory | None = None,
        init: str = "default",
        init_params: Mapping[str, Mapping[str, Any]] | None = None,
        scheduler: SchedulerFactory | None = None,
    ) -> None:
        super().__init__()
        # The factories are functools.partial objects: kept out of hparams so hparams.yaml and
        # the checkpoint stay plain data that yaml.safe_load and weights_only loading accept.
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.scheduler_factory = scheduler
        self.net = build_mlp(input_size, list(hidden_sizes))
        initialise(self.net, init, (init_params or {}).get(init, {}))
        self.loss_fn = nn.BCELoss()
        self.optimizer_factory = optimizer
        self._step_losses: list[Tensor] = []
        self._epoch_start_step = 0

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning records the running hook's name on the module around every hook call,
        # about 40 times per training step. nn.Module.__setattr__ checks parameters,
        # buffers and submodules first (~5 us); a string needs none of that.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise ValueError("BinaryClassifier needs an optimizer factory to train")
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "epoch"}}

    # Training losses stay on the device, one tensor per batch, and go to the loggers once
    # per epoch. ``self.log`` on every step costs about a third of a millisecond of
    # bookkeeping plus a host sync, more than a whole step of this model on a CPU.
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        try:
            loss = self.loss_fn(self(x), y)
        except RuntimeError as error:
            # BCELoss refuses inputs outside [0, 1]; after a divergence the sigmoid gives NaN.
            if "between 0 and 1" not in str(error):
                raise
            raise self._diverged("the model's outputs", self.global_step) from None
        if not self._step_losses:  # the epoch's first step (later than 0 when resumed mid-epoch)
            self._epoch_start_step = self.global_step
        self._step_losses.append(loss.detach())
        return loss

    # Lightning runs inspect.getfullargspec(training_step) on every step to decide whether to
    # pass batch_idx (~20 us); a precomputed signature turns that into an attribute lookup.
    training_step.__signature__ = inspect.signature(training_step)  # type: ignore[attr-defined]

    def _diverged(self, what: str, step: int) -> NumericalError:
        optimizer = self.trainer.optimizers[0]
        lr = optimizer.param_groups[0]["lr"]
        return NumericalError(
            f"training diverged at epoch {self.current_epoch}, step {step}: {what} became NaN or infinite. "
            f"Likely cause: a learning rate too large for {type(optimizer).__name__} (optimizer.lr={lr:g}); "
            "lower optimizer.lr, or clip gradients with +trainer.gradient_clip_val=1.0"
        )

    def _check_finite(self, losses: Tensor) -> None:
        """One host sync per epoch: finite losses and parameters, or the first step that was not."""
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            first = int((~finite).nonzero()[0])
            raise self._diverged("the training loss", self._epoch_start_step + first)
        if not all(bool(torch.isfinite(p).all()) for p in self.parameters()):
            raise self._diverged("the model's parameters", self.global_step)

    def on_train_epoch_end(self) -> None:
        if not self._step_losses:
            return
        losses = torch.stack(self._step_losses)
        self._step_losses = []
        self._check_finite(losses)
        self.log("train/loss_epoch", losses.mean(), sync_dist=True)
        if self.trainer.is_global_zero:
            self._log_step_losses(losses)

    def _log_step_losses(self, losses: Tensor) -> None:
        """``train/loss_step`` at every ``trainer.log_every_n_steps``-th step, counted from step 0 (0: none)."""
        every = self.trainer.log_every_n_steps
        if every < 1:
            return
        first = -self._epoch_start_step % every  # offset of the epoch's first step to log
        steps = range(self._epoch_start_step + first, self._epoch_start_step + len(losses), every)
        for step, value in zip(steps, losses[first::every].tolist()):
            for logger in self.loggers:
                logger.log_metrics({"train/loss_step": value}, step=step)

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        x, y = batch
        probabilities = self(x)
        accuracy = ((probabilities > 0.5).float() == y).float().mean()
        n = len(x)
        self.log(f"{stage}/loss", self.loss_fn(probabilities, y), batch_size=n, sync_dist=True)
        self.log(f"{stage}/acc", accuracy, batch_size=n, sync_dist=True)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")
