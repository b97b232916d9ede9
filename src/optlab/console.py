"""What a run prints: a short header, the progress bar, one row per epoch, a closing block.

Everything else Lightning says still goes to the run's ``train.log``; the console keeps
what a user reads or acts on. Hydra's logging config (``configs/hydra/default.yaml``)
installs :class:`ConsoleFilter` on the console handler.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Lightning's INFO lines that do not show up in the console: the header and the epoch
# table say the same, or they are advertisements. MLflow's (and its database migrations')
# INFO lines are bookkeeping of the same kind.
_QUIET_LOGGERS = ("lightning", "pytorch_lightning", "mlflow", "alembic")
# Warnings that report normal operation: a first MLflow run creates its experiment.
_NOT_WARNINGS = ("Experiment with name",)


class TqdmHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A console handler that writes above an active progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001  (logging must never raise)
            self.handleError(record)


class ConsoleFilter(logging.Filter):
    """Keep Lightning's warnings and errors in the console, not its INFO chatter (it stays in train.log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(_QUIET_LOGGERS) and (
            record.levelno < logging.WARNING or str(record.msg).startswith(_NOT_WARNINGS)
        ):
            return False
        if record.name == "py.warnings":  # a Python warning: its message, not the file and line it came from
            text = str(record.args[0]) if record.args else record.getMessage()
            record.msg, record.args = f"warning: {_warning_text(text)}", ()
        return True


def _warning_text(formatted: str) -> str:
    """``path:12: UserWarning: text`` -> ``text`` (warnings.formatwarning's layout)."""
    first_line = formatted.strip().splitlines()[0] if formatted.strip() else formatted
    head, separator, text = first_line.partition("Warning: ")
    return text if separator else first_line


def quiet_lightning() -> None:
    """Send Lightning's messages through Hydra's handlers only, once, and drop a warning no user can act on.

    Lightning's top-level package adds a console handler to the ``lightning`` logger and still
    lets its records reach the root logger, where Hydra prints them a second time.
    """
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).handlers.clear()
    # MLflow, once imported, would print through a handler of its own; its records go through Hydra's.
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    logging.captureWarnings(True)  # warnings reach the console filter and train.log
    # Raised inside Lightning's own pytree helper with torch >= 2.13; nothing in a user's code causes it.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)
    # On any machine with SLURM's client installed; this template runs on SLURM through hydra/launcher=slurm.
    warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system but is not used")


def describe_arguments(arguments: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in arguments.items() if not str(key).startswith("_"))


def header(rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {text}" for label, text in rows)


def tensorboard_command(log_dir: Path) -> str:
    return f"tensorboard --logdir {relative(log_dir)}"


def look_commands(loggers: Mapping[str, Any] | None, log_dir: Path, sweep: bool = False) -> list[str]:
    """How to open what the configured loggers wrote under ``log_dir``, one line per logger.

    ``log_dir`` is a run directory, or with ``sweep`` a sweep directory whose jobs are its
    subdirectories. Read from the ``logger`` config rather than the logger objects, so a
    sweep's closing screen can say the same without building them.
    """
    runs = relative(log_dir) + ("/*" if sweep else "")
    commands = []
    for node in (loggers or {}).values():
        target = str((node or {}).get("_target_", ""))
        if target.endswith("TensorBoardLogger"):
            commands.append(tensorboard_command(log_dir))
        elif target.endswith("MLFlowLogger"):
            commands.append(f"mlflow ui --backend-store-uri {node.get('tracking_uri')}")
        elif target.endswith("WandbLogger") and node.get("offline"):
            commands.append(f"wandb sync {runs}/wandb/offline-run-*  (offline: this uploads the runs)")
        elif target.endswith("CSVLogger"):
            commands.append(f"{runs}/{node.get('name', 'lightning_logs')}/metrics.csv")
    return list(dict.fromkeys(commands))


def relative(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, as a user would type it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _declares(model: Any, argument: str) -> bool:
    import inspect

    return argument in inspect.signature(type(model)).parameters


def layer_widths(model: Any) -> list[int]:
    """``[64, 256, 1024, 1]`` for a model whose only weighted layers are Linear ones; else nothing."""
    from torch import nn

    # A Linear layer counts without parameters of its own: a replica's weights are slices of stacked ones.
    weighted = [module for module in model.modules()
                if isinstance(module, nn.Linear) or next(module.parameters(recurse=False), None) is not None]
    if not weighted or not all(isinstance(module, nn.Linear) for module in weighted):
        return []
    return [weighted[0].in_features, *(layer.out_features for layer in weighted)]


def parameters(model: Any) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def run_header(cfg: Any, choices: Mapping[str, str], datamodule: Any, model: Any, trainer: Any, threads: int,
               output_dir: Path, replicas: Sequence[Any] = ()) -> str:
    """What runs, in a few lines: data, model, optimizer, trainer, where the outputs go."""
    from omegaconf import OmegaConf

    data = choices.get("data", type(datamodule).__name__)
    if hasattr(datamodule, "splits"):
        (x_train, _), (x_held, _) = datamodule.splits["train"], datamodule.splits["held_out"]
        data += f": {len(x_train)} training / {len(x_held)} held-out rows of {x_train.shape[1]} features, batch {datamodule.batch_size}"
    count = parameters(model) // max(1, len(replicas))
    model = replicas[0] if replicas else model  # with replicas=K: one replica's layers and parameters, K times
    widths = "-".join(map(str, layer_widths(model)))
    network = f"{choices.get('model', type(model).__name__)}: {widths + ', ' if widths else ''}{count:,} parameters"
    if replicas:
        network += f", x{len(replicas)} replicas trained together (seeds {cfg.seed}..{cfg.seed + len(replicas) - 1})"
    optimizer = OmegaConf.to_container(cfg.optimizer, resolve=True)
    rows = [("data", data), ("model", network)]
    if _declares(model, "optimizer"):
        rows.append(("optimizer", f"{choices.get('optimizer', '')}: {optimizer['_target_']}({describe_arguments(optimizer)})"))
    else:
        rows.append(("optimizer", f"{type(model).__name__}.configure_optimizers (it takes no optimizer argument)"))
    if cfg.get("scheduler") and _declares(model, "scheduler"):
        scheduler = OmegaConf.to_container(cfg.scheduler, resolve=True)
        rows.append(("scheduler", f"{scheduler['_target_']}({describe_arguments(scheduler)})"))
    accelerator = type(trainer.accelerator).__name__.removesuffix("Accelerator").lower()
    epochs = plural(trainer.max_epochs, "epoch") if trainer.max_steps < 0 else plural(trainer.max_steps, "step")
    strategy = type(trainer.strategy).__name__.removesuffix("Strategy")
    rows.append(("trainer", f"{epochs} on {accelerator} x{trainer.num_devices * trainer.num_nodes} ({strategy}), "
                            f"precision {trainer.precision}, torch threads: {threads}"))
    rows.append(("outputs", f"{relative(output_dir)}  (resolved config: config_tree.txt; print it with print_config=true)"))
    return header(rows)


def metric_list(metrics: Mapping[str, float], prefix: str, suffix: str = "") -> str:
    """``loss 0.000123, acc 0.999``: the metrics named ``<prefix>*<suffix>``, as the run logged them."""
    shown = [(name.removeprefix(prefix).removesuffix(suffix), value) for name, value in metrics.items()
             if name.startswith(prefix) and name.endswith(suffix) and (suffix or not name.endswith(("_best", "_step")))]
    return ", ".join(f"{name} {value:.6g}" for name, value in shown)


def closing_block(metrics: Mapping[str, float], output_dir: Path, loggers: Mapping[str, Any] | None,
                  replicas: str | None = None) -> str:
    """The run's final numbers, whatever the model logged (with replicas: their mean, then its spread), then where to look."""
    rows = [(label, text) for label, text in (
        ("test", metric_list(metrics, "test/")),
        ("val", metric_list(metrics, "val/")),
        ("best val", metric_list(metrics, "val/", "_best")),
        ("replicas", replicas),
    ) if text]
    rows.append(("run", relative(output_dir)))
    rows += [("look", command) for command in look_commands(loggers, output_dir)]
    return header(rows)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")
