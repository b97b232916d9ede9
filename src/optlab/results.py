"""``result.json``: each run's outcome on disk, so a sweep report needs nothing but files.

A run that finishes writes ``status: ok`` with its final metrics and timings; one that
raises writes ``failed`` with the error's last line; one a signal stopped, ``interrupted`` and
the signal. A job killed outright (SIGKILL, the out-of-memory killer) writes nothing itself:
the launcher that saw it die writes ``killed`` and the signal for it. What a run logged on the
way is in its ``metrics.jsonl`` (:mod:`optlab.history`).

The record is written whole or not at all (:func:`write_atomically`, which checkpoints use too):
beside its final path, on the same file system, and renamed over it once complete, so a write
that fails (a full disk, a kill) leaves the previous file as it was and no half file behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

RESULT_FILE = "result.json"


def write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through ``write(stream)``: into a temporary file beside it, renamed over it when complete.

    A failure removes the temporary file; a refusal of the operating system (a full disk) is raised
    as an ``OSError`` naming ``path``, which torch and ``json`` leave out (torch even wraps it in a
    ``RuntimeError``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        refused = next((cause for cause in _chain(error) if isinstance(cause, OSError) and cause.errno), None)
        if refused is None:
            raise
        raise OSError(refused.errno, refused.strerror, str(path)) from error


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


@dataclass
class RunResult:
    # "ok"; "diverged", "did not learn" (trained to the end, but no result); "failed"; "interrupted" (a signal
    # stopped it); "killed" (its launcher saw it die)
    status: str
    error: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    fit_seconds: float | None = None
    steps: int | None = None
    epochs: int | None = None  # epochs trained to the end (a resumed run counts the ones before it too)
    objective: str | None = None  # the metric the task returns: optimized_metric, or eval's test counterpart of it

    @property
    def steps_per_second(self) -> float | None:
        if not self.steps or not self.fit_seconds:
            return None
        return self.steps / self.fit_seconds


def write_result(output_dir: Path, result: RunResult) -> None:
    """Written whole or not at all: a report reading the sweep meanwhile, or a full disk, never leaves half a file."""
    text = (json.dumps(asdict(result), indent=2) + "\n").encode()
    write_atomically(output_dir / RESULT_FILE, lambda stream: stream.write(text))


class UnreadableFile(Exception):
    """A run's record that cannot be read (a corrupted or truncated file): the message names the file and why."""


def read_result(run_dir: Path) -> RunResult | None:
    """The run's outcome, None if it wrote none, or :class:`UnreadableFile` naming what is wrong with it."""
    path = run_dir / RESULT_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_bytes())
    except UnicodeDecodeError:
        raise UnreadableFile(f"{RESULT_FILE} is not UTF-8 text") from None
    except json.JSONDecodeError as error:  # an empty or truncated file included
        raise UnreadableFile(f"{RESULT_FILE} is not JSON ({error.msg}, line {error.lineno} column {error.colno})") from None
    except OSError as error:  # a directory, a file it may not read
        raise UnreadableFile(f"{RESULT_FILE} cannot be read ({error.strerror or error})") from None
    if not isinstance(record, dict) or not isinstance(record.get("status"), str):
        raise UnreadableFile(f"{RESULT_FILE} holds no status")
    fields = RunResult.__dataclass_fields__
    return RunResult(**{key: value for key, value in record.items() if key in fields})


def last_line(error: BaseException) -> str:
    """The error's last line for the report table (the full trace stays in the log).

    A user error is its own message; any other error keeps its type, e.g.
    ``ValueError: Invalid learning rate: -1.0``.
    """
    from optlab.errors import UserError

    lines = str(error).strip().splitlines()
    message = lines[-1] if lines else ""
    if isinstance(error, UserError):
        return message
    return f"{type(error).__name__}: {message}".rstrip(": ")
