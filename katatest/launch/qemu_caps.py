"""A QEMU build's capabilities as data, the way libvirt keeps one capabilities file per QEMU version.

``probe`` asks a QEMU binary over QMP (``query-version``, ``query-machines``, ``qom-list-types``,
``qom-list-properties`` of Kata's machine and object types, ``device-list-properties`` of every device type Kata
emits, ``query-cpu-definitions``) plus one parse probe (boolean ``no`` prefixes); ``Capabilities`` is the answer,
stored as JSON per build version and arch: ``katatest/data/qemu_caps/qemu-<version>-<arch>.json`` for Debian's
builds (checked in), the asset cache for any other QEMU. Every capability finding comes from these files
(``katatest.launch.capabilities.plan_findings``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from katatest.assets.cache import cache_root
from katatest.kata.tomlconf import load_toml
from katatest.launch.errors import LaunchError

CAPS_DIR = Path(__file__).resolve().parent.parent / "data" / "qemu_caps"
FORMAT = 1


@dataclass(frozen=True)
class Capabilities:
    """What one QEMU build offers for one guest arch."""

    version: str  # e.g. "11.1.3 (Debian 1:11.1.3+ds-1)"
    arch: str  # amd64 | arm64
    machines: dict[str, list[str]] = field(default_factory=dict)  # name or alias -> its properties
    devices: dict[str, list[str]] = field(default_factory=dict)  # Kata's device types it has -> properties
    objects: dict[str, list[str]] = field(default_factory=dict)  # Kata's object types it has -> properties
    device_types: list[str] = field(default_factory=list)  # every device type (names only)
    object_types: list[str] = field(default_factory=list)  # every user-creatable object type
    cpu_models: list[str] = field(default_factory=list)
    bool_prefix_error: str = ""  # QEMU's complaint about ``-machine ...,noX`` ('' when accepted)
    format: int = FORMAT

    @property
    def short(self) -> str:
        """``QEMU 11.1.3 (arm64 guests)`` (a patched build: its description)."""
        if not self.version[:1].isdigit():
            return self.version
        return f"QEMU {self.version.split()[0]} ({self.arch} guests)"

    def has_machine(self, name: str) -> bool:
        return name in self.machines

    def has_device(self, name: str) -> bool:
        return name in self.device_types

    def has_object(self, name: str) -> bool:
        return name in self.object_types

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Capabilities:
        data = json.loads(text)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@functools.cache
def probe_list() -> dict[str, list[str]]:
    """Kata's machine, device and object types (``probe.toml``)."""
    doc = load_toml(CAPS_DIR / "probe.toml")
    return {key: list(doc[key]) for key in ("machines", "devices", "objects")}


def _names(props: list[dict]) -> list[str]:
    return sorted({p["name"] for p in props})


def _bool_prefix_error(command: Sequence[str]) -> str:
    try:
        proc = subprocess.run([*command, "-machine", "none,nodump-guest-core", "-version"], capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"probe failed: {exc}"
    return next((line.strip() for line in (proc.stdout + proc.stderr).splitlines() if "Expected '='" in line), "")


def probe(command: Sequence[str], arch: str, timeout: float = 60.0) -> Capabilities:
    """Ask the QEMU that ``command`` runs (binary, or a build's loader + binary + ``-L``) over QMP."""
    with _running(command, ["-machine", "none"], timeout) as qmp:
        return _ask(qmp, arch, _bool_prefix_error(command), command)


def _machine_props(command: Sequence[str], machine: str, timeout: float = 60.0) -> list[str]:
    """The properties of machine ``machine``: its class's (``-machine NAME,help``; QMP's qom-list-properties of a
    machine class can kill QEMU) and its instance's (``qom-list /machine`` of a stopped one: nvdimm and the like
    are added per instance)."""
    try:
        proc = subprocess.run([*command, "-machine", f"{machine},help"], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)
        names = {m.group(1) for m in re.finditer(r"^\s+([\w.-]+)=", proc.stdout + proc.stderr, re.M)}
    except (OSError, subprocess.TimeoutExpired):
        names = set()
    with _running(command, ["-machine", f"{machine},accel=tcg"], timeout) as qmp:
        names |= {p["name"] for p in qmp.execute("qom-list", {"path": "/machine"})
                  if not p["type"].startswith(("child<", "link<"))}
    return sorted(names)


@contextlib.contextmanager
def _running(command: Sequence[str], extra: Sequence[str], timeout: float):
    """A stopped QEMU (``command`` + ``extra``) and a QMP connection to it."""
    from katatest.launch.qmp import Qmp  # the QMP client: only when a QEMU is asked

    with tempfile.TemporaryDirectory(prefix="kt-caps-") as tmp:
        sock = os.path.join(tmp, "qmp.sock")
        proc = subprocess.Popen([*command, *extra, "-nodefaults", "-display", "none", "-S",
                                 "-qmp", f"unix:{sock},server=on,wait=off"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + timeout
            while not os.path.exists(sock):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise LaunchError(f"{' '.join(command)}: no QMP socket for the capabilities probe",
                                      proc.stderr.read() if proc.poll() is not None else "")
                time.sleep(0.05)
            qmp = Qmp(sock, timeout=timeout, name="caps")
            try:
                yield qmp
            finally:
                qmp.close()
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(10)
            if proc.stderr is not None:
                proc.stderr.close()


def _ask(qmp, arch: str, bool_error: str, command: Sequence[str] = ()) -> Capabilities:
    want = probe_list()
    v = qmp.execute("query-version")["qemu"]
    package = qmp.execute("query-version").get("package", "").strip()
    package = package if not package or package.startswith("(") else f"({package})"
    version = f"{v['major']}.{v['minor']}.{v['micro']}" + (f" {package}" if package else "")  # as -version says
    machines: dict[str, list[str]] = {}
    for m in qmp.execute("query-machines"):
        if m["name"] in want["machines"] or m.get("alias") in want["machines"]:
            props = _machine_props(command, m["name"])
            machines[m["name"]] = props
            if m.get("alias"):
                machines[m["alias"]] = props
    device_types = sorted(t["name"] for t in qmp.execute("qom-list-types", {"implements": "device",
                                                                           "abstract": False}))
    object_types = sorted(t["name"] for t in qmp.execute("qom-list-types", {"implements": "user-creatable",
                                                                           "abstract": False}))
    devices = {d: _names(qmp.execute("device-list-properties", {"typename": d}))
               for d in want["devices"] if d in device_types}
    objects = {o: _names(qmp.execute("qom-list-properties", {"typename": o}))
               for o in want["objects"] if o in object_types}
    cpus: list[str] = []
    with contextlib.suppress(Exception):  # not every build answers it without an accelerator
        cpus = sorted(c["name"] for c in qmp.execute("query-cpu-definitions"))
    return Capabilities(version, arch, machines, devices, objects, device_types, object_types, cpus, bool_error)


def caps_file_name(version: str, arch: str) -> str:
    return f"qemu-{re.sub(r'[^A-Za-z0-9.+-]+', '_', version)}-{arch}.json"


@functools.cache
def checked_in() -> tuple[Capabilities, ...]:
    """The capabilities of Debian's QEMU builds, as checked in (the known builds)."""
    return tuple(Capabilities.from_json(p.read_text()) for p in sorted(CAPS_DIR.glob("qemu-*.json")))


@functools.cache
def kata_patched() -> tuple[Capabilities, ...]:
    """What Kata's own patched QEMU builds add (``kata-patched.toml``), as partial capabilities per arch."""
    out = []
    for entry in load_toml(CAPS_DIR / "kata-patched.toml")["patched"]:
        for arch in entry["arches"]:
            out.append(Capabilities(entry["build"], arch, dict(entry.get("machines", {})),
                                    dict(entry.get("devices", {})), dict(entry.get("objects", {})),
                                    list(entry.get("devices", {})), list(entry.get("object_types", []))))
    return tuple(out)


def known_qemus() -> tuple[Capabilities, ...]:
    """Every QEMU katatest knows: Debian's builds (checked in) and Kata's patched ones."""
    return checked_in() + kata_patched()


@functools.cache
def capabilities(command: tuple[str, ...], arch: str) -> Capabilities:
    """The capabilities of the QEMU ``command`` runs, for ``arch`` guests: a checked-in file when its version
    is one of them, else probed once and cached (per binary content)."""
    version_out = subprocess.run([*command, "-version"], capture_output=True, text=True, timeout=30,
                                 stdin=subprocess.DEVNULL).stdout
    match = re.search(r"version (\d+\.\d+\.\d+)(?: \(([^)]*)\))?", version_out)
    if match:
        for caps in checked_in():
            if caps.arch == arch and caps.version == (f"{match.group(1)} ({match.group(2)})" if match.group(2)
                                                      else match.group(1)):
                return caps
    binary = next((c for c in command if "qemu-system" in os.path.basename(c)), command[0])
    digest = hashlib.sha256(Path(shutil.which(binary) or binary).read_bytes()).hexdigest()[:16]
    cached = cache_root() / "qemu-caps" / f"{digest}-{arch}.json"
    if cached.is_file():
        return Capabilities.from_json(cached.read_text())
    caps = probe(command, arch)
    with contextlib.suppress(OSError):
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(caps.to_json())
        os.replace(tmp, cached)
    return caps


def build_capabilities(build_name: str, arch: str, command: Sequence[str] | None = None) -> Capabilities:
    """The capabilities of QEMU build ``build_name`` (``10.0``) for ``arch`` guests: probed through
    ``command`` when the build is here, else the checked-in file of that major.minor (lint needs no QEMU)."""
    if command is not None:
        return capabilities(tuple(command), arch)
    found = [c for c in checked_in() if c.arch == arch and c.version.startswith(build_name + ".")]
    if not found:
        raise LaunchError(f"no capabilities data for QEMU {build_name} ({arch}): provision it with "
                          f"katatest assets build --qemu {build_name}")
    return found[-1]
