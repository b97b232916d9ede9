"""Errors that are the user's to fix, shown as one line without a Python traceback, and the argument checks that raise them.

The data modules and the model raise :class:`InvalidArgument` with their own argument's
name (``batch_size``), a plain ``ValueError`` usable without this template's config machinery;
building them from a config group turns it into a :class:`ConfigError` for the full key
(``data.batch_size``).
"""

from __future__ import annotations

import errno
import signal
from typing import Any


def first_line(error: BaseException) -> str:
    """``ParserError: while parsing a block mapping``: what went wrong with a file, for a one-line message."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


class UserError(Exception):
    """A problem with the input (config, files, data), not a bug: the message says what to change."""

    status = "failed"  # what result.json records for a run it ended


class ConfigError(UserError):
    """A config value that cannot work; names the key, the value and what is accepted."""

    def __init__(self, key: str, value: Any, accepted: str) -> None:
        self.key, self.value, self.accepted = key, value, accepted
        super().__init__(f"{key}={value!r} is not valid: {accepted}")


class NumericalError(UserError):
    """Training produced non-finite numbers (diverged)."""

    status = "diverged"


class OutputDirInUse(UserError):
    """The run's output directory already holds another run's results."""


class Interrupted(UserError):
    """The run was stopped by a signal (Ctrl+C, SIGTERM, a dropped terminal's SIGHUP); its last checkpoint can resume it."""

    status = "interrupted"

    def __init__(self, signum: int, detail: str = "") -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}{detail}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum  # as a shell reports a process a signal ended


def stop_now(signum: int, frame: object) -> None:
    """A signal handler that stops the run where it is: outside training, nothing is left half done."""
    raise Interrupted(signum)


class MachineError(UserError):
    """The machine refused: a disk full, memory gone, a file that cannot be written."""


def machine_error(error: BaseException) -> MachineError | None:
    """What the operating system or the allocator refused, as one line naming the cause and the path; else None."""
    cause: BaseException | None = error
    while cause is not None:  # a failure inside a class Hydra built arrives wrapped
        if isinstance(cause, OSError) and cause.errno is not None:
            where = f": {cause.filename}" if cause.filename else ""
            return MachineError(f"{cause.strerror or errno.errorcode.get(cause.errno, cause)}{where}")
        if isinstance(cause, MemoryError) or type(cause).__name__ == "OutOfMemoryError" or "can't allocate memory" in str(cause):
            return MachineError(f"out of memory: {' '.join(str(cause).split()) or type(cause).__name__}")
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    return None


class InvalidArgument(ValueError):
    def __init__(self, name: str, value: Any, accepted: str) -> None:
        self.name, self.value, self.accepted = name, value, accepted
        super().__init__(f"{name}={value!r} is not valid: {accepted}")


def is_int(value: Any) -> bool:
    """A whole number, and not a bool (which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def require_int(name: str, value: Any, minimum: int) -> None:
    if not (is_int(value) and value >= minimum):
        raise InvalidArgument(name, value, f"expected an integer >= {minimum}")
