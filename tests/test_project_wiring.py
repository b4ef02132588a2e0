"""The README's commands and CI stay in step; the tree keeps the layout ARCHITECTURE.md describes."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from katatest.kata.hypervisors import HYPERVISORS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    return [line.strip() for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith("    bash scripts/setup.sh &&")]


def test_readme_has_the_two_commands():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    assert any(" suites" in c for c in commands) and any(" tests" in c for c in commands)


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = next(c for c in _readme_commands() if " tests" in c)
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


# --- the layout (issue 10): one package per step, imports that follow the flow, one hypervisor table ---------

PACKAGE = ROOT / "katatest"


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_at_most_six_loose_modules_and_every_package_says_its_step() -> None:
    assert len(list(PACKAGE.glob("*.py"))) <= 6
    packages = [p.parent for p in PACKAGE.rglob("__init__.py")] + [ROOT / "fixtures"]
    for package in packages:
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        assert doc and doc.splitlines()[0].strip(), f"{package}: no docstring"


def test_pyproject_lists_every_package_and_maps_fixtures_into_katatest() -> None:
    setuptools = _pyproject()["tool"]["setuptools"]
    tree = {".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py")}
    assert set(setuptools["packages"]) == tree | {"katatest.fixtures"}
    assert setuptools["package-dir"] == {"katatest.fixtures": "fixtures"}
    assert _pyproject()["project"]["entry-points"]["pytest11"] == {"katatest": "katatest.fixtures.plugin"}


def test_no_top_level_fixtures_package_is_installed() -> None:
    try:
        dist = importlib.metadata.distribution("katatest")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("katatest is not installed (pip install -e .)")
    assert (dist.read_text("top_level.txt") or "").split() == ["katatest"]
    assert importlib.util.find_spec("katatest.fixtures").submodule_search_locations == [str(ROOT / "fixtures")]


def test_nothing_below_the_cli_imports_it() -> None:
    above = {*_modules(PACKAGE / "cli"), PACKAGE / "__main__.py"}
    offenders = [str(p.relative_to(ROOT)) for p in _modules(PACKAGE) + _modules(ROOT / "fixtures")
                 if p not in above and any(n.startswith("katatest.cli") for n in _imports(p))]
    assert offenders == []


@pytest.mark.parametrize("vmm", ["clh", "fc", "acrn"])
def test_other_generators_import_nothing_of_qemu(vmm: str) -> None:
    for path in _modules(PACKAGE / "generate" / vmm):
        assert not any(n.startswith("katatest.generate.qemu") for n in _imports(path)), path


@pytest.mark.parametrize("step", ["kata", "host", "generate", "conformance", "launch"])
def test_no_step_imports_a_later_one(step: str) -> None:
    """Config loading, host facts, generation, conformance and launch never reach the guest, the suites'
    expectations, the fixtures or the reports."""
    later = ("katatest.guest", "katatest.expect", "katatest.fixtures", "katatest.report", "katatest.matrix")
    for path in _modules(PACKAGE / step):
        assert not [n for n in _imports(path) if n.startswith(later)], path


def test_expectations_do_not_reach_into_the_launcher() -> None:
    for path in _modules(PACKAGE / "expect"):
        assert not any(n.startswith("katatest.launch") for n in _imports(path)), path


def test_one_hypervisor_table() -> None:
    """Each hypervisor's section and generator come from katatest.kata.hypervisors; no copy of the table."""
    assert [h.name for h in HYPERVISORS] == ["qemu", "clh", "fc", "acrn"]
    assert len({h.section for h in HYPERVISORS}) == len(HYPERVISORS)
    for h in HYPERVISORS:
        assert callable(h.render_function()), h
    table = PACKAGE / "kata" / "hypervisors.py"
    copies = [str(p.relative_to(ROOT)) for p in _modules(PACKAGE) + _modules(ROOT / "fixtures")
              if p != table and re.search(r"""["']fc["']\s*:\s*["']firecracker|["']firecracker["']\s*:\s*["']fc""",
                                          p.read_text())]
    assert copies == []


UNINSTALLED_RUN = r"""
import os, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]  # as if never pip-installed
sys.path.insert(0, os.getcwd())
import pytest
code = pytest.main(sys.argv[1:])
import katatest.fixtures.plugin as plugin
print("plugin from", plugin.__file__)
raise SystemExit(code)
"""


@pytest.mark.usefixtures("isolated_env")  # a pytest sub-session: its own TMPDIR/XDG_RUNTIME_DIR
def test_root_conftest_registers_the_plugin_for_an_uninstalled_checkout(isolated_env: dict[str, str]) -> None:
    """Without the entry point (autoload off, no editable finder) the root conftest maps fixtures/ to
    katatest.fixtures and registers the plugin once: its options parse and the cells are generated."""
    env = {**isolated_env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run([sys.executable, "-c", UNINSTALLED_RUN, "suites/test_generation.py", "--collect-only", "-q",
                           "-p", "no:cacheprovider", "--katatest-matrix", "default", "-k", "amd64-initrd-9p-blk"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "amd64-initrd-9p-blk" in proc.stdout and "already registered" not in proc.stderr
    assert f"plugin from {ROOT / 'fixtures' / 'plugin.py'}" in proc.stdout


@pytest.mark.parametrize("doc", ["ARCHITECTURE.md", "README.md"])
def test_the_docs_name_every_package(doc: str) -> None:
    text = (ROOT / doc).read_text()
    packages = sorted({p.parent.relative_to(ROOT).as_posix() for p in PACKAGE.glob("*/__init__.py")})
    assert [p for p in packages if f"`{p}/`" not in text] == []
    assert "`fixtures/`" in text
