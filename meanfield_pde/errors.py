"""Errors a user can cause. The CLI prints their message on one line and exits with code 2."""

from __future__ import annotations


class MeanFieldError(Exception):
    """Base class of every user-facing error (one-line message naming the cause and the fix)."""


class ConfigError(MeanFieldError, ValueError):
    """A configuration value, key or file is invalid."""


class DataError(MeanFieldError):
    """An input or output file is missing, unreadable, corrupt or not written by this package."""


class SolverError(MeanFieldError):
    """The numerical solution cannot continue (non-finite state, mass at a wall, ...)."""
