"""katatest benchmarks: ratios against baselines measured in the same run (not timed tests).

    python bench/run.py [--only render,...]

Writes reports/bench.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import benchmarks  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--output", default=str(ROOT / "reports" / "bench.json"))
    args = parser.parse_args(argv)
    selected: dict[str, Callable[[], dict]] = {
        name: fn for name, fn in benchmarks.ALL.items() if not args.only or name in args.only.split(",")
    }
    results: dict[str, object] = {}
    for name, fn in selected.items():
        started = time.perf_counter()
        print(f"bench: {name} ...", flush=True)
        outcome = fn()
        outcome["wall_s"] = round(time.perf_counter() - started, 3)
        results[name] = outcome
    flat = benchmarks.flatten(results)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(output.read_text()) if output.exists() else {}
    existing.update(flat)
    existing["details"] = {**existing.get("details", {}), **results}
    output.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
    print(f"\n{'benchmark':28} {'figure':>14}  note")
    for name, outcome in results.items():
        print(f"{name:28} {outcome.get('figure', ''):>14}  {outcome.get('note', '')}")
    print(f"\nwritten: {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
