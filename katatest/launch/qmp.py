"""A small synchronous wrapper around ``qemu.qmp.QMPClient`` (its event loop runs in a thread)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from typing import Any

from qemu.qmp import EventListener, ExecuteError, QMPClient

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

    def execute_until(self, cmd: str, args: dict, event: str, data: dict, timeout: float) -> Any:
        """``execute``, then wait for ``event`` whose data has ``data``'s items (``TimeoutError`` after
        ``timeout`` s): e.g. ``device_del`` until ``DEVICE_DELETED`` for that id, as Kata (govmm) waits."""
        assert self._client is not None
        client = self._client

        async def run() -> Any:
            listener = EventListener(event)
            with client.listen(listener):
                result = await client.execute(cmd, args)
                async for message in listener:
                    if all(message.get("data", {}).get(k) == v for k, v in data.items()):
                        return result
            raise LaunchError(f"QMP closed while waiting for {event} {data}")

        async def bounded() -> Any:
            return await asyncio.wait_for(run(), timeout)

        return self._call(bounded(), timeout + 5.0)

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


class QmpPeer:
    """A running QEMU as the hot-plug model's peer (``katatest.generate.qemu.hotplug``): each command line goes
    to QEMU and its answer comes back as QMP writes it (``{"return": ...}`` or ``{"error": ...}``). A
    ``device_del`` is complete once QEMU sends ``DEVICE_DELETED`` for it (as govmm waits); the connection
    is negotiated already, so ``qmp_capabilities`` is answered here."""

    def __init__(self, qmp: Qmp, unplug_timeout: float = 30.0) -> None:
        self.qmp = qmp
        self.unplug_timeout = unplug_timeout
        self.errors: list[tuple[str, str]] = []  # (command line, QEMU's error) in order

    def answer(self, line: str) -> dict:
        obj = json.loads(line)
        command, args = obj["execute"], obj.get("arguments")
        if command == "qmp_capabilities":
            return {"return": {}}
        try:
            if command == "device_del":
                result = self.qmp.execute_until(command, args, "DEVICE_DELETED", {"device": args["id"]},
                                                self.unplug_timeout)
            else:
                result = self.qmp.execute(command, args)
        except ExecuteError as err:
            self.errors.append((line, str(err)))
            return {"error": {"class": err.error_class, "desc": str(err)}}
        except TimeoutError:
            self.errors.append((line, f"no DEVICE_DELETED for {args['id']} within {self.unplug_timeout:.0f} s"))
            return {"error": {"class": "GenericError", "desc": "device_del timed out"}}
        return {"return": result}
