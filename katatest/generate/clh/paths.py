"""The sockets Kata 3.0.0's clh driver puts in the sandbox's VM directory (``BuildSocketPath``)."""

from __future__ import annotations

from katatest.generate.paths import sandbox_paths
from katatest.host.facts import HostFacts

API_SOCKET = "clh-api.sock"  # clhAPISocket: the REST API, given with --api-socket
VSOCK_SOCKET = "clh.sock"  # clhSocket: the hybrid vsock's host side
VIRTIOFSD_SOCKET = "virtiofsd.sock"  # virtioFsSocket: vhost-user-fs backend (virtiofsd or nydusd)
NYDUSD_API_SOCKET = "nydusd-api.sock"

PATH_SOURCES = ("host.sandbox_id", "host.rootless", "host.xdg_runtime_dir")


def clh_socket(facts: HostFacts, name: str) -> str:
    """``<vm store>/<sandbox id>/<name>``, rejected when longer than a unix socket path may be."""
    return sandbox_paths(facts).socket(name)
