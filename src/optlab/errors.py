"""Errors that are the user's to fix: shown as one line, without a Python traceback."""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """A problem with the input (config, files, data), not a bug: the message says what to change."""


class ConfigError(UserError):
    """A config value that cannot work; names the key, the value and what is accepted."""

    def __init__(self, key: str, value: Any, accepted: str) -> None:
        self.key, self.value, self.accepted = key, value, accepted
        super().__init__(f"{key}={value!r} is not valid: {accepted}")


class NumericalError(UserError):
    """Training produced non-finite numbers (diverged)."""


class OutputDirInUse(UserError):
    """The run's output directory already holds another run's results."""


class Interrupted(UserError):
    """The run was stopped by a signal; its last checkpoint can resume it."""
