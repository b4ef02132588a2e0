"""Errors that reach the user as one clear line (CLI exit 2), never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

# Kata's stages, in the order its Go runtime runs them; a rejection's message starts with one of them.
KATA_STAGES = ("LoadConfiguration", "validateHypervisorConfig", "CreateVM", "createNetwork", "StartVM",
               "LaunchQemu")


class KatatestError(Exception):
    """Base of every error katatest reports to a user.

    The message is one line (line breaks and other unprintable characters escaped), except in an error whose
    ``MULTILINE`` is true (a guest's console tail, say): its first line is the message and each further line,
    escaped on its own, stays a real line."""

    MULTILINE = False

    def __str__(self) -> str:
        text = super().__str__()
        if not self.MULTILINE:
            return one_line(text)
        return "\n".join(one_line(line) for line in text.split("\n"))


def one_line(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ConfigError(KatatestError):
    """A configuration Kata would reject (at ``stage``, with ``kata`` in its message), or that cannot be read.

    ``stage`` is Kata's stage (one of KATA_STAGES), set where the error is raised or by the ``kata_stage``
    around the step that raised it; ``kata`` is the part of Kata's own error text that says the same reason
    (what the conformance check looks for in a vector's ``.err``); '' when Kata has no such rejection."""

    def __init__(self, key: str, problem: str, source: str = "", stage: str = "", kata: str = "") -> None:
        self.key = key
        self.problem = problem
        self.source = source
        self.stage = stage
        self.kata = kata
        super().__init__(key, problem, source)

    def __str__(self) -> str:
        parts = [part for part in (self.source, self.stage, self.key, self.problem) if part]
        return one_line(": ".join(parts))


@contextmanager
def kata_stage(stage: str) -> Iterator[None]:
    """Every ConfigError raised inside without a stage is Kata's ``stage``."""
    assert stage in KATA_STAGES, stage
    try:
        yield
    except ConfigError as err:
        if not err.stage:
            err.stage = stage
        raise


class HostFactsError(KatatestError):
    """A host fact given on the command line (or probed) is unusable."""
