"""Errors edgeclf raises for bad input: one line, naming the thing and the fix."""

from __future__ import annotations


class EdgeclfError(Exception):
    """A user-facing error; the CLI prints its message as one line and exits 2."""


class DatasetError(EdgeclfError):
    """The dataset folder cannot be used as given."""


class ModelError(EdgeclfError):
    """A model name, weights file or model file cannot be used."""


class ConfigError(EdgeclfError, ValueError):
    """An option value that cannot be used (also a ValueError, as Python callers expect)."""


class EdgeclfWarning(UserWarning):
    """Something the Python API's caller should know (the CLI prints it as one `warning:` line)."""
