"""The jailer chroot layout of Kata 3.0.0's fc driver (``setPaths``, ``fcJailResource``)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from katatest.host.facts import HostFacts

CHROOT_BASE_DIR = "/run/vc"  # filepath.Join("/run", fs.StoragePathSuffix): needs exec, not the persist dir
API_SOCKET = "firecracker.socket"
HYBRID_VSOCK = "kata.hvsock"
MAX_ID_LEN = 32  # truncateID: keeps the API socket path under the unix limit


def go_base(path: str) -> str:
    """Go's ``filepath.Base``: last element, trailing slashes ignored, "." for "" and "/" for all slashes."""
    if path == "":
        return "."
    stripped = path.rstrip("/")
    if stripped == "":
        return "/"
    return stripped.rsplit("/", 1)[-1]


def go_join(*parts: str) -> str:
    """Go's ``filepath.Join``: join the non-empty parts and clean the result."""
    joined = "/".join(p for p in parts if p)
    if not joined:
        return ""
    cleaned = posixpath.normpath(joined)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


@dataclass(frozen=True)
class FcLayout:
    """Where one sandbox's Firecracker resources live on the host, and how Firecracker sees them."""

    vm_id: str
    vm_path: str  # <chroot base>/<binary name>/<id>
    jailed: bool  # jailer_path is set: Firecracker sees paths relative to its chroot

    @property
    def jailer_root(self) -> str:
        return go_join(self.vm_path, "root")

    @property
    def api_socket(self) -> str:
        return go_join(self.jailer_root, "run", API_SOCKET)

    @property
    def hybrid_vsock(self) -> str:
        return go_join(self.jailer_root, HYBRID_VSOCK)

    def jailed_path(self, name: str) -> str:
        """A resource bind-mounted or created in the jail root, as Firecracker is told about it."""
        return go_join("/", name) if self.jailed else go_join(self.jailer_root, name)


def fc_layout(hypervisor_path: str, jailer_path: str, facts: HostFacts) -> FcLayout:
    """``setPaths`` for the sandbox of ``facts`` (its id truncated to 32 characters)."""
    vm_id = facts.sandbox_id[:MAX_ID_LEN]
    vm_path = go_join(CHROOT_BASE_DIR, go_base(hypervisor_path), vm_id)
    return FcLayout(vm_id=vm_id, vm_path=vm_path, jailed=jailer_path != "")
