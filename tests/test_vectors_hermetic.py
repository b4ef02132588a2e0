"""The conformance vectors are hermetic (issue 9, item 10): they give the same result on a host where Kata is
installed. Image and initrd sizes are host facts (a vector's ``.flags`` or the vectors' README default); the
generator reads nothing the configs name, and a real file at the image path changes nothing."""

from __future__ import annotations

import builtins
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import katatest.generate.acrn.generate
import katatest.generate.clh.generate
import katatest.generate.fc.generate
import katatest.generate.qemu.generate  # noqa: F401  (imported before the guard: imports stat their own files)
from katatest.conformance.check import check_vector
from katatest.conformance.vectors import discover, first_difference
from katatest.errors import ConfigError
from katatest.generate.render import render_file
from katatest.host.flags import parse_flags
from tests.conformance_files import DATA

VECTORS = [v for suite in ("kata-3.0.0", "kata-3.0.0-clh", "kata-3.0.0-fc", "kata-3.0.0-net")
           for v in discover(DATA, suite)]
KATA_IMAGE = "/usr/share/kata-containers/kata-containers.img"
# Every directory the vectors' configs name a path in (see test_guarded_dirs_cover_the_vectors).
HOST_DIRS = ("/usr/share/kata-containers", "/usr/bin", "/usr/libexec", "/usr/local/bin", "/dev",
             "/var/run/kata-containers", "/var/crash", "/opt/kata")
INSTALLED_SIZE = 12345  # what an installed Kata image would measure: not the vectors' 268435456


def _host_path(path: object) -> str:
    """``path`` when it lies under one of HOST_DIRS, else ''."""
    try:
        text = os.fsdecode(os.fspath(path))  # type: ignore[arg-type]
    except TypeError:  # a file descriptor
        return ""
    return text if any(text == d or text.startswith(d + "/") for d in HOST_DIRS) else ""


@pytest.fixture
def kata_installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """This host "has Kata installed": every path under HOST_DIRS stats as a regular 12345-byte file.
    Yields the list of (operation, path) the code under test did on those paths; opening one fails."""
    touched: list[tuple[str, str]] = []
    real_stat, real_lstat, real_open, real_os_open = os.stat, os.lstat, builtins.open, os.open
    installed = os.stat_result((stat.S_IFREG | 0o644, 1, 1, 1, 0, 0, INSTALLED_SIZE, 0, 0, 0))

    def guarded(name: str, real, fake_result=None):
        def call(path, *args, **kwargs):
            hit = _host_path(path)
            if not hit:
                return real(path, *args, **kwargs)
            touched.append((name, hit))
            if fake_result is not None:
                return fake_result
            raise PermissionError(13, "read by a vector test", hit)
        return call

    monkeypatch.setattr(os, "stat", guarded("stat", real_stat, installed))
    monkeypatch.setattr(os, "lstat", guarded("lstat", real_lstat, installed))
    monkeypatch.setattr(os, "open", guarded("os.open", real_os_open))
    monkeypatch.setattr(builtins, "open", guarded("open", real_open))
    yield touched


def test_guard_sees_what_kata_would_stat(kata_installed: list[tuple[str, str]]) -> None:
    """The fake installation is visible the way the old generator looked at it (so the guard can fail)."""
    assert os.stat(KATA_IMAGE).st_size == INSTALLED_SIZE
    assert Path(KATA_IMAGE).stat().st_size == INSTALLED_SIZE
    assert os.path.getsize(KATA_IMAGE) == INSTALLED_SIZE
    assert kata_installed == [("stat", KATA_IMAGE)] * 3


def test_vectors_conform_and_read_nothing_on_a_kata_host(kata_installed: list[tuple[str, str]]) -> None:
    failures = {v.id: problems for v in VECTORS if (problems := check_vector(v))}
    assert failures == {}
    assert kata_installed == []
    assert len(VECTORS) > 400


def test_real_image_file_changes_nothing(tmp_path: Path) -> None:
    """The default vector with its image path pointing at a real file of another size: the same argv."""
    (vector,) = [v for v in VECTORS if v.id == "kata-3.0.0/named/default"]
    image = tmp_path / "kata-containers.img"
    image.write_bytes(b"\0" * 4097)
    config = tmp_path / "default.toml"
    config.write_text(vector.toml.read_text().replace(KATA_IMAGE, str(image)))
    facts, _ = parse_flags(" ".join(vector.flags))
    expected = [line.replace(KATA_IMAGE, str(image)) for line in vector.expected_lines(".argv") or []]
    argv = render_file(config, facts).argv_values()
    assert first_difference(expected, argv) == ""
    assert any(f"mem-path={image},size=268435456" in arg for arg in argv)


def test_guarded_dirs_cover_the_vectors() -> None:
    """Every absolute path a vector config names lies under HOST_DIRS, so the guard above watches it."""
    from katatest.kata.tomlconf import load_toml

    def paths(value: object) -> Iterator[str]:
        if isinstance(value, dict):
            for item in value.values():
                yield from paths(item)
        elif isinstance(value, list):
            for item in value:
                yield from paths(item)
        elif isinstance(value, str) and value.startswith("/"):
            yield value

    unguarded = set()
    for vector in VECTORS:
        try:
            doc = load_toml(vector.toml)
        except ConfigError:  # a vector of an unparsable config names no path
            continue
        unguarded |= {p for p in paths(doc) if not _host_path(os.path.normpath(p))}
    assert unguarded == set()
