"""Unused-golden checks (libvirt style): every data file is consumed by a test, every golden has an owner."""

from __future__ import annotations

from katatest.conformance.vectors import EXPECTATION_SUFFIXES, HOTPLUG_SUFFIXES, discover
from tests.conformance_files import DATA, GOLDEN, NET_GOLDENS, NET_SUITE

CONSUMED_SUFFIXES = (".toml", ".flags", *EXPECTATION_SUFFIXES, *HOTPLUG_SUFFIXES)


def _shipped(path) -> bool:
    """A release's shipped config (``<set>/base/``), rendered by tests/test_conformance_releases.py."""
    return path.parent.name == "base" and path.name.startswith("configuration-qemu-")


def test_every_vector_file_belongs_to_a_vector():
    unused = []
    for suite_dir in sorted(p for p in DATA.iterdir() if p.is_dir()):
        vectors = discover(DATA, suite_dir.name)
        owned = {f for v in vectors for f in v.files() if f.name[len(v.name):] in CONSUMED_SUFFIXES}
        for path in suite_dir.rglob("*"):
            documentation = path.parent == suite_dir and path.suffix == ".md"  # README.md, HOST-FACTS.md
            if path.is_file() and not documentation and path not in owned and not _shipped(path):
                unused.append(str(path.relative_to(DATA)))
    assert not unused, f"data files no test reads: {unused}"


def test_every_vector_has_an_expectation():
    missing = [v.id for suite in ("kata-3.0.0", "kata-3.0.0-clh", "kata-3.0.0-fc", "kata-3.0.0-net", "kata-3.30.0",
                                  "kata-4.1.0")
               for v in discover(DATA, suite) if not (v.file(".argv").exists() or v.file(".err").exists())]
    assert not missing


def test_no_stale_explain_goldens():
    names = {v.name for v in discover(DATA, "kata-3.0.0") if v.kind == "named" and not v.rejected}
    names |= {v.name for v in discover(DATA, NET_SUITE) if v.kind == "named" and v.name in NET_GOLDENS}
    stale = [p.name for p in (GOLDEN / "explain").glob("*.txt") if p.stem not in names]
    assert not stale, f"goldens without a vector (delete them or regenerate): {stale}"
