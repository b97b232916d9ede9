"""``hydra/launcher=parallel``: a sweep's jobs in parallel, forked from a process that already imported them.

Hydra's joblib launcher starts fresh worker processes, and each one imports torch and
Lightning again (about 4.5 s of CPU each on a small machine) before it trains. Here one
child process, the *zygote*, imports the training code once: the ``preload`` modules and
the module of every ``_target_`` in the config. Every job is a fork of the zygote and
starts with all of it imported. The zygote lives as long as the launcher, so sweepers that
launch batch after batch (Optuna) pay the imports once too. The launcher process itself
never imports Lightning, and while the jobs run it imports what the sweep report needs.

Jobs are ordinary (non-daemonic) processes, so a job may start processes of its own
(data-loader workers, ``ddp_spawn`` ranks), which joblib's workers may not. Each job is
told how many jobs run at once through ``OPTLAB_CONCURRENT_JOBS`` and sizes its torch
thread pool to its share of the cores (``optlab.threads``).

The zygote and its jobs form their own process group: Ctrl+C, a dropped terminal's SIGHUP or
a SIGTERM sent to the launcher is passed on to them exactly once, so each running job saves
``last.ckpt`` and records itself interrupted. If the launcher is killed outright, the zygote and
then the jobs get SIGTERM (Linux). A job that dies without reporting (SIGKILL, the out-of-memory
killer) gets a ``result.json`` saying so from the zygote, and the sweep goes on to its report.

Linux only: the jobs rely on ``fork`` to inherit the zygote's memory, which is unsafe on
macOS once numpy or torch is imported.

The helpers live in ``_processes`` and ``_results``: Hydra's plugin scan re-executes every
module under ``hydra_plugins`` whose name does not start with ``_``, which would redefine
their classes (an exception class caught under one identity, raised under another).
"""

from __future__ import annotations

import atexit
import gc
import importlib
import logging
import math
import multiprocessing
import os
import signal
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from optlab.results import RESULT_FILE, RunResult, write_result
from optlab.threads import CONCURRENT_JOBS_ENV, available_cores, concurrent_jobs, n_jobs_problem

from ._processes import ForwardSignals, pass_sigterm_to_children, stop_when_parent_dies
from ._results import portable

log = logging.getLogger(__name__)

INTERRUPTED = 130  # exit status of a process stopped by Ctrl+C (128 + SIGINT)


def target_modules(config: DictConfig) -> list[str]:
    """Modules of the classes the task config builds through ``_target_`` (data, model, callbacks...)."""
    modules: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            target = node.get("_target_")
            if isinstance(target, str) and "." in target:
                modules.append(target.rsplit(".", 1)[0])
            nodes = node.values()
        elif isinstance(node, list):
            nodes = node
        else:
            return
        for child in nodes:
            visit(child)

    task = OmegaConf.to_container(config, resolve=False)
    assert isinstance(task, dict)
    task.pop("hydra", None)
    visit(task)
    return list(dict.fromkeys(modules))


class ParallelLauncher(Launcher):
    def __init__(self, n_jobs: int = -1, preload: Sequence[str] = (), preload_while_waiting: Sequence[str] = ()) -> None:
        problem = n_jobs_problem(n_jobs)
        if problem:
            raise ValueError(problem)
        self.n_jobs = n_jobs
        self.preload = list(preload)
        self.preload_while_waiting = list(preload_while_waiting)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self._zygote: BaseProcess | None = None
        self._zygote_pipe: Connection | None = None
        self._terminated: list[int] = []  # in the zygote: SIGTERM seen, start no more jobs

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    # ---- in the launcher ----------------------------------------------------------------

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None, "setup() was not called"
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        at_once = concurrent_jobs(self.n_jobs, len(job_overrides), available_cores())
        log.info(
            "Launching %d jobs, %d at a time, as forks of one preloaded process; sweep output dir: %s",
            len(job_overrides),
            at_once,
            sweep_dir,
        )
        for idx, overrides in enumerate(job_overrides):
            log.info("\t#%d : %s", initial_job_idx + idx, " ".join(filter_overrides(overrides)))

        jobs = [(initial_job_idx + idx, list(overrides)) for idx, overrides in enumerate(job_overrides)]
        zygote, pipe = self._running_zygote()
        with ForwardSignals(zygote.pid) as signals:
            pipe.send((jobs, at_once))
            for module in self.preload_while_waiting:  # after the fork: no job inherits a half-done import
                importlib.import_module(module)
            try:
                results: list[JobReturn] | None = pipe.recv()
            except EOFError:
                zygote.join()
                results = None
        if signals.received:
            log.error(
                "sweep stopped by %s: each job that was running saved checkpoints/last.ckpt to resume from",
                " and ".join(signal.Signals(signum).name for signum in signals.received),
            )
            raise SystemExit(128 + signals.received[0])
        if results is None:
            raise RuntimeError(f"the sweep's zygote process ended with exit code {zygote.exitcode} before its jobs did")
        return results

    def _running_zygote(self) -> tuple[BaseProcess, Connection]:
        if self._zygote is not None and self._zygote_pipe is not None and self._zygote.is_alive():
            return self._zygote, self._zygote_pipe
        fork = multiprocessing.get_context("fork")
        ours, theirs = fork.Pipe()
        self._zygote = fork.Process(target=self._zygote_main, args=(theirs, ours, os.getpid()), name="sweep-zygote")
        self._zygote.start()
        theirs.close()
        try:
            os.setpgid(self._zygote.pid, self._zygote.pid)  # also done by the zygote: whoever is first
        except OSError:
            pass
        self._zygote_pipe = ours
        atexit.register(self._stop_zygote)  # runs before multiprocessing joins its children at exit
        return self._zygote, ours

    def _stop_zygote(self) -> None:
        if self._zygote_pipe is not None:
            self._zygote_pipe.close()  # the zygote reads end-of-file and exits
        if self._zygote is not None:
            self._zygote.join()

    def _job_config(self, idx: int, overrides: list[str]) -> DictConfig:
        assert self.config is not None and self.hydra_context is not None
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
            sweep_config.hydra.job.num = idx
        return sweep_config

    # ---- in the zygote ------------------------------------------------------------------

    def _zygote_main(self, pipe: Connection, launchers_end: Connection, launcher_pid: int) -> None:
        assert self.config is not None
        launchers_end.close()  # else the launcher closing its end would never reach us as end-of-file
        stop_when_parent_dies(launcher_pid)
        try:
            os.setpgid(0, 0)
        except OSError:
            pass
        # A CUDA check through NVML leaves no CUDA context behind to break the forked jobs.
        os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
        self._terminated = pass_sigterm_to_children()
        signal.signal(signal.SIGHUP, signal.default_int_handler)  # a dropped terminal, as Ctrl+C: the jobs stop, we wait
        try:
            started = time.perf_counter()
            modules = [*self.preload, *target_modules(self.config)]
            for module in modules:
                try:
                    importlib.import_module(module)
                except Exception as error:  # the job that needs the module will report it
                    log.debug("could not preload %s: %s", module, error)
            log.info("preloaded %d modules in %.1f s; every job starts from here", len(modules), time.perf_counter() - started)
            # Keep the imported objects out of the garbage collector's reach: a collection in
            # a job would otherwise write to, and so copy, every page of memory it inherited.
            gc.freeze()
            while True:
                try:
                    jobs, at_once = pipe.recv()
                except EOFError:  # the launcher is done
                    return
                results = self._run_jobs(jobs, at_once)
                try:
                    pipe.send([portable(results[idx]) for idx, _ in jobs if idx in results])
                except OSError:  # the launcher is gone (killed): nobody to report to
                    return
        except KeyboardInterrupt:  # the jobs got the same SIGINT: let them save last.ckpt
            for child in multiprocessing.active_children():
                child.join()
            os._exit(INTERRUPTED)

    def _run_jobs(self, jobs: list[tuple[int, list[str]]], at_once: int) -> dict[int, JobReturn]:
        fork = multiprocessing.get_context("fork")
        pending = list(reversed(jobs))
        running: dict[Connection, tuple[int, list[str], BaseProcess]] = {}
        finishing: list[BaseProcess] = []  # reported, maybe not exited yet: reaped at the end
        results: dict[int, JobReturn] = {}
        while (pending and not self._terminated) or running:
            while pending and len(running) < at_once and not self._terminated:
                idx, overrides = pending.pop()
                receiver, sender = fork.Pipe(duplex=False)
                process = fork.Process(
                    target=self._job, args=(idx, overrides, at_once, os.getpid(), sender), name=f"sweep-job-{idx}"
                )
                process.start()
                sender.close()
                running[receiver] = (idx, overrides, process)
            for receiver in wait(list(running)):
                idx, overrides, process = running.pop(receiver)
                results[idx] = self._collect(receiver, idx, overrides, process)
                finishing.append(process)
        for process in finishing:
            process.join()
        return results

    def _collect(self, receiver: Connection, idx: int, overrides: list[str], process: BaseProcess) -> JobReturn:
        try:
            result: JobReturn = receiver.recv()
        except Exception as error:  # EOFError: it died without reporting (killed, out of memory, a crash in C)
            process.join()
            result = self._record_death(idx, overrides, process.exitcode, None if isinstance(error, EOFError) else error)
        finally:
            receiver.close()
        return result

    def _record_death(self, idx: int, overrides: list[str], exitcode: int | None, error: Exception | None) -> JobReturn:
        """A job that ended without reporting: its ``result.json`` says how (when it wrote none itself), and the
        sweep goes on to its report. Hydra's callbacks hear of it as of any job."""
        assert self.hydra_context is not None
        if error is not None:
            status, message = "failed", f"sent a result that could not be read: {error!r}"
        elif exitcode is not None and exitcode < 0:
            status, message = "killed", f"killed by {signal.Signals(-exitcode).name}"
        else:
            status, message = "failed", f"exited with status {exitcode} without a result"
        log.error("sweep job #%d (%s) %s", idx, " ".join(overrides), message)
        result = JobReturn(overrides=overrides, status=JobStatus.COMPLETED)
        result.return_value = math.nan
        try:
            config = self._job_config(idx, overrides)
            job_dir = Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)
            if job_dir.is_dir() and not (job_dir / RESULT_FILE).is_file():
                write_result(job_dir, RunResult(status=status, error=message))
            HydraConfig.instance().set_config(config)
            self.hydra_context.callbacks.on_job_end(config=config, job_return=result)
        except Exception as failure:  # recording one job must not take the other jobs down with it
            log.warning("could not record sweep job #%d: %s", idx, failure)
        return result

    # ---- in a job -------------------------------------------------------------------------

    def _job(self, idx: int, overrides: list[str], at_once: int, zygote_pid: int, result_pipe: Connection) -> None:
        assert self.hydra_context is not None and self.task_function is not None
        stop_when_parent_dies(zygote_pid)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the zygote's handler; Lightning sets its own in fit
        os.environ[CONCURRENT_JOBS_ENV] = str(at_once)
        setup_globals()
        try:
            config = self._job_config(idx, overrides)
            HydraConfig.instance().set_config(config)
            result = run_job(
                hydra_context=self.hydra_context,
                config=config,
                task_function=self.task_function,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
        except KeyboardInterrupt:  # a signal before the task took over its handling
            os._exit(INTERRUPTED)
        except SystemExit as stop:  # the task stopped on a signal, and recorded so: report it, then end as asked
            result = JobReturn(overrides=overrides, status=JobStatus.COMPLETED)
            result.return_value = math.nan
            exit_status = stop.code if isinstance(stop.code, int) else 1
        else:
            exit_status = None
        try:
            result_pipe.send(portable(result))
        except OSError:  # the zygote is gone (stopped by a signal): nobody to report to
            os._exit(1)
        if exit_status is not None:
            os._exit(exit_status)
