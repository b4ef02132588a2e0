"""The individual benchmarks; each returns a dict with a ``figure`` (printed) and raw numbers."""

from __future__ import annotations

import resource
import time
from pathlib import Path

from katatest.kata.flags import parse_flags
from katatest.render import render_doc
from katatest.tomlconf import load_toml
from katatest.vectors import discover

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
        except Exception:  # noqa: BLE001 - rejections are part of the workload
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


ALL = {"render_all_vectors": render_all_vectors}


def flatten(results: dict) -> dict:
    """The headline keys of reports/bench.json."""
    flat = {}
    if "render_all_vectors" in results:
        flat["render_all_s"] = results["render_all_vectors"]["render_all_s"]
        flat["peak_rss_mib"] = results["render_all_vectors"]["peak_rss_mib"]
    return flat
