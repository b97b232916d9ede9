"""Process plumbing for the parallel launcher: signals that follow the process tree."""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def stop_when_parent_dies(parent_pid: int, signum: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``signum`` to this process when its parent exits.

    Without it a launcher killed outright leaves its zygote, and the zygote its jobs,
    running as orphans. SIGTERM lets a job save ``last.ckpt`` first. Elsewhere: no-op.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the request was in place
        os.kill(os.getpid(), signum)


class ForwardSignals:
    """While active, pass SIGINT, SIGHUP and SIGTERM on to the zygote's process group instead of acting on them.

    The zygote and its jobs run in their own process group, so Ctrl+C in a terminal, or the
    SIGHUP of a dropped terminal, reaches only the launcher. It passes either on to the whole
    group once: a job's first one means "save last.ckpt, then stop" (a second would stop it at
    once). SIGTERM goes to the zygote alone, which passes it on to its jobs, as it must when the
    launcher dies without a word (``stop_when_parent_dies``). ``received`` holds the signals seen.
    """

    def __init__(self, zygote_pid: int) -> None:
        self.zygote_pid = zygote_pid  # also the group's id
        self.received: list[int] = []
        self._previous: dict[int, object] = {}

    def _forward(self, signum: int, frame: object) -> None:
        if signum in self.received:
            return
        self.received.append(signum)
        try:
            if signum in (signal.SIGINT, signal.SIGHUP):
                os.killpg(self.zygote_pid, signum)
            else:
                os.kill(self.zygote_pid, signum)
        except ProcessLookupError:  # already gone
            pass

    def __enter__(self) -> ForwardSignals:
        for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._forward)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


def pass_sigterm_to_children() -> list[int]:
    """In the zygote: on SIGTERM, pass it on to every running job and carry on collecting their results.

    Each job then saves ``last.ckpt`` and reports itself stopped, so the launcher still gets a
    result for every job that ran. Returns the list the signal is recorded in, so that no
    further job is started.
    """
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        for child in multiprocessing.active_children():
            try:
                os.kill(child.pid, signal.SIGTERM)  # type: ignore[arg-type]
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, handler)
    return received
