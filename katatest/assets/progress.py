"""Running long build commands with their output in a log file and a periodic heartbeat."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from katatest.assets.errors import AssetError

Progress = Callable[[str], None]
HEARTBEAT_SECONDS = 30.0


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 16), b""))


def log_tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a log file (for error messages)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def run_logged(cmd: Sequence[str], cwd: Path, log_path: Path, progress: Progress,
               what: str, env: dict | None = None, heartbeat: float = HEARTBEAT_SECONDS) -> None:
    """Run ``cmd`` appending its output to ``log_path``; report "still building" every ``heartbeat`` s."""
    started = time.monotonic()
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(list(cmd), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
        try:
            while True:
                try:
                    rc = proc.wait(timeout=heartbeat)
                    break
                except subprocess.TimeoutExpired:
                    elapsed = int(time.monotonic() - started)
                    progress(f"  still building {what}, {_count_lines(log_path)} lines of log ({elapsed}s)")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if rc != 0:
        last = log_tail(log_path, 1).strip()
        raise AssetError(f"{what}: `{' '.join(cmd[:3])}` failed (exit {rc}): {last!r}; full log: {log_path}")


def run_tool(cmd: list[str], missing_hint: str, stdin: str | None = None) -> str:
    """Run a build tool; a missing binary or a failure is one AssetError line (with ``missing_hint``)."""
    try:
        out = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise AssetError(f"`{cmd[0]}` not found ({missing_hint})") from None
    if out.returncode != 0:
        raise AssetError(f"`{' '.join(cmd)}` failed: {(out.stderr or out.stdout).strip()[:300]}")
    return out.stdout
