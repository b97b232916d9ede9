"""Getting a job's result back to the launcher intact: pickling with the job's traceback."""

from __future__ import annotations

import logging
import pickle
import traceback
from typing import Any

from hydra.core.utils import JobReturn, JobStatus

from optlab.upstream import job_return_value

log = logging.getLogger(__name__)


class JobTraceback(Exception):
    """The traceback of an exception raised in a job, shown as that exception's cause."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n\n{self.text}"


def _with_cause(error: BaseException, text: str) -> BaseException:
    error.__cause__ = JobTraceback(text)
    return error


class _ErrorWithTraceback:
    """Pickles as the exception itself with its traceback text as ``__cause__``.

    Pickling keeps neither ``__traceback__`` nor ``__cause__``, so without this the
    launcher would show where Hydra re-raised the error, not where the job raised it.
    """

    def __init__(self, error: BaseException) -> None:
        self.error = error
        cause = error.__cause__
        # On its second trip (zygote to launcher) the traceback is already text.
        self.text = cause.text if isinstance(cause, JobTraceback) else "".join(traceback.format_exception(error))

    def __reduce__(self) -> tuple[Any, ...]:
        return _with_cause, (self.error, self.text)


def round_trips(value: Any) -> bool:
    """Whether ``value`` can be pickled and rebuilt (an exception whose __init__ takes several
    arguments pickles fine but fails to unpickle)."""
    try:
        pickle.loads(pickle.dumps(value))
    except Exception:
        return False
    return True


def portable(result: JobReturn) -> JobReturn:
    """``result`` made safe to send to the launcher process.

    A failed job's exception travels with its traceback; one that cannot make the trip is
    replaced by a RuntimeError with its repr. A return value that cannot is replaced by its
    repr, with a warning.
    """
    if result.status == JobStatus.FAILED:
        error = job_return_value(result)
        if not round_trips(error):
            error = RuntimeError(repr(error)).with_traceback(getattr(error, "__traceback__", None))
        result.return_value = _ErrorWithTraceback(error)
    elif not round_trips(value := job_return_value(result)):
        log.warning("the job's return value %r cannot be sent to the launcher; its repr is returned instead", value)
        result.return_value = repr(value)
    return result
