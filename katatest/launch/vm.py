"""A running VM: private runtime dir, virtiofsd + QEMU under a supervisor, QMP, teardown, artifacts.

    with VirtualMachine(plan, run_root) as vm:
        vm.qmp.status()          # "running"
        vm.console_socket        # for katatest.guest's channel; it logs to vm.console_log_path

No QEMU or virtiofsd outlives its owner: see ``supervisor``. Artifacts (argv as launched, overrides, QEMU
stderr, virtiofsd log, console log) are kept in ``artifacts_dir`` when something failed (or keep_artifacts).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from katatest.launch.capabilities import refusal_findings
from katatest.launch.errors import LaunchError
from katatest.launch.plan import LaunchPlan, relocate, socket_paths
from katatest.launch.proc import alive, owner_token
from katatest.launch.qmp import Qmp

VM_DIR_MODE = 0o750  # Kata's DirMode (virtcontainers/sandbox.go)
SHARED_DIR_MODE = 0o700  # Kata's sharedDirMode
RUNTIME_PREFIX = "kt-"
RUNTIME_PARENT = "/tmp"  # short on purpose: unix socket paths are limited to 107 bytes
XDG_PARENT_MAX = 40  # a longer XDG_RUNTIME_DIR would push the VM's sockets past SOCKET_PATH_MAX
RUN_ROOT_PREFIX = "katatest-"
OWNER_FILE = ".katatest-owner"
SCOPE_FILE = ".katatest-scope"
MARKER_ENV = "KATATEST_VM"
OWNER_ENV = "KATATEST_OWNER"
SOCKET_PATH_MAX = 107
DEFAULT_RUN_ROOT = os.path.join(tempfile.gettempdir(), "katatest-runs")


def runtime_parent(environ: Mapping[str, str] | None = None) -> str:
    """Where private runtime dirs go: a non-root user's own XDG_RUNTIME_DIR (as Kata's rootless runtime
    uses it) when it is a short, private dir of ours; else /tmp. ``environ``: whose (default: this process's)."""
    xdg = (os.environ if environ is None else environ).get("XDG_RUNTIME_DIR", "")
    if os.geteuid() == 0 or not os.path.isabs(xdg) or len(xdg) > XDG_PARENT_MAX:
        return RUNTIME_PARENT
    try:
        st = os.stat(xdg)
    except OSError:
        return RUNTIME_PARENT
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and os.access(xdg, os.W_OK | os.X_OK):
        return xdg
    return RUNTIME_PARENT


def scope_key(environ: Mapping[str, str] | None = None) -> str:
    """Whose sweeps may reap what an owner with ``environ`` (default: this process's) leaves behind: those
    with the same TMPDIR and XDG_RUNTIME_DIR (``katatest.launch.sweep.Scope``)."""
    env = os.environ if environ is None else environ
    tmp = next((env[n] for n in ("TMPDIR", "TEMP", "TMP") if env.get(n)), "/tmp")
    xdg = env.get("XDG_RUNTIME_DIR", "")
    return json.dumps([os.path.normpath(tmp), os.path.normpath(xdg) if xdg else ""])


def _owned_tempdir(prefix: str, parent: str) -> str:
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    os.chmod(path, 0o700)
    Path(path, OWNER_FILE).write_text(owner_token())
    Path(path, SCOPE_FILE).write_text(scope_key())
    return path


def make_runtime_dir() -> str:
    """A fresh private XDG_RUNTIME_DIR (mode 0700) marked with its owner, for rendering rootless plans."""
    return _owned_tempdir(RUNTIME_PREFIX, runtime_parent())


def make_run_root(name: str) -> Path:
    """A fresh run root for VM artifacts under the temp dir, marked with its owner (swept if orphaned)."""
    return Path(_owned_tempdir(f"{RUN_ROOT_PREFIX}{name}-", tempfile.gettempdir()))


@functools.lru_cache(maxsize=1)
def supervisor_mode() -> str:
    """``pidns`` (a PID namespace per VM; needs root) or ``subreaper`` (fallback). KATATEST_SUPERVISOR forces."""
    forced = os.environ.get("KATATEST_SUPERVISOR", "")
    if forced in ("pidns", "subreaper"):
        return forced
    unshare = shutil.which("unshare")
    if unshare and os.geteuid() == 0:
        probe = subprocess.run([unshare, "--pid", "--fork", "--kill-child", "true"], capture_output=True)
        if probe.returncode == 0:
            return "pidns"
    return "subreaper"


class VirtualMachine:
    """One launched VM. ``start()``/``stop()`` or use as a context manager."""

    def __init__(self, plan: LaunchPlan, run_root: str | os.PathLike = DEFAULT_RUN_ROOT, *, name: str = "vm",
                 runtime_dir: str | None = None, start_timeout: float = 60.0, stop_grace: float = 5.0,
                 keep_artifacts: bool | None = None) -> None:
        self.original_plan = plan
        self.plan = plan
        self.run_root = Path(run_root)
        self.name = name
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.keep_artifacts = keep_artifacts
        self.runtime_dir = runtime_dir
        self._own_runtime_dir = runtime_dir is None
        self.artifacts_dir: Path | None = None
        self.qmp: Qmp | None = None
        self.qemu_pid: int | None = None
        self.virtiofsd_pid: int | None = None
        self.supervisor_pid: int | None = None
        self.failed = False
        self._proc: subprocess.Popen | None = None
        self._lifeline: int | None = None

    # -- paths ---------------------------------------------------------------------------------------
    @property
    def console_socket(self) -> str | None:
        return self.plan.paths.console_socket

    @property
    def console_log_path(self) -> Path:
        assert self.artifacts_dir is not None, "start() first"
        return self.artifacts_dir / "console.log"

    @property
    def qemu_stderr_path(self) -> Path:
        assert self.artifacts_dir is not None, "start() first"
        return self.artifacts_dir / "qemu.stderr"

    @property
    def virtiofsd_log_path(self) -> Path:
        assert self.artifacts_dir is not None, "start() first"
        return self.artifacts_dir / "virtiofsd.log"

    def is_alive(self) -> bool:
        """Whether QEMU is still running (used by the guest channel to fail fast when it dies)."""
        if not self.qemu_pid:
            return self._proc is not None and self._proc.poll() is None
        try:
            os.kill(self.qemu_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        stat = Path(f"/proc/{self.qemu_pid}/stat")
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False

    # -- lifecycle -----------------------------------------------------------------------------------
    def __enter__(self) -> VirtualMachine:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.failed = True
        self.stop()

    def start(self) -> VirtualMachine:
        self.run_root.mkdir(parents=True, exist_ok=True)
        self.artifacts_dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=self.run_root))
        try:
            self._prepare()
            self._launch()
            self.qmp = Qmp(self.plan.paths.qmp_socket, name=self.name)
        except BaseException:
            self.failed = True
            self.stop()
            raise
        return self

    def _prepare(self) -> None:
        if self.runtime_dir is None:
            self.runtime_dir = make_runtime_dir()
        if not self.plan.paths.vm_dir.startswith(self.runtime_dir.rstrip("/") + "/"):
            self.plan = relocate(self.plan, self.runtime_dir)
        paths = self.plan.paths
        for sock in (paths.qmp_socket, paths.console_socket, paths.vhost_fs_socket, *socket_paths(self.plan.argv)):
            if sock and len(sock.encode()) > SOCKET_PATH_MAX:
                raise LaunchError(f"socket path longer than {SOCKET_PATH_MAX} bytes: {sock}")
        _makedirs(paths.vm_dir, VM_DIR_MODE)
        if paths.shared_dir:
            _makedirs(paths.shared_dir, SHARED_DIR_MODE)
        assert self.artifacts_dir is not None
        art = self.artifacts_dir
        (art / "argv").write_text("".join(a + "\n" for a in self.plan.argv))
        if self.plan.daemon_argv:
            (art / "virtiofsd.argv").write_text("".join(a + "\n" for a in self.plan.daemon_argv))
        (art / "overrides.json").write_text(json.dumps(self.plan.overrides_json(), indent=2) + "\n")
        (art / "paths.json").write_text(json.dumps({**vars(self.plan.paths), "runtime_dir": self.runtime_dir,
                                                    "console_log": str(self.console_log_path)}, indent=2))

    def _launch(self) -> None:
        assert self.artifacts_dir is not None
        inherited = self.plan.inherited_fds()
        passed = tuple(e.owner_fd for e in inherited if e.owner_fd is not None)
        read_end, write_end = os.pipe()
        self._lifeline = write_end
        spec = {
            "qemu_argv": self.plan.argv, "daemon_argv": self.plan.daemon_argv,
            "vhost_fs_socket": self.plan.paths.vhost_fs_socket, "pidfile": self.plan.paths.pidfile,
            "inherit": [e.to_json() for e in inherited], "qemu_stderr": str(self.qemu_stderr_path),
            "daemon_log": str(self.virtiofsd_log_path), "lifeline_fd": read_end,
            "start_timeout": self.start_timeout, "foreground": self.plan.foreground,
            "qmp_socket": self.plan.paths.qmp_socket,
        }
        spec_path = self.artifacts_dir / "supervisor.json"
        spec_path.write_text(json.dumps(spec, indent=2))
        cmd = [sys.executable, "-m", "katatest.launch.supervisor", str(spec_path)]
        if supervisor_mode() == "pidns":
            cmd = ["unshare", "--pid", "--fork", "--kill-child"] + cmd
        env = dict(os.environ, **{MARKER_ENV: str(self.artifacts_dir), OWNER_ENV: owner_token()})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                          env.get("PYTHONPATH")]))
        with open(self.artifacts_dir / "supervisor.log", "wb") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                          pass_fds=(read_end, *passed), env=env, start_new_session=True)
        os.close(read_end)
        event = self._read_event()
        if event.get("event") != "started":
            stderr = self.qemu_stderr_path.read_text(errors="replace") if self.qemu_stderr_path.exists() else ""
            detail = event.get("error") or "supervisor exited without a status"
            lacks = "; ".join(f.what for f in refusal_findings(stderr))
            detail += f"; QEMU lacks: {lacks}" if lacks else ""
            raise LaunchError(f"{Path(self.plan.binary).name} failed to start ({detail}; artifacts in "
                              f"{self.artifacts_dir})", stderr or _tail(self.artifacts_dir / "supervisor.log"),
                              self.plan.argv)
        self.qemu_pid = event.get("qemu_pid")
        self.virtiofsd_pid = event.get("virtiofsd_pid")
        self.supervisor_pid = event.get("supervisor_pid")

    def _read_event(self) -> dict:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + self.start_timeout + 5
        buf = b""
        while b"\n" not in buf and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
        try:
            return json.loads(buf.split(b"\n", 1)[0] or b"{}")
        except ValueError:
            return {"error": f"garbled supervisor status {buf[:200]!r}"}

    def stop(self) -> None:
        """QMP ``quit``; after the grace period the supervisor kills what is left; remove the runtime dir."""
        if self.qmp is not None:
            with contextlib.suppress(Exception):  # QEMU may be gone or hung: the lifeline handles that
                self.qmp.execute("quit", timeout=self.stop_grace)
            self.qmp.close()
            self.qmp = None
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(self.stop_grace)
        if self._lifeline is not None:
            os.close(self._lifeline)  # supervisor: EOF -> SIGKILL QEMU and virtiofsd, exit
            self._lifeline = None
        if proc is not None:
            try:
                proc.wait(5.0)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            self._proc = None
        self._wait_gone([self.qemu_pid, self.virtiofsd_pid], 5.0)
        if self._own_runtime_dir and self.runtime_dir and os.path.isdir(self.runtime_dir):
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
        keep = self.failed if self.keep_artifacts is None else self.keep_artifacts
        if self.artifacts_dir is not None and not keep:
            shutil.rmtree(self.artifacts_dir, ignore_errors=True)

    @staticmethod
    def _wait_gone(pids: list[int | None], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        live = [p for p in pids if p and alive(p)]
        while live and time.monotonic() < deadline:
            time.sleep(0.02)
            live = [p for p in live if alive(p)]
        if live:
            raise LaunchError(f"processes {live} survived teardown")


def _makedirs(path: str, mode: int) -> None:
    os.makedirs(path, mode=mode, exist_ok=True)
    os.chmod(path, mode)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
