"""QMP: the host's view of the running VM agrees with the generated argv."""

from __future__ import annotations

from katatest.expect.checks import memory_mib, options, props, smp


def test_status_running(guest):
    status = guest.vm.qmp.execute("query-status")
    assert status["status"] == "running" and status["running"] is True


def test_cpus_fast(guest):
    cpus = guest.vm.qmp.execute("query-cpus-fast")
    assert len(cpus) == smp(guest.plan.argv)["cpus"]


def test_memory_size_summary(guest):
    summary = guest.vm.qmp.execute("query-memory-size-summary")
    size = props(options(guest.plan.argv, "-m")[0])[""]
    assert summary["base-memory"] == memory_mib(size) * 1024 * 1024


def test_query_block(guest, cell):
    blocks = {b["device"] or b.get("qdev", ""): b for b in guest.vm.qmp.execute("query-block")}
    drives = [props(d) for d in options(guest.plan.argv, "-drive") if "id" in props(d)]
    for drive in drives:
        block = blocks.get(drive["id"])
        assert block is not None, f"drive {drive['id']} not in query-block"
        assert block["inserted"]["file"] == drive["file"]
        assert block["inserted"]["ro"] == (drive.get("readonly") == "on")
    if cell.rootfs == "image-blk":
        assert drives, "an image-on-virtio-blk cell has an image drive"
