"""Errors that reach the user as one clear line (CLI exit 2), never a traceback."""

from __future__ import annotations


class KatatestError(Exception):
    """Base of every error katatest reports to a user."""

    def __str__(self) -> str:
        """The message on one line: line breaks and other unprintable characters escaped."""
        text = super().__str__()
        return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ConfigError(KatatestError):
    """A configuration Kata 3.0.0 would reject, or that cannot be read at all."""

    def __init__(self, key: str, problem: str, source: str = "") -> None:
        self.key = key
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {problem}" if key else f"{where}{problem}")


class HostFactsError(KatatestError):
    """A host fact given on the command line (or probed) is unusable."""

