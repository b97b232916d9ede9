"""Several seeds of one model trained together in one Lightning run (``replicas=K``).

Lightning's fixed cost per step (its loops, hooks and logging) is paid once per step,
whatever the step computes; on a model this small it costs more than the model's own
arithmetic. Training K copies of the model in one step, their weights stacked along a
new first dimension and the step vectorised with ``torch.func.vmap``, pays it once for
K seeds.

What each replica is:

- its initial weights are those a single run with seed ``seed + k`` draws (the model is
  built K times, ``torch.manual_seed(seed + k)`` before each);
- it sees the run's batches (the data is made once, from the run's seed);
- its optimizer state is its own: an element-wise optimizer (Adam, SGD, RMSprop, ...) over
  stacked weights is K independent optimizers, and the loss minimised is the sum of the
  replicas' losses, so replica k's gradient is its own loss's;
- it is a run to the user: its metrics go to ``<run>/replica_NN/`` (TensorBoard events,
  ``metrics.jsonl``, ``result.json``, ``replica.json`` with its seed), under the names the
  model logs, so TensorBoard overlays replicas like separate runs and the sweep report
  counts each as a seed. The run's own loggers get the replicas' mean under the same
  names, which is also what callbacks (checkpointing, early stopping) and the optimised
  metric see.

The contract with the model is the one of Lightning-Hydra-style modules: its
``training_step``, ``validation_step`` and ``test_step`` take their loss from
``self.model_step(batch)``, a pure function of the weights and the batch. Only that call
is vectorised; the rest of each step (metric updates, ``self.log``) and the epoch hooks run
on each replica's own instance, so its torchmetrics objects accumulate its own numbers.

What couples replicas, and is refused: clipping the gradient norm (one norm over all
replicas), an optimizer that is not element-wise (L-BFGS, factored ones), a scheduler that
reads a metric (``ReduceLROnPlateau``), a model that builds its own optimizer, and buffers
(BatchNorm's running statistics, updated in place, which ``vmap`` cannot batch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap
from torchmetrics import Metric

from optlab.errors import UserError
from optlab.replicas.layout import module_layout, stored_layout
from optlab.replicas.records import replica_key
from optlab.upstream import current_hook, logs_this_step

# The model's hooks each replica runs on its own instance; any other hook it overrides is refused.
FORWARDED_HOOKS = (
    "setup",
    "on_fit_start",
    "on_train_start",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_validation_epoch_start",
    "on_validation_epoch_end",
    "on_test_epoch_start",
    "on_test_epoch_end",
    "training_step",
    "validation_step",
    "test_step",
)
UNFORWARDED_HOOKS = (
    "on_train_end",
    "on_validation_start",
    "on_validation_end",
    "on_test_start",
    "on_test_end",
    "on_fit_end",
    "teardown",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_test_batch_start",
    "on_test_batch_end",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "optimizer_step",
    "optimizer_zero_grad",
    "on_save_checkpoint",
    "on_load_checkpoint",
    "configure_callbacks",
    "configure_gradient_clipping",
    "predict_step",
    "backward",
    "on_validation_model_eval",
    "on_validation_model_train",
    "on_test_model_eval",
    "on_test_model_train",
    "transfer_batch_to_device",
    "on_before_batch_transfer",
    "on_after_batch_transfer",
)


class _ModelStep(nn.Module):
    """``model.model_step`` as a module's ``forward``, the call ``functional_call`` makes with other weights."""

    def __init__(self, model: L.LightningModule) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any) -> Any:
        return type(self.model).model_step(self.model, batch)


class Replicas(L.LightningModule):
    """K instances of one LightningModule trained as one: stacked weights, one vectorised ``model_step``.

    ``models[k]`` must have been built right after ``torch.manual_seed(seeds[k])``. Their
    weights move into this module's stacked parameters; each instance keeps views of its
    slice, so its own ``forward`` (and anything that calls it) sees its current weights.
    """

    def __init__(
        self,
        models: Sequence[L.LightningModule],
        seeds: Sequence[int],
        optimizer: Callable[..., torch.optim.Optimizer] | None,
        scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
        transposed: bool = True,
    ) -> None:
        super().__init__()
        if not models[0].automatic_optimization:
            raise UserError(
                f"replicas={len(models)}: {type(models[0]).__name__} steps its optimizer itself (manual "
                "optimization); replicas step one optimizer over all of them, so use replicas=1"
            )
        if buffers := [name for name, _ in models[0].named_buffers()]:
            raise UserError(
                f"replicas={len(models)}: {type(models[0]).__name__} has buffers ({', '.join(buffers)}), "
                "which vmap cannot update in place per replica; use replicas=1 or a model without them"
            )
        self.replicas = nn.ModuleList(models)
        self.seeds = list(seeds)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.transposed = transposed
        self.save_hyperparameters({"replicas": len(models), "seeds": self.seeds, "transposed": transposed})
        stacked, _ = stack_module_state(list(models))
        self._names = list(stacked)  # the model's own parameter names, e.g. net.0.weight
        # Matrices may be stored as [K, in, out] and handed to the model as [K, out, in] views
        # (optlab.replicas.layout says why). ParameterDict keys may not hold dots.
        self.stacked = nn.ParameterDict(
            {self._key(name): nn.Parameter(stored_layout(value, transposed)) for name, value in stacked.items()}
        )
        for model in models:
            model.requires_grad_(False)
            for name in self._names:
                owner, attribute = self._owner(model, name)
                delattr(owner, attribute)  # the stacked parameter is the replica's weight from now on
        self._step = vmap(self._one_step, in_dims=(0, None), randomness="different")
        # Built once, kept out of the module tree: replica 0's model_step as a forward, and each replica's self.log.
        object.__setattr__(self, "_step_module", _ModelStep(models[0]))
        self._replica_logs = [partial(self._log_replica, k) for k in range(len(models))]
        self._bind_views()

    @staticmethod
    def _key(name: str) -> str:
        return name.replace(".", ":")

    @staticmethod
    def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
        path, _, attribute = name.rpartition(".")
        return model.get_submodule(path), attribute

    def _weights(self) -> dict[str, Tensor]:
        """Every stacked parameter in the model's own layout, ``[K, *shape]``."""
        return {name: module_layout(self.stacked[self._key(name)], self.transposed) for name in self._names}

    def _bind_views(self) -> None:
        """Point each instance's weights at its slice of the stacked parameters (again after a move)."""
        # Views of the detached stacked tensors: they follow every in-place update (the optimizer's, a
        # checkpoint's) and stay usable with gradients on; training's gradients flow through model_step only.
        weights = {name: value.detach() for name, value in self._weights().items()}
        for k, model in enumerate(self.replicas):
            for name, value in weights.items():
                owner, attribute = self._owner(model, name)
                setattr(owner, attribute, value[k])

    def _apply(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Replicas:
        # .to(device), .double(), ...: the stacked parameters are new tensors, and the views follow them.
        super()._apply(fn, *args, **kwargs)
        self._bind_views()
        return self

    def _one_step(self, weights: dict[str, Tensor], batch: Any) -> Any:
        return functional_call(self._step_module, {f"model.{n}": w for n, w in weights.items()}, (batch,))

    # --- each replica's own step and hooks, with the vectorised model_step's results --------

    @contextmanager
    def _as_replica(self, k: int, share: Any = None) -> Iterator[list[bool]]:
        """Replica k's ``self.log`` goes to its own names; its ``model_step`` returns ``share``, its part of the batch."""
        model, called = self.replicas[k], [False]

        def model_step(batch: Any, *args: Any, **kwargs: Any) -> Any:
            called[0] = True
            return share

        # Instance attributes shadow the class's methods for this call only (plain functions:
        # nn.Module's __setattr__ has nothing to register).
        attributes = vars(model)
        attributes["log"] = self._replica_logs[k]
        if share is not None:
            attributes["model_step"] = model_step
        try:
            yield called
        finally:
            attributes.pop("log", None)
            attributes.pop("model_step", None)

    def _log_replica(self, k: int, name: str, value: Any, prog_bar: bool = False, **options: Any) -> None:
        if options.get("reduce_fx", "mean") not in ("mean", torch.mean):
            raise UserError(
                f"replicas={len(self.replicas)}: {type(self.replicas[k]).__name__} logs {name} with "
                f"reduce_fx={options['reduce_fx']!r}; replicas average each logged value, so only the mean is supported"
            )
        if self._unlogged_step(options):
            return
        self._logged.setdefault(name, []).append((value, {"prog_bar": prog_bar, **options}))
        self.log(f"{replica_key(k)}/{name}", value, **options)

    def _unlogged_step(self, options: Mapping[str, Any]) -> bool:
        """A per-step value at a step Lightning passes nothing to the loggers (``trainer.log_every_n_steps``).

        Each ``self.log`` of a per-step value costs Lightning about 0.8 ms here (it registers
        the value anew every step), K + 1 times a step with replicas: they are skipped where
        no logger would see them. The progress bar shows the last logged one.
        """
        if current_hook(self) != "training_step" or options.get("on_step") is False or options.get("on_epoch"):
            return False
        return not logs_this_step(self.trainer)

    def _log_means(self) -> None:
        """What every replica logged in this hook, averaged under the model's own name (a metric object: its value)."""
        for name, entries in self._logged.items():
            if len(entries) != len(self.replicas):
                continue
            values, options = [value for value, _ in entries], dict(entries[0][1])
            if not isinstance(values[0], Metric):
                self.log(name, _mean(values), **options)
                continue
            # A metric object's epoch value is computed at the epoch's end, under the name Lightning gives
            # it (``<name>_epoch`` when it is logged per step too); its per-step values stay the replicas' own.
            on_step, on_epoch = self._levels(options)
            if on_epoch:
                epoch_name = f"{name}_epoch" if on_step else name
                self._epoch_means.setdefault(self._stage(), {})[epoch_name] = (
                    values,
                    {**options, "on_step": False, "on_epoch": True},
                )
        self._logged = {}

    def _levels(self, options: Mapping[str, Any]) -> tuple[bool, bool]:
        """``on_step`` and ``on_epoch`` as Lightning resolves them in the current hook."""
        in_training_step = current_hook(self) == "training_step"
        on_step = options.get("on_step")
        on_epoch = options.get("on_epoch")
        return (in_training_step if on_step is None else on_step), (not in_training_step if on_epoch is None else on_epoch)

    def _stage(self) -> str:
        return str(self.trainer.state.stage)

    def _each(self, hook: str, *args: Any) -> list[Any]:
        """Run ``hook`` on every replica (its logs to its own names), then log their means."""
        self._logged: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
        results = []
        for k, model in enumerate(self.replicas):
            with self._as_replica(k):
                results.append(getattr(model, hook)(*args))
        self._log_means()
        return results

    def _steps(self, hook: str, batch: Any, batch_idx: int) -> list[Any]:
        """The vectorised ``model_step``, then every replica's own ``<stage>_step`` on its share."""
        self._logged = {}
        shares = unstack(self._step(self._weights(), batch), len(self.replicas))
        results = []
        for k, model in enumerate(self.replicas):
            with self._as_replica(k, shares[k]) as called:
                results.append(getattr(model, hook)(batch, batch_idx))
            if not called[0]:
                raise UserError(
                    f"replicas={len(self.replicas)}: {type(model).__name__}.{hook} does not take its loss "
                    "from self.model_step(batch), the one call replicas vectorise (docs/replicas.md)"
                )
        self._log_means()
        return results

    # --- Lightning's hooks ---------------------------------------------------------------

    def setup(self, stage: str) -> None:
        # Per stage, the metric objects whose mean is logged when that stage's epoch ends.
        self._epoch_means: dict[str, dict[str, tuple[list[Metric], dict[str, Any]]]] = {}
        for model in self.replicas:
            model.trainer = self.trainer
        self._each("setup", stage)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        losses = [
            result["loss"] if isinstance(result, Mapping) else result for result in self._steps("training_step", batch, batch_idx)
        ]
        # The sum: replica k's gradient is its own loss's, whatever the others'.
        return torch.stack(losses).sum()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._steps("validation_step", batch, batch_idx)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._steps("test_step", batch, batch_idx)

    def on_fit_start(self) -> None:
        self._each("on_fit_start")

    def on_train_start(self) -> None:
        self._each("on_train_start")

    def on_train_epoch_start(self) -> None:
        self._epoch_means.pop(self._stage(), None)
        self._each("on_train_epoch_start")

    def on_train_epoch_end(self) -> None:
        self._each("on_train_epoch_end")
        self._log_epoch_means()

    def on_validation_epoch_start(self) -> None:
        self._each("on_validation_epoch_start")

    def on_validation_epoch_end(self) -> None:
        self._each("on_validation_epoch_end")
        self._log_epoch_means()

    def on_test_epoch_start(self) -> None:
        self._each("on_test_epoch_start")

    def on_test_epoch_end(self) -> None:
        self._each("on_test_epoch_end")
        self._log_epoch_means()

    def _log_epoch_means(self) -> None:
        """The means of this stage's metric objects (training's, validation's or the test's), once its epoch ends."""
        for name, (metrics, options) in self._epoch_means.pop(self._stage(), {}).items():
            self.log(name, _mean([metric.compute() for metric in metrics]), **options)

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise ValueError("Replicas needs an optimizer factory to train (a checkpoint loaded to be evaluated has none)")
        optimizer = self.optimizer_factory(self.stacked.values())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "epoch"}}


def unstack(outputs: Any, count: int) -> list[Any]:
    """The vectorised ``model_step``'s outputs (tensors ``[K, ...]`` in a tuple, list or dict) as K per-replica ones."""
    if isinstance(outputs, Tensor):
        return list(outputs.unbind(0))
    if isinstance(outputs, Mapping):
        parts = {key: unstack(value, count) for key, value in outputs.items()}
        return [type(outputs)({key: value[k] for key, value in parts.items()}) for k in range(count)]
    if isinstance(outputs, tuple | list):
        columns = [unstack(output, count) for output in outputs]
        rebuild = type(outputs)._make if hasattr(outputs, "_fields") else type(outputs)  # a namedtuple, or a plain sequence
        return [rebuild(column[k] for column in columns) for k in range(count)]
    raise TypeError(f"model_step returned a {type(outputs).__name__}; replicas split tensors, or tuples, lists and dicts of them")


def _mean(values: Sequence[Any]) -> Tensor:
    """The replicas' mean of one logged value, in float32 or wider (a 64-true run's means stay float64)."""
    tensors = [torch.as_tensor(value).detach() for value in values]
    dtype = torch.promote_types(tensors[0].dtype, torch.float32)
    return torch.stack([tensor.to(dtype) for tensor in tensors]).mean()
