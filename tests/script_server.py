"""Runs ``python train.py ...`` as a real process, without paying the seconds its imports take each time.

``import lightning`` alone takes about four seconds on a small machine, and the suite starts
train.py and eval.py dozens of times. This server imports what they import once; each run
is a fork of it that takes its own arguments, working directory, environment and standard
streams, then runs the script as ``__main__``: what ``python train.py ARGS`` does after its
imports, in a process of its own that exits with the script's status (its signal handlers,
atexit handlers and children are its own). The parallel launcher starts its jobs the same way.

Protocol, one JSON line each way on stdin/stdout: a request ``{"script", "args", "cwd", "env",
"stdout", "stderr"}`` is answered ``{"pid": ...}`` once the run is forked; ``{"pid": ...,
"returncode": ...}`` follows when it has ended (negative: the signal that ended it). Several runs
may go on at once.
"""

from __future__ import annotations

import json
import os
import runpy
import selectors
import signal
import sys
import warnings

PRELOAD = (
    "optlab.train",
    "optlab.evaluate",
    "optlab.report.tables",
    "optlab.report.plot",
    "lightning.pytorch.loggers",
    "hydra_plugins.optlab_launcher.parallel_launcher",
    "torchmetrics",
    "sklearn.datasets",
    "sklearn.model_selection",
)


def run_script(request: dict) -> None:
    """In the forked child: become ``python <script> <args>`` and run; never returns (exits with the script's status)."""
    os.setpgid(0, 0)  # a group of its own, as a process started from a shell: signals to it reach its children too
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGCHLD):
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", closefd=False, buffering=1)  # noqa: SIM115  (line-buffered, as on a pipe python -u is not)
    sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    script = os.path.abspath(request["script"])
    # What the interpreter does at start: the script's folder first, then PYTHONPATH, then the rest.
    extra = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    sys.path[:] = [os.path.dirname(script), *extra, *sys.path[1:]]
    warnings.resetwarnings()
    if os.environ.get("PYTHONWARNINGS") == "ignore":
        warnings.simplefilter("ignore")
    sys.argv = [script, *request["args"]]
    runpy.run_path(script, run_name="__main__")  # a SystemExit from the script ends this process with its status
    sys.exit(0)


def serve() -> None:
    for module in PRELOAD:
        __import__(module)
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    ended_read, ended_write = os.pipe()  # a byte on each SIGCHLD wakes the loop to collect the runs that ended
    os.set_blocking(ended_write, False)
    signal.set_wakeup_fd(ended_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    selector = selectors.DefaultSelector()
    selector.register(sys.stdin, selectors.EVENT_READ)
    selector.register(ended_read, selectors.EVENT_READ)
    running: set[int] = set()
    while True:
        for key, _ in selector.select():
            if key.fileobj is sys.stdin:
                line = sys.stdin.readline()
                if not line:  # the test session is over
                    return
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    signal.set_wakeup_fd(-1)
                    for fd in (ended_read, ended_write):
                        os.close(fd)
                    replies.close()
                    run_script(request)
                running.add(pid)
                replies.write(json.dumps({"pid": pid}) + "\n")
            else:
                os.read(ended_read, 4096)
        for pid in list(running):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                running.discard(pid)
                replies.write(json.dumps({"pid": pid, "returncode": os.waitstatus_to_exitcode(status)}) + "\n")


if __name__ == "__main__":
    serve()
