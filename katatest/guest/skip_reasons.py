"""The named reasons a cell's guest may go unbooted, as data (``katatest/data/skip_reasons.toml``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from katatest.kata.tomlconf import load_toml

SKIP_REASONS_FILE = Path(__file__).resolve().parent.parent / "data" / "skip_reasons.toml"


@dataclass(frozen=True)
class SkipReason:
    """One reason: its name, what it means, and the test that proves katatest gives it where it should."""

    name: str
    what: str
    test: str


@functools.cache
def skip_reasons() -> dict[str, SkipReason]:
    """Every named skip reason, by name."""
    doc = load_toml(SKIP_REASONS_FILE)
    return {name: SkipReason(name, entry["what"], entry["test"]) for name, entry in doc.items()}


def check_reason(name: str) -> str:
    """``name`` if it is a named skip reason; AssertionError (a katatest bug) otherwise."""
    assert name in skip_reasons(), f"{name!r} is not a named skip reason ({SKIP_REASONS_FILE.name})"
    return name
