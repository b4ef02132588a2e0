"""Checking a rendered config against a Kata vector (shared by the unit tests and the suites): the same argv, or
the same rejection (Kata's stage and reason)."""

from __future__ import annotations

import json
import re
from typing import Any

from katatest.conformance.vectors import Vector, first_difference
from katatest.errors import KatatestError
from katatest.generate.render import render_file
from katatest.host.flags import parse_flags
from katatest.kata.releases import DEFAULT_RELEASE

DAEMON_SUFFIXES = (".virtiofsd.argv", ".nydusd.argv")


def json_difference(expected: Any, actual: Any, pointer: str = "") -> str:
    """The first JSON pointer where two documents differ, with both values; '' when equal."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            where = f"{pointer}/{key}"
            if key not in actual:
                return f"{where}: missing (expected {expected[key]!r})"
            if key not in expected:
                return f"{where}: unexpected {actual[key]!r}"
            diff = json_difference(expected[key], actual[key], where)
            if diff:
                return diff
        return ""
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return f"{pointer}: expected {len(expected)} items, got {len(actual)}"
        for index, (want, got) in enumerate(zip(expected, actual)):
            diff = json_difference(want, got, f"{pointer}/{index}")
            if diff:
                return diff
        return ""
    if expected != actual or type(expected) is not type(actual):
        return f"{pointer or '/'}: expected {expected!r}, got {actual!r}"
    return ""


def rejection_difference(kata: str, err: KatatestError) -> list[str]:
    """Why katatest's rejection ``err`` is not Kata's ``kata`` (the ``.err`` text, ``STAGE: message``): it must
    be at the same stage and for the same reason (its ``kata`` pattern found in Kata's message); [] when it is."""
    stage, _, message = kata.partition(": ")
    ours = getattr(err, "stage", "")
    if ours != stage:
        return [f"rejected at {ours or 'no Kata stage'}, Kata at {stage}: ours {err}; Kata's {kata}"]
    pattern = getattr(err, "kata", "")
    if not pattern:
        return [f"rejected without Kata's reason: ours {err}; Kata's {kata}"]
    if not re.search(pattern, " ".join(message.split()), re.IGNORECASE):
        return [f"rejected for another reason at {stage}: ours {err} ({pattern!r}); Kata's {kata}"]
    return []


def check_vector(vector: Vector, release: str = DEFAULT_RELEASE) -> list[str]:
    """Everything in which our rendering, as Kata ``release`` would do it, differs from what Kata produced for
    ``vector``."""
    facts, _ = parse_flags(" ".join(vector.flags))
    try:
        rendered = render_file(vector.toml, facts, release=release)
    except KatatestError as err:
        if vector.rejected:
            return rejection_difference(vector.file(".err").read_text().strip(), err)
        return [f"rejected, but Kata accepts it: {err}"]
    if vector.rejected:
        return [f"accepted, but Kata rejects it: {vector.file('.err').read_text().strip()}"]
    problems = []
    diff = first_difference(vector.expected_lines(".argv") or [], rendered.argv_values())
    if diff:
        problems.append(f"argv: {diff}")
    for suffix in DAEMON_SUFFIXES:
        expected = vector.expected_lines(suffix)
        if expected is not None:
            diff = first_difference(expected, rendered.daemon_values() or [])
            if diff:
                problems.append(f"{suffix.lstrip('.')}: {diff}")
    vmconfig = vector.file(".vmconfig.json")
    if vmconfig.exists():
        diff = json_difference(json.loads(vmconfig.read_text()), rendered.vmconfig)
        if diff:
            problems.append(f"vmconfig: {diff}")
    return problems
