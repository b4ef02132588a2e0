"""Inherited fds: opened by kind and placed at the numbers the argv names, in a real child process."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from katatest.launch import fds
from katatest.launch.fds import InheritedFd, check_unique

PROBE = ("import os, stat, sys\n"
         "for n in map(int, sys.argv[1:]):\n"
         "    m = os.fstat(n).st_mode\n"
         "    print(n, 'sock' if stat.S_ISSOCK(m) else 'chr' if stat.S_ISCHR(m) else 'fifo' if stat.S_ISFIFO(m) "
         "else 'other')\n")


def test_child_finds_each_kind_at_its_number(tmp_path):
    read_end, write_end = os.pipe()
    entries = [InheritedFd(3, "unix-listener", "qmp", path=str(tmp_path / "qmp.sock")),
               InheritedFd(4, "device", "vsock", path="/dev/null"),
               InheritedFd(5, "passed", "tap queue", owner_fd=read_end)]
    opened = fds.open_all([e.to_json() for e in check_unique(entries)])
    try:
        assert all(fd >= fds.HIGH_FD for fd in opened.values())
        out = subprocess.run([sys.executable, "-c", PROBE, "3", "4", "5"], capture_output=True, text=True,
                             close_fds=False, preexec_fn=fds.placer(opened), check=True).stdout
    finally:
        fds.close_all(opened)
        os.close(read_end)
        os.close(write_end)
    assert out.split("\n")[:3] == ["3 sock", "4 chr", "5 fifo"]
    assert stat.S_ISSOCK(os.stat(tmp_path / "qmp.sock").st_mode)


def test_same_number_twice_is_refused():
    with pytest.raises(ValueError, match="fd 4 claimed twice: a and b"):
        check_unique([InheritedFd(4, "device", "a", path="/dev/null"), InheritedFd(4, "device", "b", path="/x")])


def test_failed_open_closes_what_it_opened(tmp_path):
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        fds.open_all([{"target": 3, "kind": "device", "path": "/dev/null"},
                      {"target": 4, "kind": "device", "path": str(tmp_path / "missing")}])
    assert len(os.listdir("/proc/self/fd")) == before


def test_stdio_numbers_and_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="stdio"):
        InheritedFd(2, "device", "x", path="/dev/null")
    with pytest.raises(ValueError, match="unknown kind"):
        InheritedFd(3, "pipe", "x")
