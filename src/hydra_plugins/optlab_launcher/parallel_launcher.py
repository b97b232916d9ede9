"""``hydra/launcher=parallel``: a sweep's jobs in parallel, forked from a process that already imported them.

Hydra's joblib launcher starts fresh worker processes, and each one imports torch and
Lightning again (about 4.5 s of CPU each on a small machine) before it trains. Here one
child process, the *zygote*, imports the training code once: the ``preload`` modules and
the module of every ``_target_`` in the config. Every job is then a fork of the zygote and
starts with all of it imported. The launcher process itself never imports Lightning, so it
stays small, and while the jobs run it imports what the sweep report will need.

Jobs are ordinary (non-daemonic) processes, so a job may start processes of its own
(data-loader workers, ``ddp_spawn`` ranks), which joblib's workers may not. Each job is
told how many jobs run at once through ``OPTLAB_CONCURRENT_JOBS`` and sizes its torch
thread pool to its share of the cores (``optlab.threads``).

POSIX only: the jobs rely on ``fork`` to inherit the zygote's memory.
"""

from __future__ import annotations

import gc
import importlib
import logging
import multiprocessing
import os
import pickle
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

log = logging.getLogger(__name__)

CONCURRENT_JOBS_ENV = "OPTLAB_CONCURRENT_JOBS"
INTERRUPTED = 130  # exit status of a process stopped by Ctrl+C


def concurrent_jobs(n_jobs: int, n_sweep_jobs: int) -> int:
    """Jobs to run at once: ``n_jobs``, or all of them for -1; never more than there are."""
    wanted = n_sweep_jobs if n_jobs == -1 else n_jobs
    return max(1, min(wanted, n_sweep_jobs))


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


def portable(result: JobReturn) -> JobReturn:
    """The job's result, with an exception that cannot be pickled replaced by its repr."""
    if result.status == JobStatus.FAILED:
        try:
            pickle.dumps(result._return_value)
        except Exception:
            result.return_value = RuntimeError(repr(result._return_value))
    return result


def n_jobs_problem(n_jobs: Any) -> str | None:
    """Why ``n_jobs`` is not a number of jobs to run at once, or None."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        return f"hydra.launcher.n_jobs={n_jobs} is not valid: expected a positive number of jobs, or -1 for all at once"
    return None


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

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None, "setup() was not called"
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        at_once = concurrent_jobs(self.n_jobs, len(job_overrides))
        log.info("Launching %d jobs, %d at a time, as forks of one preloaded process; sweep output dir: %s",
                 len(job_overrides), at_once, sweep_dir)
        for idx, overrides in enumerate(job_overrides):
            log.info("\t#%d : %s", initial_job_idx + idx, " ".join(filter_overrides(overrides)))

        fork = multiprocessing.get_context("fork")
        receiver, sender = fork.Pipe(duplex=False)
        jobs = [(initial_job_idx + idx, list(overrides)) for idx, overrides in enumerate(job_overrides)]
        zygote = fork.Process(target=self._zygote, args=(jobs, at_once, sender), name="sweep-zygote")
        zygote.start()
        sender.close()
        try:
            for module in self.preload_while_waiting:  # after the fork: no job inherits a half-done import
                importlib.import_module(module)
            results: list[JobReturn] = receiver.recv()
        except EOFError:
            zygote.join()
            if zygote.exitcode == INTERRUPTED:
                self._interrupted(zygote)
            raise RuntimeError(f"the sweep's zygote process ended with exit code {zygote.exitcode} before its jobs did") from None
        except KeyboardInterrupt:
            self._interrupted(zygote)
        zygote.join()
        return results

    @staticmethod
    def _interrupted(zygote: BaseProcess) -> None:
        """Ctrl+C reached every process: wait for the jobs to save their last.ckpt, then stop quietly."""
        zygote.join()
        log.error("sweep interrupted: each running job saved checkpoints/last.ckpt to resume from")
        raise SystemExit(INTERRUPTED)

    def _job_config(self, idx: int, overrides: list[str]) -> DictConfig:
        assert self.config is not None and self.hydra_context is not None
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
            sweep_config.hydra.job.num = idx
        return sweep_config

    # ---- in the zygote ------------------------------------------------------------------

    def _zygote(self, jobs: list[tuple[int, list[str]]], at_once: int, results_pipe: Connection) -> None:
        assert self.config is not None
        # A CUDA check through NVML leaves no CUDA context behind to break the forked jobs.
        os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
        for module in [*self.preload, *target_modules(self.config)]:
            try:
                importlib.import_module(module)
            except Exception as error:  # the job that needs the module will report it
                log.debug("could not preload %s: %s", module, error)
        # Keep the imported objects out of the garbage collector's reach: a collection in a
        # job would otherwise write to, and so copy, every page of memory it inherited.
        gc.freeze()
        try:
            results = self._run_jobs(jobs, at_once)
        except KeyboardInterrupt:
            for child in multiprocessing.active_children():
                child.join()
            os._exit(INTERRUPTED)
        results_pipe.send([results[idx] for idx, _ in jobs])

    def _run_jobs(self, jobs: list[tuple[int, list[str]]], at_once: int) -> dict[int, JobReturn]:
        fork = multiprocessing.get_context("fork")
        pending = list(reversed(jobs))
        running: dict[Connection, tuple[int, list[str], BaseProcess]] = {}
        results: dict[int, JobReturn] = {}
        while pending or running:
            while pending and len(running) < at_once:
                idx, overrides = pending.pop()
                receiver, sender = fork.Pipe(duplex=False)
                process = fork.Process(target=self._job, args=(idx, overrides, at_once, sender), name=f"sweep-job-{idx}")
                process.start()
                sender.close()
                running[receiver] = (idx, overrides, process)
            for receiver in wait(list(running)):
                idx, overrides, process = running.pop(receiver)
                results[idx] = self._collect(receiver, idx, overrides, process)
        return results

    def _collect(self, receiver: Connection, idx: int, overrides: list[str], process: BaseProcess) -> JobReturn:
        try:
            result: JobReturn = receiver.recv()
        except EOFError:  # the job died without reporting: killed, out of memory, a crash in C code
            process.join()
            result = self._died(idx, overrides, process.exitcode)
        else:
            process.join()
        receiver.close()
        return result

    def _died(self, idx: int, overrides: list[str], exitcode: int | None) -> JobReturn:
        """A failed result for a job that could not report one; Hydra callbacks hear of it as it did not."""
        assert self.hydra_context is not None
        result = JobReturn(overrides=overrides, status=JobStatus.FAILED)
        result.return_value = RuntimeError(f"sweep job #{idx} ({' '.join(overrides)}) died with exit code {exitcode}")
        config = self._job_config(idx, overrides)
        HydraConfig.instance().set_config(config)
        self.hydra_context.callbacks.on_job_end(config=config, job_return=result)
        return result

    # ---- in a job -------------------------------------------------------------------------

    def _job(self, idx: int, overrides: list[str], at_once: int, result_pipe: Connection) -> None:
        assert self.hydra_context is not None and self.task_function is not None
        os.environ[CONCURRENT_JOBS_ENV] = str(at_once)
        setup_globals()
        config = self._job_config(idx, overrides)
        HydraConfig.instance().set_config(config)
        try:
            result = run_job(
                hydra_context=self.hydra_context,
                config=config,
                task_function=self.task_function,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
        except KeyboardInterrupt:  # the job has saved what it can (CheckpointOnInterrupt)
            os._exit(INTERRUPTED)
        result_pipe.send(portable(result))
