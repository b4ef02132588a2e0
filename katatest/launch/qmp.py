"""A small synchronous wrapper around ``qemu.qmp.QMPClient`` (its event loop runs in a thread)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from qemu.qmp import QMPClient

from katatest.launch.errors import LaunchError


class Qmp:
    """``Qmp(socket_path).execute("query-status")`` -> the command's return value."""

    def __init__(self, socket_path: str, timeout: float = 10.0, name: str = "katatest") -> None:
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"qmp-{name}", daemon=True)
        self._thread.start()
        self._client: QMPClient | None = None
        try:
            self._client = self._call(self._make(name))
            self._call(self._client.connect(socket_path))
        except Exception as exc:
            self.close()
            raise LaunchError(f"QMP connect to {socket_path} failed: {exc}") from exc

    @staticmethod
    async def _make(name: str) -> QMPClient:
        return QMPClient(name)

    def _call(self, coro: Any, timeout: float | None = None) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout or self.timeout)

    def execute(self, cmd: str, args: dict | None = None, timeout: float | None = None) -> Any:
        assert self._client is not None
        return self._call(self._client.execute(cmd, args), timeout)

    def status(self) -> str:
        """``query-status``'s status, e.g. ``running``."""
        return self.execute("query-status")["status"]

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):  # best effort: the peer may be gone
                self._call(self._client.disconnect(), 5.0)
            self._client = None
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()
