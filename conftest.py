"""Root conftest: in-repo runs get the katatest plugin even when katatest is not installed.

The plugin's modules live in ``fixtures/`` and are imported as ``katatest.fixtures`` (``pyproject.toml`` maps the
folder there, so the PyPI name ``fixtures`` is never taken). An installed katatest registers the plugin through
its ``pytest11`` entry point; then this file only keeps ``reports/`` and ``bench/`` out of collection. Without the
entry point (a checkout used without ``pip install -e .``) it maps ``fixtures/`` to ``katatest.fixtures`` and
registers the plugin itself, so the plugin is loaded exactly once either way.

A run writes Python's bytecode caches (``__pycache__``, gitignored) even when ``PYTHONDONTWRITEBYTECODE`` is set,
for itself and the processes it starts: a run starts dozens of Python processes (xdist workers, the sub-sessions
of the project's own tests, CLI calls), and without caches each one compiles katatest and has pytest rewrite
every test module again (measured: the own tests' CPU time 292 s -> 260 s, wall 221 s -> 203 s).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PLUGIN = "katatest.fixtures.plugin"
collect_ignore = ["reports", "bench"]
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def entry_point_loaded() -> bool:
    """Whether pytest loads katatest's plugin through an installed ``pytest11`` entry point."""
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    found = entry_points()
    group = found.select(group="pytest11") if hasattr(found, "select") else found.get("pytest11", ())
    return any(ep.name == "katatest" and ep.value == PLUGIN for ep in group)


def map_fixtures_package() -> None:
    """Make ``fixtures/`` importable as ``katatest.fixtures`` (what the editable install's finder does)."""
    if "katatest.fixtures" in sys.modules or importlib.util.find_spec("katatest.fixtures") is not None:
        return
    spec = importlib.util.spec_from_file_location("katatest.fixtures", ROOT / "fixtures" / "__init__.py",
                                                  submodule_search_locations=[str(ROOT / "fixtures")])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["katatest.fixtures"] = module
    spec.loader.exec_module(module)


if entry_point_loaded():
    pytest_plugins: list[str] = []
else:
    map_fixtures_package()
    pytest_plugins = [PLUGIN]
