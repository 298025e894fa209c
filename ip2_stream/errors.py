"""Exceptions a user can act on. The CLI prints them as one line and exits non-zero."""

from __future__ import annotations

from pathlib import Path


class IP2StreamError(Exception):
    """Base class for errors caused by input or configuration, not by a bug."""


class ConfigError(IP2StreamError):
    """The configuration (YAML, flags or overrides) is invalid."""


class DataError(IP2StreamError):
    """A data set is missing, incomplete or unreadable."""


class MalformedLineError(DataError):
    """One line of a MIND file cannot be parsed.

    Args:
        path: the file.
        lineno: 1-based line number.
        reason: what is wrong, in words.
    """

    def __init__(self, path: Path | str, lineno: int, reason: str) -> None:
        self.path = Path(path)
        self.lineno = lineno
        self.reason = reason
        super().__init__(
            f"{self.path}:{lineno}: {reason} (pass --skip-bad to count and skip malformed lines)"
        )
