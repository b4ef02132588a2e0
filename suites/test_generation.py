"""Generation suite: every conformance vector of the selected Kata releases (--katatest-kata-version, default
all) rendered as its release and compared (fast, boots nothing); the matrix cells against their goldens."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from katatest.conformance.check import check_vector
from katatest.conformance.vectors import VECTOR_SETS, discover, normalise

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "conformance"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "vector" in metafunc.fixturenames:
        wanted = metafunc.config.getoption("katatest_kata_version") or sorted(set(VECTOR_SETS.values()))
        cases = [pytest.param(v, release, id=f"{release}:{v.id}") for suite, release in VECTOR_SETS.items()
                 if release in wanted for v in discover(DATA, suite)]
        metafunc.parametrize(("vector", "release"), cases)


def test_generation_matches_kata(vector, release):
    problems = check_vector(vector, release)
    assert not problems, "; ".join(problems)


# --- matrix cells -------------------------------------------------------------------------------------------

GOLDEN = Path(__file__).resolve().parent / "golden" / "cells"


def test_cell_renders_like_its_golden(reference_render, kata_base_config):
    """The cell's argv (reference host) is what the reviewed golden says; KATATEST_REGEN=1 rewrites it."""
    if kata_base_config is not None:
        pytest.skip("the cell's base is the installed config (--kata-config); its golden is of Kata's shipped one")
    argv = normalise(reference_render.rendered.argv_values())
    # what Kata launches does not depend on the QEMU build it runs on: CELL~qemuB shares CELL's golden
    golden = GOLDEN / f"{reference_render.cell.name.split('~qemu')[0]}.argv"
    text = "\n".join(argv) + "\n"
    if os.environ.get("KATATEST_REGEN", "") not in ("", "0"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"no golden for this cell: KATATEST_REGEN=1 pytest {__file__}"
    assert golden.read_text() == text, "argv changed: review, then KATATEST_REGEN=1 to accept"


def test_cell_argv_is_well_formed(reference_render):
    """Every argument has provenance; one -append; the cell's dimensions are visible in the argv."""
    cell = reference_render.cell
    args = reference_render.rendered.argv
    if cell.hypervisor != "qemu":
        rendered = reference_render.rendered
        assert all(a.sources for a in args)
        assert rendered.vmconfig, f"{cell.hypervisor} sends a VM configuration"
        assert rendered.vmconfig_sources and all(rendered.vmconfig_sources.values())
        return
    values = [a.value for a in args]
    assert all(a.sources for a in args)
    assert values.count("-append") == 1
    joined = " ".join(values)
    if cell.rootfs == "initrd":
        assert "-initrd" in values
    elif cell.rootfs == "image-nvdimm" and cell.protection == "none":
        assert "nvdimm,id=nv0,memdev=mem0" in joined
    else:
        assert "virtio-blk" in joined and "root=/dev/vda1" in joined
    assert ("vhost-user-fs" in joined) == (cell.shared_fs == "virtio-fs")
    assert ("virtio-9p" in joined) == (cell.shared_fs == "virtio-9p")
    assert ("virtio-scsi" in joined) == (cell.block_driver == "virtio-scsi")
    if cell.protection != "none":
        assert f"{cell.protection}-guest" in joined


def test_no_stale_cell_goldens():
    from katatest.matrix.model import load_matrix

    matrix = load_matrix()
    names = set(matrix.cells) | {c.name for name in matrix.matrices for c in matrix.named(name)}
    stale = [p.name for p in GOLDEN.glob("*.argv") if p.stem not in names]
    assert not stale, f"goldens of cells that no longer exist: {stale}"


def test_cell_lints_clean(reference_render):
    """No config value of the cell is misparsed by QEMU (katatest lint)."""
    from katatest.generate.lint import lint

    findings = lint(reference_render.document, reference_render.facts, reference_render.rendered)
    assert not findings, "; ".join(map(str, findings))
