"""The individual benchmarks; each returns a dict with a ``figure`` (printed) and raw numbers."""

from __future__ import annotations

import resource
import select
import time
from pathlib import Path

from katatest.conformance.vectors import discover
from katatest.errors import KatatestError
from katatest.generate.render import render_doc
from katatest.host.flags import parse_flags
from katatest.kata.tomlconf import load_toml

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "conformance"


def render_all_vectors() -> dict:
    """Render every QEMU/CLH/FC vector in one process; baseline: only parsing their TOML + flags."""
    vectors = [v for suite in ("kata-3.0.0", "kata-3.0.0-clh", "kata-3.0.0-fc") for v in discover(DATA, suite)]
    inputs = [(v, parse_flags(" ".join(v.flags))[0]) for v in vectors]
    started = time.perf_counter()
    docs = [(load_toml(v.toml), facts, str(v.toml)) for v, facts in inputs]
    parse_s = time.perf_counter() - started
    started = time.perf_counter()
    rendered = rejected = 0
    for v, facts in inputs:
        try:
            render_doc(load_toml(v.toml), facts, str(v.toml))
            rendered += 1
        except KatatestError:  # rejections are part of the workload; anything else is a bug
            rejected += 1
    render_s = time.perf_counter() - started
    del docs
    return {
        "figure": f"{render_s:.3f} s",
        "note": f"{len(vectors)} vectors ({rendered} rendered, {rejected} rejected); "
                f"{render_s / parse_s:.1f}x the TOML-parse baseline",
        "render_all_s": round(render_s, 4),
        "parse_baseline_s": round(parse_s, 4),
        "render_ratio": round(render_s / parse_s, 2),
        "vectors": len(vectors),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _bare_boot_seconds(kernel: str, initrd: str, memory: str = "2048M", timeout: float = 120.0) -> float:
    """A bare QEMU (TCG) boot of the same kernel+initrd until the guest init's first line."""
    import subprocess

    argv = ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "max", "-m", memory, "-smp", "1",
            "-nodefaults", "-no-user-config", "-nographic", "-vga", "none", "-serial", "stdio",
            "-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 quiet panic=1"]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = started + timeout
        buffer = b""
        while time.perf_counter() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.perf_counter(), 0))
            if not ready:
                break  # the deadline: never a blocking read past it
            chunk = proc.stdout.read1(4096) if proc.stdout else b""
            if not chunk:
                break
            buffer += chunk
            if b"KATATEST-READY" in buffer:
                return time.perf_counter() - started
        raise RuntimeError("bare QEMU boot never reached the guest init")
    finally:
        proc.kill()
        proc.wait()


def boot_to_ready() -> dict:
    """Boot-to-ready of an amd64 initrd cell vs a bare QEMU boot of the same assets (median of 3 each)."""
    import tempfile

    from katatest.assets.cache import ensure_assets
    from katatest.guest.boot import boot_guest
    from katatest.host.facts import detect
    from katatest.kata.hypervisors import qemu_paths
    from katatest.launch.kvm import accel_verdict
    from katatest.matrix.cell_config import cell_document, cell_facts
    from katatest.matrix.model import load_matrix

    cell = load_matrix().cells["amd64-initrd-9p-blk"]
    host = detect()
    assets = ensure_assets("amd64")
    accel = accel_verdict(qemu_paths()["amd64"], "amd64", str(assets.kernel))
    harness, bare = [], []
    for _ in range(3):
        bare.append(_bare_boot_seconds(str(assets.kernel), str(assets.initrd)))
        with tempfile.TemporaryDirectory() as run_root:
            started = time.perf_counter()
            with boot_guest(cell_document(cell), cell_facts(cell, host), host=host, assets=assets, accel=accel,
                            run_root=run_root, name="bench"):
                harness.append(time.perf_counter() - started)
    ratio = _median(harness) / _median(bare)
    return {"figure": f"{ratio:.2f}x", "note": f"katatest {_median(harness):.2f} s vs bare QEMU "
            f"{_median(bare):.2f} s to the guest init's first line ({accel.accel}); target <= 1.15x",
            "boot_ratio": round(ratio, 3), "katatest_s": [round(v, 3) for v in harness],
            "bare_s": [round(v, 3) for v in bare]}


def asset_status_warm() -> dict:
    """Warm `katatest assets status` (all arches): must answer in well under a second."""
    import subprocess
    import sys

    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "katatest", "assets", "status", "--arch", "all"],
                   check=False, capture_output=True)
    seconds = time.perf_counter() - started
    return {"figure": f"{seconds:.2f} s", "note": "warm `katatest assets status --arch all` (target < 1 s)",
            "assets_status_s": round(seconds, 3)}


def _ping_seconds(channel) -> float:
    """One KTPING/KTPONG round trip: the console's floor (the guest init answers without forking). A lost ping
    is sent again; past 10 s it fails naming the ping (GuestChannel.ping): a benchmark never hangs."""
    return channel.ping(timeout=10.0)


def channel_round_trip() -> dict:
    """Median round trip of `true` over the guest channel (virtconsole and legacy serial), against the
    bare ping/pong round trip of the same console in the same run (30 of each)."""
    import tempfile

    from katatest.assets.cache import ensure_assets
    from katatest.guest.boot import boot_guest
    from katatest.host.facts import detect
    from katatest.kata.hypervisors import qemu_paths
    from katatest.launch.kvm import accel_verdict
    from katatest.matrix.cell_config import cell_document, cell_facts
    from katatest.matrix.model import load_matrix

    host = detect()
    assets = ensure_assets("amd64")
    accel = accel_verdict(qemu_paths()["amd64"], "amd64", str(assets.kernel))
    out: dict = {}
    for console, name in (("virtconsole", "amd64-initrd-9p-blk"), ("serial", "amd64-legacy-serial")):
        cell = load_matrix().cells[name]
        with tempfile.TemporaryDirectory() as run_root, boot_guest(
                cell_document(cell), cell_facts(cell, host), host=host, assets=assets, accel=accel,
                run_root=run_root, name="bench") as guest:
            commands, pings = [], []
            for _ in range(30):
                pings.append(_ping_seconds(guest.channel))
                started = time.perf_counter()
                guest.channel.run("true")
                commands.append(time.perf_counter() - started)
        out[console] = {"command_ms": round(_median(commands) * 1000, 1), "ping_ms": round(_median(pings) * 1000, 1)}
    v = out["virtconsole"]
    return {"figure": f"{v['command_ms']:.0f} ms",
            "note": f"`true` round trip, median of 30 ({accel.accel}): virtconsole {v['command_ms']} ms "
                    f"(ping {v['ping_ms']} ms), legacy serial {out['serial']['command_ms']} ms "
                    f"(ping {out['serial']['ping_ms']} ms); before the framed protocol: 57 ms",
            "channel_rtt_ms": v["command_ms"], "channel_rtt_ratio_to_ping": round(v["command_ms"] / v["ping_ms"], 2),
            "consoles": out}


def phase_breakdown(data: dict) -> dict:
    """Where the booted cells' time went (summed over workers): boot, checks (per group), teardown; from a
    ``summary.json`` (its cells' phases, as ``katatest.report.summary`` derives them)."""
    from katatest.report.summary import from_dict

    summary = from_dict(data)
    phases = summary.phase_totals()
    names = {c.name for c in summary.cells if c.booted}
    groups: dict[str, float] = {}
    for test in summary.tests:
        if test.cell in names and test.group:
            groups[test.group] = groups.get(test.group, 0.0) + test.duration_s
    count = max(phases["booted"], 1)
    return {**phases, "per_cell_boot_s": round(phases["boot_s"] / count, 2),
            "per_cell_checks_s": round(phases["checks_s"] / count, 2),
            "groups_s": {g: round(v, 1) for g, v in sorted(groups.items(), key=lambda kv: -kv[1])}}


def _matrix_run(root: Path, workers: str) -> tuple[float, dict]:
    import json
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="katatest-bench-") as out:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", "suites", "-q", "-p", "no:cacheprovider", "-n", workers,
                        "--dist", "loadgroup", "--katatest-reports", out], cwd=root, check=False,
                       capture_output=True, timeout=1800)
        seconds = time.perf_counter() - started
        summary = json.loads((Path(out) / "summary.json").read_text())
        summary["_launches"] = sum(1 for _ in (Path(out) / "cells").glob("*/launch-argv.txt"))
    return seconds, summary


def matrix_runs() -> dict:
    """The default matrix: its wall time against its boot floor (booted cells x a bare QEMU boot of the same
    kernel and initrd, over 2 workers, measured in this run), -n 2 vs -n 1, QEMU launches vs booted cells, and
    the phase breakdown (boot, checks per group, teardown) so a regression shows where it is."""
    from katatest.assets.cache import ensure_assets

    root = Path(__file__).resolve().parent.parent
    assets = ensure_assets("amd64")
    bare = _median([_bare_boot_seconds(str(assets.kernel), str(assets.initrd)) for _ in range(3)])
    timings, summaries = {}, {}
    for workers in ("2", "1"):
        timings[workers], summaries[workers] = _matrix_run(root, workers)
    summary = summaries["2"]
    phases = phase_breakdown(summary)
    floor = phases["booted"] * bare / 2
    ratio = timings["2"] / floor
    speedup = timings["1"] / timings["2"]
    return {"figure": f"{ratio:.2f}x", "note": f"default matrix -n 2 {timings['2']:.0f} s vs its boot floor "
            f"{floor:.0f} s ({phases['booted']} booted x bare boot {bare:.2f} s / 2; target <= 2x); -n 1 "
            f"{timings['1']:.0f} s ({speedup:.2f}x, target >= 1.7x); {summary['_launches']} QEMU launches for "
            f"{phases['booted']} booted cells (target: equal); per booted cell: boot {phases['per_cell_boot_s']} s, "
            f"checks {phases['per_cell_checks_s']} s; summed: {phases}",
            "floor_ratio": round(ratio, 3), "floor_s": round(floor, 1), "bare_boot_s": round(bare, 3),
            "xdist_speedup": round(speedup, 3), "launches": summary["_launches"], "cells": len(summary["cells"]),
            "booted_cells": phases["booted"], "wall_n2_s": round(timings["2"], 1),
            "wall_n1_s": round(timings["1"], 1), "phases": phases}


ALL = {"render_all_vectors": render_all_vectors, "boot_to_ready": boot_to_ready,
       "asset_status_warm": asset_status_warm, "matrix_runs": matrix_runs,
       "channel_round_trip": channel_round_trip}

# benchmark -> the keys it contributes to the top level of reports/bench.json
HEADLINE_KEYS = {
    "render_all_vectors": ("render_all_s", "peak_rss_mib"),
    "boot_to_ready": ("boot_ratio",),
    "matrix_runs": ("launches", "cells", "xdist_speedup", "floor_ratio"),
    "asset_status_warm": ("assets_status_s",),
    "channel_round_trip": ("channel_rtt_ms", "channel_rtt_ratio_to_ping"),
}


def flatten(results: dict) -> dict:
    """The headline keys of reports/bench.json, from whichever benchmarks ran."""
    return {key: results[name][key] for name, keys in HEADLINE_KEYS.items() if name in results for key in keys}
