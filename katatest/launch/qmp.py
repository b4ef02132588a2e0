"""A small synchronous wrapper around ``qemu.qmp.QMPClient`` (its event loop runs in a thread)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable
from typing import Any

from qemu.qmp import EventListener, ExecuteError, QMPClient, Runstate

from katatest.launch.errors import LaunchError

EVENT_MISSING = "done, but no"  # in every EventMissing message (and QmpPeer's error for it)


class EventMissing(LaunchError):
    """A command's effect happened, but QEMU never sent the event that says so."""


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

    def execute_until(self, cmd: str, args: dict, event: str, data: dict, timeout: float,
                      gone: Callable[[], bool] | None = None, grace: float = 1.0, poll: float = 0.05) -> Any:
        """``execute``, then wait for ``event`` whose data has ``data``'s items, as Kata (govmm) waits for
        ``DEVICE_DELETED`` after ``device_del``. ``TimeoutError`` after ``timeout`` s; with ``gone`` (asked every
        ``poll`` s of silence, through QMP: whether what the command removes has left), ``EventMissing`` once it
        has left and the event did not follow within ``grace`` s (QEMU finished but never said so).

        The grace is needed: QEMU sends ``DEVICE_DELETED`` when it finalizes the device, which can come well
        after the device left the tree and after its children's events (a virtio-blk-pci's virtio-backend
        child is announced first: measured on QEMU 7.2 under TCG)."""
        assert self._client is not None
        client = self._client

        def matches(message: Any) -> bool:
            return all(message.get("data", {}).get(k) == v for k, v in data.items())

        async def run() -> Any:
            listener = EventListener(event)
            with client.listen(listener):
                result = await client.execute(cmd, args)
                left_at: float | None = None
                loop = asyncio.get_running_loop()
                while True:
                    try:
                        if matches(await asyncio.wait_for(listener.get(), poll)):
                            return result
                        continue
                    except asyncio.TimeoutError:
                        pass
                    if client.runstate != Runstate.RUNNING:
                        raise LaunchError(f"QMP closed while waiting for {event} {data}")
                    if gone is None:
                        continue
                    if left_at is None and await loop.run_in_executor(None, gone):
                        left_at = loop.time()
                    if left_at is not None and loop.time() - left_at >= grace:
                        raise EventMissing(f"{cmd} {json.dumps(args, sort_keys=True)}: {EVENT_MISSING} {event} "
                                           f"{json.dumps(data, sort_keys=True)} within {grace:.1f} s of it")

        async def bounded() -> Any:
            return await asyncio.wait_for(run(), timeout)

        return self._call(bounded(), timeout + 5.0)

    def send_fd(self, fd: int) -> None:
        """Pass ``fd`` to QEMU (SCM_RIGHTS) for the next ``getfd``."""
        assert self._client is not None
        client = self._client

        async def send() -> None:
            client.send_fd_scm(fd)

        self._call(send())

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
    to QEMU and its answer comes back as QMP writes it (``{"return": ...}`` or ``{"error": ...}``).

    A ``device_del`` is complete once QEMU sends ``DEVICE_DELETED`` for it (as govmm waits); if the device has
    left QEMU's tree (``/machine/peripheral``) and the event does not follow within ``grace`` s, the answer is
    an error naming that (``EventMissing``), not a wait for ``unplug_timeout``. A ``getfd`` passes the fd
    ``fds`` holds under its ``fdname`` (as Kata passes its tap and vhost-net fds). The connection is
    negotiated already, so ``qmp_capabilities`` is answered here."""

    def __init__(self, qmp: Qmp, unplug_timeout: float = 30.0, grace: float = 0.5) -> None:
        self.qmp = qmp
        self.unplug_timeout = unplug_timeout
        self.grace = grace
        self.fds: dict[str, int] = {}
        self.errors: list[tuple[str, str]] = []  # (command line, QEMU's error) in order

    def _in_tree(self, device: str) -> bool:
        return any(c["name"] == device for c in self.qmp.execute("qom-list", {"path": "/machine/peripheral"}))

    def answer(self, line: str) -> dict:
        obj = json.loads(line)
        command, args = obj["execute"], obj.get("arguments")
        if command == "qmp_capabilities":
            return {"return": {}}
        try:
            if command == "device_del":
                device = args["id"]
                result = self.qmp.execute_until(command, args, "DEVICE_DELETED", {"device": device},
                                                self.unplug_timeout, gone=lambda: not self._in_tree(device),
                                                grace=self.grace)
            else:
                if command == "getfd" and args.get("fdname") in self.fds:
                    self.qmp.send_fd(self.fds[args["fdname"]])
                result = self.qmp.execute(command, args)
        except ExecuteError as err:
            self.errors.append((line, str(err)))
            return {"error": {"class": err.error_class, "desc": str(err)}}
        except EventMissing as err:
            self.errors.append((line, str(err)))
            return {"error": {"class": "GenericError", "desc": str(err)}}
        except TimeoutError:
            self.errors.append((line, f"no DEVICE_DELETED for {args['id']} within {self.unplug_timeout:.0f} s"))
            return {"error": {"class": "GenericError", "desc": "device_del timed out"}}
        return {"return": result}
