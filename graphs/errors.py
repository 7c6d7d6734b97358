"""Errors raised for bad input, so the CLI can turn them into one-line messages."""

from __future__ import annotations

__all__ = ["CyclicGraphError", "InputError", "SpecError"]


class InputError(ValueError):
    """Bad input from a user: the message names the problem and the fix."""


class SpecError(InputError):
    """An architecture spec that cannot be built (unknown family, layers that do not fit)."""


class CyclicGraphError(InputError):
    """A graph handed to the path-sum API is not acyclic."""
