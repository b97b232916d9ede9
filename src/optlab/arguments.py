"""Argument checks for the classes configs build: plain ``ValueError``s that name the argument.

The data modules and the model raise :class:`InvalidArgument` with their own argument's
name (``batch_size``), so they stay usable, and copyable, without this template's config
machinery. Building them from a config group turns it into a :class:`~optlab.errors.ConfigError`
for the full key (``data.batch_size``).
"""

from __future__ import annotations

from typing import Any


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
