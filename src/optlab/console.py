"""What a run shows on the console: a short header, the progress bar, one row per epoch, a closing block;
and the resolved config it saves (``config_tree.txt``) and prints with ``print_config=true``.

Everything else Lightning says goes to the run's ``train.log``: Hydra's logging config
(``configs/hydra/default.yaml``) installs :class:`TqdmHandler` and :class:`ConsoleFilter` on
the console handler, and the tasks call :func:`quiet_lightning`.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from optlab.history import RECORD_KEYS, read_history, shown_by_default
from optlab.hydra_context import launched_rank
from optlab.replicas.records import is_replica_metric, replica_summary

# Lightning's INFO lines that do not show up in the console: the header and the epoch
# table say the same, or they are advertisements. MLflow's (and its database migrations')
# INFO lines are bookkeeping of the same kind.
_QUIET_LOGGERS = ("lightning", "pytorch_lightning", "mlflow", "alembic")
# Lightning's packages that add a console handler of their own when imported before logging is configured.
_LIGHTNING_PACKAGES = ("lightning.pytorch", "lightning.fabric")
# Warnings that report normal operation: a first MLflow run creates its experiment.
_NOT_WARNINGS = ("Experiment with name",)
# Lightning's warnings about what the template does by design, which no user can act on: a resumed
# run writes its checkpoints into its own new directory. They stay in train.log.
_BY_DESIGN = ("The dirpath has changed from",)


class TqdmHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A console handler that writes above an active progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            # One write, newline included: jobs of a parallel sweep share the terminal, and a line-buffered stream
            # would flush a record and its newline separately, letting another job's line in between.
            tqdm.write(self.format(record) + "\n", file=self.stream, end="")
        except Exception:  # noqa: BLE001  (logging must never raise)
            self.handleError(record)


class LabelledFormatter(logging.Formatter):
    """Another formatter's lines, each after a label: jobs that print side by side stay apart."""

    def __init__(self, label: str, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.label, self.inner = label, inner or logging.Formatter("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(f"{self.label}{line}" for line in self.inner.format(record).splitlines())


def label_console_lines(label: str) -> None:
    """Every line this process prints to the console starts with ``label``; its ``train.log`` keeps them as they are."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            if not isinstance(handler.formatter, LabelledFormatter):
                handler.setFormatter(LabelledFormatter(label, handler.formatter))


def label_parallel_job() -> None:
    """In a sweep whose jobs run side by side, every console line of this job starts with its number (``#3``)."""
    from optlab.hydra_context import in_sweep
    from optlab.threads import parallel_jobs

    if in_sweep() and parallel_jobs() > 1:
        from hydra.core.hydra_config import HydraConfig

        label_console_lines(f"#{HydraConfig.get().job.num:<3} ")


class ConsoleFilter(logging.Filter):
    """Keep Lightning's warnings and errors in the console, not its INFO chatter (it stays in train.log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(_QUIET_LOGGERS) and (
            record.levelno < logging.WARNING or str(record.msg).startswith(_NOT_WARNINGS)
        ):
            return False
        if record.name == "py.warnings":  # a Python warning: its message, not the file and line it came from
            text = _warning_text(str(record.args[0]) if record.args else record.getMessage())
            if text.startswith(_BY_DESIGN):
                return False
            record.msg, record.args = f"warning: {text}", ()
        return True


def _warning_text(formatted: str) -> str:
    """``path:12: UserWarning: text`` -> ``text`` (warnings.formatwarning's layout)."""
    first_line = formatted.strip().splitlines()[0] if formatted.strip() else formatted
    head, separator, text = first_line.partition("Warning: ")
    if separator:
        return text
    located = re.match(r"\S+\.py:\d+: (.*)", first_line)  # Lightning's rank_zero_warn: "file.py:566: text"
    return located.group(1) if located else first_line


def quiet_lightning() -> None:
    """Send Lightning's messages through Hydra's handlers only, once, and drop a warning no user can act on.

    Lightning's top-level package adds a console handler to the ``lightning`` logger and still
    lets its records reach the root logger, where Hydra prints them a second time.
    """
    for name in (*_QUIET_LOGGERS, *_LIGHTNING_PACKAGES):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True  # imported before logging was configured, Lightning turns propagation off
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


def layer_widths(model: Any) -> list[int]:
    """``[64, 256, 1024, 1]`` for a model whose only weighted layers are Linear ones; else nothing."""
    from torch import nn

    # A Linear layer counts without parameters of its own: a replica's weights are slices of stacked ones.
    weighted = [
        module
        for module in model.modules()
        if isinstance(module, nn.Linear) or next(module.parameters(recurse=False), None) is not None
    ]
    if not weighted or not all(isinstance(module, nn.Linear) for module in weighted):
        return []
    return [weighted[0].in_features, *(layer.out_features for layer in weighted)]


def parameters(model: Any) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def factory_row(cfg: Any, group: str, choice: str | None, ignored: Mapping[str, str], model_class: type) -> str | None:
    """What ``configure_optimizers`` gets for ``group``: the group's choice, the model config's own node, or nothing."""
    from omegaconf import OmegaConf

    nested = OmegaConf.select(cfg, f"model.{group}")
    if group in ignored and nested is None:
        return f"{model_class.__name__}.configure_optimizers (it takes no {group} argument)" if group == "optimizer" else None
    node, label = (nested, f"model.{group}") if group in ignored else (cfg.get(group), choice or group)
    if node is None:
        return None
    arguments = OmegaConf.to_container(node, resolve=True)
    return f"{label}: {arguments['_target_']}({describe_arguments(arguments)})"


def run_header(
    cfg: Any, choices: Mapping[str, str], datamodule: Any, built: Any, trainer: Any, threads: int, output_dir: Path
) -> str:
    """What runs, in a few lines: data, model, optimizer, trainer, where the outputs go."""
    data_class = type(datamodule).__name__
    data = f"{choices.get('data', data_class)}: {data_class}"
    if (batch_size := cfg.data.get("batch_size")) is not None:
        data += f", batch {batch_size}"
    if built.from_data:
        data += "; the model gets " + ", ".join(f"{name}={value}" for name, value in built.from_data.items())
    model = built.models[0]  # with replicas=K: one replica's layers and parameters, K times
    widths = "-".join(map(str, layer_widths(model)))
    count = parameters(built.model) // built.replicas  # a replica's weights are views into the stacked parameters
    network = f"{choices.get('model', type(model).__name__)}: {widths + ', ' if widths else ''}{count:,} parameters"
    if built.replicas > 1:
        network += f"; {built.replicas} replicas, seeds {built.seeds[0]}..{built.seeds[-1]}"
    rows = [("data", data), ("model", network)]
    for group in ("optimizer", "scheduler"):
        if text := factory_row(cfg, group, choices.get(group), built.ignored, type(model)):
            rows.append((group, text))
    accelerator = type(trainer.accelerator).__name__.removesuffix("Accelerator").lower()
    epochs = plural(trainer.max_epochs, "epoch") if trainer.max_steps < 0 else plural(trainer.max_steps, "step")
    strategy = type(trainer.strategy).__name__.removesuffix("Strategy")
    rows.append(
        (
            "trainer",
            f"{epochs} on {accelerator} x{trainer.num_devices * trainer.num_nodes} ({strategy}), "
            f"{trainer.precision}, {plural(threads, 'torch thread')}",
        )
    )
    rows.append(("outputs", relative(output_dir)))
    return header(rows)


def metric_list(metrics: Mapping[str, float]) -> str:
    """``loss 0.000123, acc 0.999`` for ``test/loss``, ``test/acc``: the names' shared prefix said once, by the row's label."""
    names = list(metrics)
    shared = os.path.commonprefix(names) if len(names) > 1 else ""
    cut = max(shared.rfind("/"), shared.rfind("_")) + 1
    return ", ".join(f"{name[cut:]} {value:.6g}" for name, value in metrics.items())


def closing_block(rows: Sequence[tuple[str, str | None]], output_dir: Path, loggers: Mapping[str, Any] | None) -> str:
    """The run's final numbers (rows a task chose, e.g. test and best), then where to look."""
    shown = [(label, text) for label, text in rows if text]
    shown.append(("run", relative(output_dir)))
    shown += [("look", command) for command in look_commands(loggers, output_dir)]
    return header(shown)


def profile_rows(profiler: Any, fit_seconds: float, run_dir: Path) -> list[tuple[str, str | None]]:
    """A profiler's summary on the console: the hooks that took the most of training, and where its report went.

    Lightning's ``SimpleProfiler`` times each hook (``recorded_durations``); its full table goes
    to ``fit-<filename>.txt`` in its ``dirpath``, or to ``train.log`` without one. The loops'
    own ``run_*`` spans hold the hooks, so they are left out of the ranking.
    """
    durations = getattr(profiler, "recorded_durations", None)
    if not durations or fit_seconds <= 0:
        return []
    totals = {action.rsplit("]", 1)[-1]: sum(times) for action, times in durations.items() if not action.startswith("run_")}
    slowest = sorted(totals.items(), key=lambda item: item[1], reverse=True)[:3]
    dirpath, filename = getattr(profiler, "dirpath", None), getattr(profiler, "filename", None)
    report = Path(dirpath) / f"fit-{filename}.txt" if dirpath and filename else run_dir / "train.log"
    where = report.name if report.parent.resolve() == run_dir.resolve() else relative(report)
    # "[LightningModule]BinaryClassifier.optimizer_step" -> "optimizer_step": the hook, short enough for 80 columns
    spent = ", ".join(f"{name.rsplit('.', 1)[-1]} {100 * seconds / fit_seconds:.0f} %" for name, seconds in slowest)
    return [("profile", f"{spent} of the fit"), ("hooks", f"{where}: every hook's time (hooks nest: shares overlap)")]


def metrics_of(record: Mapping[str, Any]) -> dict[str, float]:
    """A history record's metrics, without its bookkeeping and running bests (``val/acc_best`` is no fact of that epoch)."""
    return {name: value for name, value in record.items() if name not in RECORD_KEYS and shown_by_default(name)}


def best_record(records: Sequence[Mapping[str, Any]], metric: str, direction: str) -> Mapping[str, Any] | None:
    """The first record with the best value of ``metric`` (what a ModelCheckpoint monitoring it keeps)."""
    scored = [record for record in records if metric in record and record[metric] == record[metric]]  # not NaN
    if not scored:
        return None
    pick = min if direction == "minimize" else max
    return pick(scored, key=lambda record: record[metric])


def when(record: Mapping[str, Any]) -> str:
    epoch = record.get("epoch")
    return f"epoch {int(epoch) + 1}" if epoch is not None else f"step {record.get('step')}"


def outcome_rows(
    test: Mapping[str, float] | str,
    run_dir: Path,
    cfg: Any,
    best_file: str | None,
    each_replica: Sequence[Mapping[str, float]] = (),
) -> list[tuple[str, str | None]]:
    """The closing block's numbers, each row one fact: the test (or why there was none), the last validation, the best one
    and where it is kept."""
    history = read_history(run_dir)
    metric, direction = cfg.optimized_metric, cfg.optimized_direction
    validations = history.stage_records("validate")
    if isinstance(test, str):
        tested = test
    else:
        tested = metric_list({name: value for name, value in test.items() if not is_replica_metric(name)})
        if tested and (trained := history.stage_records("train")):  # the model as training left it, not best.ckpt's
            tested = f"{when(trained[-1])} weights: {tested}"
    rows: list[tuple[str, str | None]] = [("test", tested)]
    if validations:
        rows.append(("last val", f"{when(validations[-1])}: {metric_list(metrics_of(validations[-1]))}"))
    stage = history.stage_of(metric)
    best = best_record(history.stage_records(stage) if stage else [], metric, direction)
    if best is not None:
        kept = f" ({Path(best_file).name})" if best_file else ""  # the run row above says where the run is
        label = "best val" if stage == "validate" else "best"
        rows.append((label, f"{when(best)}{kept}, by {metric}: {metric_list(metrics_of(best))}"))
    rows.append(("replicas", replica_summary(metric, each_replica)))
    return rows


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


# The composed config as a tree, groups first: saved with every run, printed on request.
GROUP_ORDER = ("data", "model", "optimizer", "scheduler", "trainer", "callbacks", "logger", "paths")
TREE_FILE = "config_tree.txt"


def config_tree(cfg: DictConfig) -> Any:
    """A ``rich`` tree of the resolved config: every value as the run uses it."""
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    keys = [k for k in GROUP_ORDER if k in cfg] + [k for k in cfg if k not in GROUP_ORDER]
    for key in keys:
        node = cfg[key]
        text = OmegaConf.to_yaml(node, resolve=True) if isinstance(node, DictConfig) else f"{node}\n"
        tree.add(key).add(Syntax(text.rstrip(), "yaml", theme="ansi_dark", background_color="default"))
    return tree


def print_config_tree(cfg: DictConfig) -> None:
    from rich import print as rich_print

    rich_print(config_tree(cfg))


def save_config_tree(cfg: DictConfig, output_dir: Path) -> None:
    """Plain text next to ``.hydra/config.yaml`` (which keeps the interpolations unresolved), printed with ``print_config``.

    Rank 0's alone: DDP's other ranks share its directory.
    """
    from rich.console import Console

    if launched_rank() != 0:
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    with (output_dir / TREE_FILE).open("w") as stream:
        Console(file=stream, color_system=None, width=120).print(config_tree(cfg))
    if cfg.get("print_config"):
        print_config_tree(cfg)
