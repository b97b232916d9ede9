"""The protocol as one sweep: tune every optimizer alike, confirm the best on fresh seeds, write the report."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from optlab.building import target_class
from optlab.errors import ConfigError
from optlab.protocol import figures, tables
from optlab.protocol.analysis import TaskResult, best_learning_rate, default_target, performance_profile, seeds_of
from optlab.protocol.plan import Settings, Task, confirm_run, defaults_runs, learning_rates, torch_defaults, tuning_runs
from optlab.protocol.preflight import replicas_refused
from optlab.protocol.stages import Launch, Stages

log = logging.getLogger(__name__)


def settings_from(params: Mapping[str, Any]) -> Settings:
    """The sweeper's settings, each refused in one line naming its key when it cannot work."""
    optimizers = tuple(params.get("optimizers") or ())
    grid = params.get("lr_grid") or {}
    if not optimizers:
        raise ConfigError("hydra.sweeper.optimizers", list(optimizers), "expected the optimizer= choices to compare")
    low, high, points = grid.get("low"), grid.get("high"), grid.get("points")
    if not (isinstance(low, int | float) and isinstance(high, int | float) and 0 < low < high):
        raise ConfigError("hydra.sweeper.lr_grid", dict(grid), "expected 0 < low < high")
    if not (isinstance(points, int) and points >= 1):
        raise ConfigError("hydra.sweeper.lr_grid.points", points, "expected a whole number of learning rates >= 1")
    for key in ("tuning_seeds", "confirm_seeds"):
        if not (isinstance(params.get(key), int) and params[key] >= 1):
            raise ConfigError(f"hydra.sweeper.{key}", params.get(key), "expected a whole number of seeds >= 1")
    if params.get("seeds_as") not in ("replicas", "jobs"):
        raise ConfigError("hydra.sweeper.seeds_as", params.get("seeds_as"), "expected replicas or jobs")
    return Settings(
        optimizers,
        learning_rates(low, high, points),
        params["tuning_seeds"],
        params["confirm_seeds"],
        params["seeds_as"],
        params.get("target"),
    )


def split_arguments(arguments: Sequence[str], listed: Sequence[Any], composed: str) -> tuple[list[Task], list[str]]:
    """The tasks (each listed one, or each combination of the command line's sweeps) and the overrides every job gets."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(arguments))
    common = [override.input_line for override in parsed if not override.is_sweep_override()]
    swept = [
        [f"{override.get_key_element()}={value}" for value in override.sweep_string_iterator()]
        for override in parsed
        if override.is_sweep_override()
    ]
    combinations = [list(task) for task in itertools.product(*swept)] if swept else [[]]
    if listed:
        combinations = [
            [*entry] if not isinstance(entry, Mapping) else [f"{key}={value}" for key, value in entry.items()] for entry in listed
        ]
    return [Task(task_name(overrides, composed), tuple(overrides)) for overrides in combinations], common


def task_name(overrides: Sequence[str], composed: str) -> str:
    """The task's data set, or its overrides; ``composed``: the data the command composes without them."""
    values = dict(item.split("=", 1) for item in overrides)
    return values.get("data") or ",".join(overrides) or composed


def optimizer_defaults(
    optimizers: Sequence[str], compose: Callable[[list[str]], DictConfig], common: Sequence[str]
) -> dict[str, list[str]]:
    """Per optimizer, the overrides that put what its config sets back to torch's own defaults."""
    defaults = {}
    for optimizer in optimizers:
        node = compose([*common, f"optimizer={optimizer}"]).optimizer
        defaults[optimizer] = torch_defaults(target_class(node, "optimizer"), OmegaConf.to_container(node, resolve=True))
    return defaults


def replicable(
    tasks: Sequence[Task], settings: Settings, compose: Callable[[list[str]], DictConfig], common: Sequence[str]
) -> list[tuple[Task, str]]:
    """The (task, optimizer) pairs whose seeds train as replicas; each task's config checked before any job runs."""
    seeds = max(settings.tuning_seeds, settings.confirm_seeds)
    pairs = []
    for task in tasks:
        for optimizer in settings.optimizers:
            config = compose([*common, *task.overrides, f"optimizer={optimizer}"])
            refusal = replicas_refused(config, seeds if settings.seeds_as == "replicas" else 1)
            if settings.seeds_as != "replicas":
                continue
            if refusal is None:
                pairs.append((task, optimizer))
            else:
                log.info("%s with optimizer=%s: each seed its own job, since %s", task.name, optimizer, refusal)
    return pairs


def run_protocol(
    config: DictConfig,
    params: Mapping[str, Any],
    arguments: Sequence[str],
    launch: Launch,
    compose: Callable[[list[str]], DictConfig],
) -> None:
    """Tune, confirm, report: the whole protocol into ``hydra.sweep.dir``, reusing what an earlier attempt finished."""
    settings = settings_from(params)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")
    composed = str(OmegaConf.select(config, "hydra.runtime.choices.data") or "task")
    tasks, common = split_arguments(arguments, params.get("tasks") or [], composed)
    metric, minimize, seed = str(config.optimized_metric), config.optimized_direction == "minimize", int(config.seed)
    first = [run for task in tasks for run in (*tuning_runs(task, settings, seed), *defaults_runs(task, settings, seed))]
    stages = Stages(
        sweep_dir,
        launch,
        optimizer_defaults(settings.optimizers, compose, common),
        common,
        as_replicas=replicable(tasks, settings, compose, common),
    )
    log.info(
        "optimizer protocol: %s, %d configurations to tune and %d at torch's defaults, in %s",
        "1 task" if len(tasks) == 1 else f"{len(tasks)} tasks",
        sum(run.stage == "tune" for run in first),
        sum(run.stage == "defaults" for run in first),
        sweep_dir,
    )
    outcomes = stages.train(first)
    tuned = {}
    for task in tasks:
        for optimizer in settings.optimizers:
            tuning = [
                seeds_of(outcomes, run, metric)
                for run in first
                if run.task == task and run.optimizer == optimizer and run.stage == "tune"
            ]
            if (lr := best_learning_rate(tuning, minimize)) is not None:
                tuned[task, optimizer] = confirm_run(task, optimizer, lr, settings, seed)
    outcomes |= stages.train(list(tuned.values()))

    results = []
    for task in tasks:
        confirmed = [seeds_of(outcomes, run, metric) for (of, _), run in tuned.items() if of == task]
        task_seeds = [seeds_of(outcomes, run, metric) for run in first if run.task == task]
        test = next((seeds.test_metric for seeds in confirmed + task_seeds if seeds.test_metric), None)
        results.append(
            TaskResult(
                task,
                metric,
                test,
                minimize,
                [s for s in task_seeds if s.run.stage == "tune"],
                [s for s in task_seeds if s.run.stage == "defaults"],
                confirmed,
                settings.target if settings.target is not None else default_target(confirmed),
            )
        )
    write_report(sweep_dir, results, settings)


def write_report(sweep_dir: Path, results: Sequence[TaskResult], settings: Settings) -> None:
    ratios = performance_profile(results)
    tables.write_markdown(sweep_dir / "protocol.md", results, settings, ratios)
    tables.write_csv(sweep_dir / "protocol.csv", results)
    figures.sensitivity(results, sweep_dir / "sensitivity.png")
    figures.confirmed(results, sweep_dir / "confirmed.png")
    if len(results) > 1:
        figures.profile(ratios, sweep_dir / "profile.png")
    print(
        "\n".join(
            [
                "",
                *tables.console_lines(results),
                f"protocol  {sweep_dir / 'protocol.md'} (every table; "
                "sensitivity.png, confirmed.png" + (", profile.png" if len(results) > 1 else "") + ")",
            ]
        ),
        flush=True,
    )
