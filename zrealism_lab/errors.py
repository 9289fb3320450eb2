"""Exception classes: every error a user can cause has its own, with a message that says
what was wrong, what is allowed and what to do."""
from __future__ import annotations


class ZRealismError(Exception):
    """Base class of every error the lab raises on purpose."""


class SettingsError(ZRealismError, ValueError):
    """A setting has a value outside its type or range. Raised before any model loads."""

    def __init__(self, name: str, value: object, allowed: str, hint: str = "") -> None:
        self.name, self.value, self.allowed = name, value, allowed
        message = f"setting '{name}' = {value!r} is not allowed: expected {allowed}."
        if hint:
            message += f" {hint}"
        super().__init__(message)


class IntakeError(ZRealismError, ValueError):
    """A source image or clip cannot be read (missing, corrupt, too large, not an image)."""


class MissingWeightsError(ZRealismError, FileNotFoundError):
    """A model component is neither on disk nor reachable on the hub."""


class DamagedWeightsError(ZRealismError, ValueError):
    """A component's weight files are there but cannot be read (truncated, corrupt, or of another architecture)."""


class UnsafeCheckpointError(ZRealismError, ValueError):
    """A pickle-based checkpoint was given without explicitly allowing pickle loading."""


class CancelledError(ZRealismError):
    """A run was cancelled by the user; the run record says 'cancelled'."""
