"""Hydra callbacks: check the log directory before a run, write the sweep report after a sweep.

Hydra skips ``on_multirun_end`` when a job raised, so once any job of the sweep has
failed, the report is also rebuilt after every job: the last job to end leaves a complete
report. With a parallel launcher several jobs may end at once, so rebuilds take a lock on
the sweep directory.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from optlab.errors import OutputDirInUse, is_int
from optlab.results import RESULT_FILE
from optlab.run_dir import CLAIM_FILE, claim_run_dir, claim_state, read_claim

log = logging.getLogger(__name__)


def unwritable_reason(directory: Path) -> str | None:
    """Why ``directory`` could not be created and written, or None if it can."""
    existing = directory.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


class CheckLogDir(Callback):
    """Stop before Hydra writes into the output directory if it cannot be written, or holds an earlier run."""

    def _check(self, directory: str, key: str) -> None:
        reason = unwritable_reason(Path(directory))
        if reason:
            log.error("%s=%s cannot be written: %s; choose another paths.log_dir", key, directory, reason)
            sys.exit(1)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.run.dir, "hydra.run.dir")
        try:  # before Hydra writes its .hydra/ and train.log there
            claim_run_dir(Path(config.hydra.run.dir))
        except OutputDirInUse as error:
            log.error("%s", error)
            sys.exit(1)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.sweep.dir, "hydra.sweep.dir")


class CheckLauncher(Callback):
    """Stop with one line, before any job starts, when the launcher cannot run as configured."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        launcher = config.hydra.launcher
        target = str(launcher.get("_target_", ""))
        if target.endswith("optlab_launcher.slurm_launcher.SlurmLauncher"):
            devices = config.trainer.get("devices")
            if not (is_int(devices) and devices >= 1):
                log.error(
                    "trainer.devices=%r is not valid with hydra/launcher=slurm: expected the number of devices "
                    "(SLURM tasks) per node, e.g. trainer.devices=2",
                    devices,
                )
                sys.exit(1)
            return
        if not target.endswith(".ParallelLauncher"):
            return
        from optlab.threads import n_jobs_problem

        problem = n_jobs_problem(launcher.get("n_jobs", -1))
        if not sys.platform.startswith("linux"):
            problem = f"hydra/launcher=parallel needs Linux (fork), not {sys.platform}; use hydra/launcher=joblib"
        if problem:
            log.error("%s", problem)
            sys.exit(1)


class CheckSweptGroups(Callback):
    """Refuse, before any job runs, a sweep over a group the model never receives.

    A model that builds its own optimizer, or whose config nests one (lightning-hydra-template's
    model YAMLs), never gets ``optimizer=``: ``-m optimizer=adam,sgd`` would train the same
    model twice and rank the two as different optimizers.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from optlab.hydra_context import override_group
        from optlab.model_building import FACTORIES

        overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
        searched = list(OmegaConf.select(config, "hydra.sweeper.params") or {})  # Optuna's search space
        keyed = [(override.key_or_group, override.input_line) for override in overrides] + [
            (key, f"hydra.sweeper.params.{key}") for key in searched
        ]
        factory_keys = [(key, shown) for key, shown in keyed if override_group(key) in FACTORIES]
        if not factory_keys:
            return
        for model_config in self._model_configs(config, overrides):
            problem = self._ignored(model_config, factory_keys)
            if problem:
                log.error("%s", problem)
                sys.exit(1)

    @staticmethod
    def _model_configs(config: DictConfig, overrides: list[Any]) -> list[DictConfig]:
        """The ``model:`` node of every job: one, or one per value of a swept ``model=`` group."""
        swept = next((o for o in overrides if o.key_or_group == "model" and o.is_sweep_override()), None)
        if swept is None:
            return [config.model]
        from hydra import compose

        fixed = [o.input_line for o in overrides if not o.is_sweep_override()]
        return [
            compose(config.hydra.job.config_name, overrides=[*fixed, f"model={value}"]).model
            for value in swept.sweep_string_iterator()
        ]

    @staticmethod
    def _ignored(model_config: DictConfig, factory_keys: list[tuple[str, str]]) -> str | None:
        from optlab.building import target_class
        from optlab.errors import UserError
        from optlab.hydra_context import override_group
        from optlab.model_building import ignored_groups

        try:
            ignored = ignored_groups(target_class(model_config, "model"), model_config)
        except UserError as error:
            return str(error)
        for key, shown in factory_keys:
            if (group := override_group(key)) in ignored:
                return (
                    f"{shown} sweeps {group}=, which the model never receives: {ignored[group]}; every job would train "
                    "the same model. Sweep the model's own settings instead (model.<key>=...)"
                )
        return None


def rebuild_report(sweep_dir: Path) -> list[Any]:
    from optlab.report.tables import build_report

    try:
        with (sweep_dir / ".report.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return build_report(sweep_dir)
    except Exception as error:  # a report must never turn a finished job into a failed one
        log.warning("could not write the sweep report in %s: %s", sweep_dir, error)
        return []


LISTED_JOBS = 10  # jobs not ok that the console names; summary.md has them all


class StopJoblibJobs(Callback):
    """SIGTERM to a sweep on Hydra's joblib launcher reaches its running jobs, as on the parallel launcher.

    By default it would end the sweep's process alone and leave loky's workers training. Instead
    each running job gets the signal (it finishes its batch, saves ``last.ckpt`` and records
    itself interrupted); once they have, the sweep exits as a stopped sweep does (joblib ends its
    workers, ``SweepReport`` writes the report on the way out). A second SIGTERM ends it at once.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if "joblib" in str(OmegaConf.select(config, "hydra.launcher._target_", default="")):
            sweep_dir = Path(config.hydra.sweep.dir)
            signal.signal(signal.SIGTERM, lambda signum, frame: self.stop(sweep_dir, signum))

    @staticmethod
    def stop(sweep_dir: Path, signum: int) -> None:
        signal.signal(signum, signal.SIG_DFL)
        running = [
            path.parent
            for path in sweep_dir.glob(f"*/{CLAIM_FILE}")
            if claim_state(path.parent) == "running" and not (path.parent / RESULT_FILE).exists()
        ]
        for run_dir in running:  # claim_state found each claim, naming a live process of this machine
            with contextlib.suppress(ProcessLookupError):  # it ended since
                os.kill((read_claim(run_dir) or {})["pid"], signum)
        deadline = time.monotonic() + JOB_STOP_SECONDS
        while not all((run_dir / RESULT_FILE).exists() for run_dir in running) and time.monotonic() < deadline:
            time.sleep(0.1)  # polling for the jobs' records, with a deadline
        raise SystemExit(128 + signum)


JOB_STOP_SECONDS = 120  # for a running job to finish its batch and save last.ckpt


class SweepReport(Callback):
    """The sweep's report, written once, when every job has ended: the one ``python -m optlab.report`` would write.

    When the sweep ends normally, Hydra calls ``on_multirun_end``. When it is stopped (Ctrl+C,
    SIGTERM, a dropped terminal) or a job raised a bug, Hydra skips that call and the process
    exits: the report is then written on the way out. The console ends with one line that says
    how every job the sweep defined ended; the sweep exits non-zero when one did not end ok,
    unless ``fail_on_job_error`` is off (a search, where a diverged trial is a result).
    """

    def __init__(self, fail_on_job_error: bool = True, table_on_console: bool = True) -> None:
        self.fail_on_job_error, self.table_on_console = fail_on_job_error, table_on_console
        self._pending: tuple[Path, Any] | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._pending = (Path(config.hydra.sweep.dir), config.get("logger"))
        atexit.register(self._report_on_exit)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        jobs = self._report()
        if self.fail_on_job_error and any(job.status != "ok" for job in jobs):
            sys.exit(1)

    def _report_on_exit(self) -> None:
        self._report()

    def _report(self) -> list[Any]:
        if self._pending is None:  # written already
            return []
        sweep_dir, loggers = self._pending
        self._pending = None
        if not any(sweep_dir.glob("*/.hydra/overrides.yaml")):  # refused before any job: its error said why
            return []
        jobs = rebuild_report(sweep_dir)
        if not jobs:
            return jobs
        from optlab.report.tables import closing_line, console_summary

        try:  # the console's last screen, not log records; a dropped terminal may take it away
            if self.table_on_console:
                print(console_summary(jobs, sweep_dir, loggers), flush=True)
            # Where a diverged job is a result (a search, the protocol), only the jobs that broke are named.
            results = () if self.fail_on_job_error else ("diverged", "did not learn")
            unfinished = [job for job in jobs if job.status != "ok" and job.status not in results]
            for job in unfinished[:LISTED_JOBS]:
                print(f"  {job.name}: {job.status}: {job.error}", flush=True)
            if len(unfinished) > LISTED_JOBS:
                print(f"  ... {len(unfinished) - LISTED_JOBS} more: summary.md lists every job", flush=True)
            print(closing_line(jobs, sweep_dir), flush=True)
        except OSError:
            pass
        return jobs
