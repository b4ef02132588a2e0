"""An installed Kata's version, read from a real ``kata-runtime --version``, and the advice doctor gives."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from katatest.cli import main
from katatest.host.installed_kata import installed_kata_version, parse_version_output, release_advice

KATA_3_2 = """kata-runtime  : 3.2.0
   commit   : 2a0a5a4b6b5ab9a5a3e3ec6c11f8e4e6d14c5e9e
   OCI specs: 1.1.0+dev
"""


def _fake_runtime(folder: Path, output: str) -> None:
    script = folder / "kata-runtime"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}EOF\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_version_from_the_runtime_on_path(tmp_path, monkeypatch):
    _fake_runtime(tmp_path, KATA_3_2)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert installed_kata_version() == "3.2.0"


def test_no_runtime_and_unreadable_output(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert installed_kata_version() is None
    assert parse_version_output("kata-runtime: command failed\n") is None
    assert parse_version_output("kata-runtime  : 3.30.0-rc0\n") == "3.30.0"


@pytest.mark.parametrize(("installed", "expected"), [
    ("3.0.0", "pass --kata-version 3.0.0"),
    ("3.2.0", "no data for Kata 3.2.0 (known: 3.0.0, 3.30.0); the closest earlier is 3.0.0"),
    ("3.30.0", "pass --kata-version 3.30.0"),
    ("2.5.0", "knows no release up to 2.5.0"),
])
def test_advice(installed, expected):
    assert expected in release_advice(installed, ["3.0.0", "3.30.0"])


def test_doctor_reports_the_installed_kata(tmp_path, monkeypatch, capsys):
    _fake_runtime(tmp_path, KATA_3_2)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert main(["doctor"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("installed Kata"))
    assert line.startswith("installed Kata: 3.2.0: katatest has no data for Kata 3.2.0")
