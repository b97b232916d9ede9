"""Errors that are the user's to fix: shown as one line, without a Python traceback."""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """A problem with the input (config, files, data), not a bug: the message says what to change."""


class ConfigError(UserError, ValueError):
    """A config value that cannot work; names the key, the value and what is accepted.

    Classes built from config name their own argument (``batch_size``); the code that
    builds them from a config group adds the group (``data.batch_size``) with :meth:`under`.
    """

    def __init__(self, key: str, value: Any, accepted: str) -> None:
        self.key, self.value, self.accepted = key, value, accepted
        super().__init__(f"{key}={value!r} is not valid: {accepted}")

    def under(self, group: str) -> ConfigError:
        """The same error with its key inside ``group``, unless it is there already."""
        if self.key == group or self.key.startswith(f"{group}."):
            return self
        return ConfigError(f"{group}.{self.key}", self.value, self.accepted)


class NumericalError(UserError):
    """Training produced non-finite numbers (diverged)."""


class OutputDirInUse(UserError):
    """The run's output directory already holds another run's results."""


class Interrupted(UserError):
    """The run was stopped by a signal; its last checkpoint can resume it."""


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def require_int(key: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(key, value, f"expected an integer >= {minimum}")
