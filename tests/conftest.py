"""Fixtures shared by katatest's own tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from katatest.launch.proc import owner_token
from katatest.launch.sweep import sweep
from katatest.launch.vm import OWNER_FILE, RUNTIME_PARENT, RUNTIME_PREFIX, SCOPE_FILE, XDG_PARENT_MAX, scope_key


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that boot guests (marked ``boot``: seconds each, most of the run) first, the rest after them in their
    order: xdist hands the first quarter of the tests out round robin, so both workers start on the slow ones and
    the thousands of millisecond tests fill the gaps at the end, instead of one worker finishing a long boot test
    alone. (Every test stays independent of the order.)"""
    items.sort(key=lambda item: item.get_closest_marker("boot") is None)


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A private TMPDIR and XDG_RUNTIME_DIR for everything this test starts (pytest sub-sessions, VMs,
    sweeps), set in this process too; returns the environment for subprocesses.

    Run roots go under TMPDIR; runtime dirs and processes carry the pair as their scope, and every sweep
    touches only its own scope's (``katatest.launch.sweep.Scope``): concurrent tests never see, or reap,
    each other's leftovers. Both dirs live in one short ``/tmp/kt-iso-*`` dir (a non-root user's VM sockets
    sit under XDG_RUNTIME_DIR and must stay within 107 bytes, which a deep ``tmp_path`` would exceed),
    marked with this process as owner in the surrounding scope: removed at teardown, reaped by the next
    sweep there if this process is killed. (``tmp_path`` comes first: pytest's base temp dir stays put.)"""
    base = Path(tempfile.mkdtemp(prefix=f"{RUNTIME_PREFIX}iso-", dir=RUNTIME_PARENT))
    try:
        base.chmod(0o700)
        (base / OWNER_FILE).write_text(owner_token())
        (base / SCOPE_FILE).write_text(scope_key())
        tmp, xdg = base / "tmp", base / "xdg"
        for path in (tmp, xdg):
            path.mkdir(mode=0o700)
        assert len(str(xdg)) <= XDG_PARENT_MAX, xdg
        for name, value in (("TMPDIR", tmp), ("XDG_RUNTIME_DIR", xdg)):
            monkeypatch.setenv(name, str(value))
        for name in ("TEMP", "TMP"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setattr(tempfile, "tempdir", str(tmp))  # tempfile caches the temp dir per process
        yield dict(os.environ)
    finally:
        # what the test's runs left in its scope (a killed run's runtime dirs under /tmp, its processes)
        sweep(include_live_owners=True)
        shutil.rmtree(base, ignore_errors=True)
