"""Where Kata 3.0.0 puts a sandbox's sockets and shared directory (root and rootless layouts)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from katatest.errors import ConfigError
from katatest.host.facts import HostFacts

MAX_SOCKET_PATH_LEN = 107  # virtcontainers/utils.MaxSocketPathLen


@dataclass(frozen=True)
class SandboxPaths:
    """The host paths of one sandbox."""

    vm_store: str
    sandbox_id: str
    shared_dir: str

    @property
    def vm_dir(self) -> str:
        return posixpath.join(self.vm_store, self.sandbox_id)

    def socket(self, name: str) -> str:
        """A socket under the VM dir, rejected like Kata's BuildSocketPath when too long."""
        path = posixpath.join(self.vm_dir, name)
        if len(path) > MAX_SOCKET_PATH_LEN:
            raise ConfigError("host.sandbox_id", f"socket path too long (got {len(path)}, max "
                              f"{MAX_SOCKET_PATH_LEN}): {path!r}")
        return path


def sandbox_paths(facts: HostFacts) -> SandboxPaths:
    """Kata's persist driver paths: ``/run/vc/vm`` and ``/run/kata-containers/shared/sandboxes``,
    both below XDG_RUNTIME_DIR when rootless."""
    prefix = facts.runtime_dir if facts.rootless else "/"
    vm_store = posixpath.join(prefix, "run/vc/vm")
    shared = posixpath.join(prefix, "run/kata-containers/shared/sandboxes", facts.sandbox_id, "shared")
    return SandboxPaths(vm_store=vm_store, sandbox_id=facts.sandbox_id, shared_dir=shared)
