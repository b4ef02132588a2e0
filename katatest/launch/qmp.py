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


DRAIN_DRIVER = "katatest-rcu-drain"  # no such device model: QEMU refuses it, after draining its RCU callbacks


async def _drain_rcu(client: QMPClient) -> None:
    """A ``device_add`` QEMU refuses: ``qmp_device_add`` drains the pending RCU callbacks (``drain_call_rcu``)
    before it answers a device it could not add (QEMU 7.2 through 11.1), so the events of those callbacks
    precede the answer on the wire. Any other answer is an error naming the probe."""
    try:
        await client.execute("device_add", {"driver": DRAIN_DRIVER})
    except ExecuteError as err:
        if DRAIN_DRIVER not in str(err):
            raise LaunchError(f"device_add {DRAIN_DRIVER} (an RCU drain) was refused otherwise: {err}") from err
        return
    raise LaunchError(f"QEMU added a device {DRAIN_DRIVER!r}: the RCU drain needs it refused")


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
                      gone: Callable[[], bool] | None = None, poll: float = 0.05, drains: int = 2) -> Any:
        """``execute``, then wait for ``event`` whose data has ``data``'s items, as Kata (govmm) waits for
        ``DEVICE_DELETED`` after ``device_del``. ``TimeoutError`` after ``timeout`` s; with ``gone`` (asked every
        ``poll`` s of silence, through QMP: whether what the command removes has left), ``EventMissing`` once it
        has left and the event did not come by the time QEMU ran the releases still pending (``drains`` rounds
        of ``drain_rcu``) -- QEMU finished but never said so.

        QEMU sends ``DEVICE_DELETED`` when it finalizes the device, which can come after the device left the tree,
        after its children's events and after the answer to the next command (a virtio-blk-pci: measured on QEMU
        7.2 under TCG): the last references are dropped in QEMU's RCU callbacks (the flat views that mapped the
        device). A drain runs every callback queued before it, so an event still owed is on the wire before the
        drain's answer; a second drain runs what the first one's callbacks queued."""
        assert self._client is not None
        client = self._client

        def matches(message: Any) -> bool:
            return all(message.get("data", {}).get(k) == v for k, v in data.items())

        async def run() -> Any:
            listener = EventListener(event)
            with client.listen(listener):
                result = await client.execute(cmd, args)
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
                    if gone is None or not await loop.run_in_executor(None, gone):
                        continue
                    for _ in range(drains):
                        await _drain_rcu(client)
                        if any(matches(m) for m in listener.history):
                            return result
                    raise EventMissing(f"{cmd} {json.dumps(args, sort_keys=True)}: {EVENT_MISSING} {event} "
                                       f"{json.dumps(data, sort_keys=True)} by the time QEMU ran its pending "
                                       f"releases ({drains} RCU drains after it left)")

        async def bounded() -> Any:
            return await asyncio.wait_for(run(), timeout)

        return self._call(bounded(), timeout + 5.0)

    def drain_rcu(self) -> None:
        """Have QEMU run every RCU callback queued so far before it answers (see ``_drain_rcu``)."""
        assert self._client is not None
        self._call(_drain_rcu(self._client))

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
    left QEMU's tree (``/machine/peripheral``) and the event did not come by the time QEMU ran its pending
    releases (``Qmp.execute_until``'s RCU drains), the answer is an error naming that (``EventMissing``), not a
    wait for ``unplug_timeout``. A ``getfd`` passes the fd ``fds`` holds under its ``fdname`` (as Kata passes
    its tap and vhost-net fds). The connection is negotiated already, so ``qmp_capabilities`` is answered
    here."""

    def __init__(self, qmp: Qmp, unplug_timeout: float = 30.0) -> None:
        self.qmp = qmp
        self.unplug_timeout = unplug_timeout
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
                                                self.unplug_timeout, gone=lambda: not self._in_tree(device))
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
