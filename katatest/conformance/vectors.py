"""Conformance vectors made by Kata itself: discovery, normalisation and comparison."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

_RANDOM_IDS = re.compile(r"\b(char|image|iothread)-[0-9a-f]{16}\b")
EXPECTATION_SUFFIXES = (".argv", ".err", ".virtiofsd.argv", ".nydusd.argv", ".vmconfig.json")
HOTPLUG_SUFFIXES = (".ops", ".qmp", ".replies", ".result")  # the hot-plug vector sets' (kata-<release>-hotplug)
# The hot-plug vector sets and the release whose code made each.
HOTPLUG_SETS = {"kata-3.0.0-hotplug": "3.0.0", "kata-3.30.0-hotplug": "3.30.0", "kata-4.1.0-hotplug": "4.1.0"}
VECTOR_KINDS = ("named", "random", "shipped")
# The vector sets (folders of tests/data/conformance) and the Kata release whose code made each.
VECTOR_SETS = {"kata-3.0.0": "3.0.0", "kata-3.0.0-clh": "3.0.0", "kata-3.0.0-fc": "3.0.0", "kata-3.0.0-net": "3.0.0",
               "kata-3.30.0": "3.30.0", "kata-3.30.0-net": "3.30.0", "kata-4.1.0": "4.1.0", "kata-4.1.0-net": "4.1.0"}


@dataclass(frozen=True)
class Vector:
    """One case: NAME.toml + NAME.flags and what Kata produced for it."""

    suite: str  # e.g. "kata-3.0.0", "kata-3.0.0-clh"
    kind: str  # one of VECTOR_KINDS
    name: str
    directory: Path

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.kind}/{self.name}"

    def file(self, suffix: str) -> Path:
        return self.directory / f"{self.name}{suffix}"

    @property
    def toml(self) -> Path:
        return self.file(".toml")

    @property
    def flags(self) -> list[str]:
        path = self.file(".flags")
        return shlex.split(path.read_text()) if path.exists() else []

    @property
    def rejected(self) -> bool:
        return self.file(".err").exists()

    def expected_lines(self, suffix: str) -> list[str] | None:
        path = self.file(suffix)
        return path.read_text().splitlines() if path.exists() else None

    def files(self) -> list[Path]:
        return sorted(self.directory.glob(f"{glob_escape(self.name)}.*"))


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def discover(root: Path, suite: str) -> list[Vector]:
    """All vectors of one suite directory (``named/``, ``random/`` and ``shipped/``: the release's installed
    configs)."""
    vectors = []
    for kind in VECTOR_KINDS:
        directory = root / suite / kind
        for toml in sorted(directory.glob("*.toml")):
            vectors.append(Vector(suite, kind, toml.stem, directory))
    return vectors


def normalise(lines: list[str]) -> list[str]:
    """Blank out the parts Kata randomises per run: the -uuid value and the random device ids."""
    out = []
    previous = ""
    for line in lines:
        out.append("<uuid>" if previous == "-uuid" else _RANDOM_IDS.sub(r"\1-<random>", line))
        previous = line
    return out


def first_difference(expected: list[str], actual: list[str]) -> str:
    """A readable description of the first differing argument, or '' when equal."""
    expected, actual = normalise(expected), normalise(actual)
    for index, (want, got) in enumerate(zip(expected, actual)):
        if want != got:
            return f"argument {index}: expected {want!r}, got {got!r}"
    if len(expected) > len(actual):
        return f"missing arguments from {len(actual)}: {expected[len(actual):][:4]}"
    if len(actual) > len(expected):
        return f"unexpected arguments from {len(expected)}: {actual[len(expected):][:4]}"
    return ""
