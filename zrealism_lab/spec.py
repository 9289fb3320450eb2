"""Typed, ranged setting specifications.

One table of specs drives validation in Python, the CLI's argument help and the widgets' slider ranges, so the three
never disagree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .errors import SettingsError


@dataclass(frozen=True)
class Spec:
    """A setting's type, range and meaning."""

    name: str
    kind: type  # int, float, str or bool
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: Callable[[], Sequence[str]] | None = None  # callable so registries can grow after import
    multiple_of: int | None = None
    optional: bool = False  # None is allowed
    step: float | None = None  # slider step for the widgets

    def allowed(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(self.choices())
        if self.kind is bool:
            return "true or false"
        parts = [{int: "an integer", float: "a number", str: "text"}[self.kind]]
        if self.minimum is not None and self.maximum is not None:
            parts.append(f"from {_number(self.minimum)} to {_number(self.maximum)}")
        elif self.minimum is not None:
            parts.append(f"of at least {_number(self.minimum)}")
        if self.multiple_of:
            parts.append(f"and a multiple of {self.multiple_of}")
        text = " ".join(parts)
        return text + (" (or none)" if self.optional else "")

    def check(self, value: Any) -> Any:
        """Return the value (ints accepted for floats) or raise SettingsError naming the setting."""
        if value is None:
            if self.optional:
                return None
            raise SettingsError(self.name, value, self.allowed())
        if self.kind is bool:
            if not isinstance(value, bool):
                raise SettingsError(self.name, value, self.allowed())
            return value
        if self.kind is str:
            if not isinstance(value, str):
                raise SettingsError(self.name, value, self.allowed())
            if self.choices is not None and value not in self.choices():
                raise SettingsError(self.name, value, self.allowed())
            return value
        # numbers: bool is an int subclass, and a prompt typed into a number field must not pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(self.name, value, self.allowed())
        if self.kind is int:
            if isinstance(value, float):
                if not value.is_integer():
                    raise SettingsError(self.name, value, self.allowed())
                value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise SettingsError(self.name, value, self.allowed())
        if self.minimum is not None and value < self.minimum:
            raise SettingsError(self.name, value, self.allowed())
        if self.maximum is not None and value > self.maximum:
            raise SettingsError(self.name, value, self.allowed())
        if self.multiple_of and value % self.multiple_of:
            raise SettingsError(self.name, value, self.allowed())
        return value


def _number(value: float) -> str:
    """4294967295, not 4.29497e+09: a range must be readable and exact."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
