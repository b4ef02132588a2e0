"""The declarative matrix: loading, selection by name/arch/shard, cell configs, and clear errors."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from katatest.errors import ConfigError
from katatest.generate.render import render_doc
from katatest.host.flags import parse_flags
from katatest.kata.releases import DEFAULT_RELEASE, known_releases
from katatest.matrix.cell_config import cell_document, cell_facts
from katatest.matrix.model import load_matrix, parse_shard, select_cells

MATRIX = load_matrix()
DEFAULT = MATRIX.named("default")


def test_default_matrix_covers_the_required_cells():
    dims = [c.dims for c in DEFAULT]
    amd64_qemu = [d for d in dims if d["arch"] == "amd64" and d["hypervisor"] == "qemu" and d["protection"] == "none"]
    assert {d["rootfs"] for d in amd64_qemu} == {"image-nvdimm", "image-blk", "initrd"}
    assert {d["shared_fs"] for d in amd64_qemu} == {"virtio-fs", "virtio-9p"}
    assert {d["block_driver"] for d in amd64_qemu} == {"virtio-scsi", "virtio-blk"}
    assert {d["protection"] for d in dims} == {"none", "sev", "tdx"}
    assert {c.name for c in DEFAULT} >= {"arm64-nvdimm-uefi", "arm64-initrd", "arm64-shipped-default",
                                          "amd64-legacy-serial", "amd64-viommu", "clh-default", "fc-default"}


def test_full_matrix_is_every_cell_for_every_release_that_models_it():
    from katatest.assets.qemu_builds import names
    from katatest.kata.releases import known_releases
    from katatest.matrix.model import default_builds, unmodelled

    on_releases = {(f"{c.name}@{r}" if r != c.release else c.name, r, c.hypervisor) for c in MATRIX.cells.values()
                   for r in known_releases() if r == c.release or not unmodelled(c, r)}
    expected = {name if vmm != "qemu" or b == default_builds(r)[0] else f"{name}~qemu{b}"
                for name, r, vmm in on_releases for b in names("qemu")}
    assert {c.name for c in MATRIX.named("full")} == expected
    names = [c.name for c in MATRIX.named("full")]
    assert len(names) == len(set(names)), "a cell selected twice runs twice"
    assert "clh-default@4.1.0" not in expected and "clh-default~qemu11.1" not in expected
    assert {"amd64-initrd-9p-blk@4.1.0", "amd64-net-tcfilter@4.1.0", "amd64-initrd-9p-blk@4.1.0~qemu7.2",
            "amd64-initrd-9p-blk~qemu11.1"} <= expected


def test_release_entries(tmp_path):
    """CELL@RELEASE: the cell on that release's shipped config; an exact release that cannot model the cell,
    or an unknown one, is an error naming the matrix."""
    import dataclasses

    (cell,) = dataclasses.replace(MATRIX, matrices={"m": ["amd64-initrd-9p-blk@4.1.0"]}).named("m")
    assert (cell.name, cell.release, cell.rootfs) == ("amd64-initrd-9p-blk@4.1.0", "4.1.0", "initrd")
    for entry, message in (("clh-default@4.1.0", "Kata 4.1.0 is not modelled for clh"),
                           ("amd64-initrd-9p-blk~qemu9.9", "names no QEMU build"),
                           ("amd64-initrd-9p-blk@9.9", "names no Kata release")):
        with pytest.raises(ConfigError, match=message) as err:
            dataclasses.replace(MATRIX, matrices={"m": [entry]}).named("m")
        assert "matrices.m" in str(err.value)


@pytest.mark.parametrize(("line", "message"), [('net_endpoints = ["tap"]', "cell.c.net_endpoints"),
                                             ('nested = "yes"', "cell.c.nested: must be true or false")])
def test_bad_cell_keys_name_the_key(tmp_path, line: str, message: str):
    path = tmp_path / "m.toml"
    path.write_text('[matrices]\ndefault = ["c"]\n[cell.c]\narch = "amd64"\nrootfs = "initrd"\n'
                    f'shared_fs = "virtio-fs"\nblock_driver = "virtio-blk"\n{line}\n')
    with pytest.raises(ConfigError, match=message):
        load_matrix(path)


def test_shards_partition_the_cells_deterministically():
    shards = [select_cells(DEFAULT, shard=f"{i}/3") for i in (1, 2, 3)]
    names = [c.name for shard in shards for c in shard]
    assert sorted(names) == sorted(c.name for c in DEFAULT)
    assert select_cells(DEFAULT, shard="2/3") == shards[1]


@pytest.mark.parametrize("text", ["0/3", "4/3", "a/b", "3"])
def test_bad_shard_is_a_clear_error(text):
    with pytest.raises(ConfigError, match="--shard"):
        parse_shard(text)


def test_arch_filter():
    assert {c.arch for c in select_cells(DEFAULT, arches=["arm64"])} == {"arm64"}


def test_release_filter_and_unknown_releases(tmp_path):
    cells = [*DEFAULT, replace(DEFAULT[0], name="later", release="9.9.9")]
    assert "later" not in {c.name for c in select_cells(cells, releases=[DEFAULT_RELEASE])}
    assert {c.name for c in select_cells(cells)} == {c.name for c in cells}
    with pytest.raises(ConfigError, match=r"--katatest-kata-version.*'9\.9\.9'.*known: 3\.0\.0"):
        select_cells(cells, releases=["9.9.9"])


def test_cell_release_is_a_dimension_checked_against_the_release_files(tmp_path):
    assert {c.dims["release"] for c in DEFAULT} <= set(known_releases())
    assert all(c.release == DEFAULT_RELEASE for c in select_cells(DEFAULT, releases=[DEFAULT_RELEASE]))
    bad = tmp_path / "m.toml"
    bad.write_text('[matrices]\ndefault = ["x"]\n[cell.x]\narch = "amd64"\nrootfs = "initrd"\nrelease = "2.5.0"\n'
                   'shared_fs = "virtio-fs"\nblock_driver = "virtio-blk"\n')
    with pytest.raises(ConfigError, match=r"cell\.x\.release.*3\.0\.0"):
        load_matrix(bad)


def test_unknown_matrix_and_bad_cell(tmp_path):
    with pytest.raises(ConfigError, match="no matrix named"):
        MATRIX.named("nightly")
    bad = tmp_path / "m.toml"
    bad.write_text('[matrices]\ndefault = ["x"]\n[cell.x]\narch = "sparc"\nrootfs = "initrd"\n'
                   'shared_fs = "virtio-fs"\nblock_driver = "virtio-blk"\n')
    with pytest.raises(ConfigError, match=r"cell\.x\.arch"):
        load_matrix(bad)


def test_every_cell_renders_or_is_a_documented_rejection():
    facts = parse_flags("--host-cpus 8 --host-mem-mib 16384")[0]
    for cell in MATRIX.cells.values():
        rendered = render_doc(cell_document(cell), cell_facts(cell, facts))
        assert rendered.argv


def test_cell_dimensions_reach_the_config():
    cell = MATRIX.cells["amd64-initrd-9p-blk"]
    qemu = cell_document(cell)["hypervisor"]["qemu"]
    assert "image" not in qemu and qemu["initrd"]
    assert qemu["shared_fs"] == "virtio-9p" and qemu["block_device_driver"] == "virtio-blk"
    sev = MATRIX.cells["amd64-sev"]
    assert cell_document(sev)["hypervisor"]["qemu"]["confidential_guest"] is True
    assert cell_facts(sev, parse_flags("")[0]).guest_protection == "sev"


def test_hugepages_shortfall_explains_itself(tmp_path):
    from katatest.guest.boot import hugepages_shortfall

    argv = ["qemu", "-m", "2048M,slots=10", "-object", "memory-backend-file,id=dimm1,mem-path=/dev/hugepages"]
    mounts, meminfo = tmp_path / "mounts", tmp_path / "meminfo"
    mounts.write_text("none /dev/hugepages tmpfs rw 0 0\n")
    meminfo.write_text("HugePages_Free: 0\nHugepagesize: 2048 kB\n")
    assert "not a hugetlbfs mount" in hugepages_shortfall(argv, str(mounts), str(meminfo))
    mounts.write_text("hugetlbfs /dev/hugepages hugetlbfs rw 0 0\n")
    assert "only 0 MiB" in hugepages_shortfall(argv, str(mounts), str(meminfo))
    meminfo.write_text("HugePages_Free: 1024\nHugepagesize: 2048 kB\n")
    assert hugepages_shortfall(argv, str(mounts), str(meminfo)) == ""
    assert hugepages_shortfall(["qemu", "-m", "2048M"], str(mounts), str(meminfo)) == ""


def test_unknown_kata_version_option_is_one_usage_error(isolated_env):
    root = Path(__file__).resolve().parent.parent
    run = subprocess.run([sys.executable, "-m", "pytest", "suites", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "--katatest-kata-version", "9.9"], cwd=root, env=isolated_env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 4, run.stdout + run.stderr
    assert "--katatest-kata-version: unknown Kata release '9.9' (known: 3.0.0" in run.stderr
    assert "Traceback" not in run.stdout + run.stderr


def test_installed_release_runs_every_cell_as_that_release():
    """--kata-config with --katatest-kata-version R: every cell katatest models for R, as R, once."""
    from katatest.matrix.model import as_release

    cells = as_release(MATRIX.named("default"), "4.1.0")
    names = [c.name for c in cells]
    assert len(names) == len(set(names)) and {c.release for c in cells} == {"4.1.0"}
    assert "amd64-legacy-serial@4.1.0" in names and "amd64-initrd-9p-blk@4.1.0" in names
    assert not [n for n in names if n.startswith(("clh-", "fc-")) or "~qemu" in n]
    assert "amd64-net-tcfilter@4.1.0" in names  # 4.1.0 models the pod network


def test_nested_cells_render_transitional_devices_on_any_host():
    """``nested = true``: Kata's nested-host behaviour (disable-modern=true) whatever the host is."""
    cell = MATRIX.cells["amd64-net-nested"]
    for host_nested in (False, True):
        facts = cell_facts(cell, parse_flags("--host-cpus 8 --host-mem-mib 16384")[0].with_overrides(
            nested=host_nested))
        argv = render_doc(cell_document(cell), facts).argv_values()
        assert "disable-modern=true" in " ".join(argv) and "disable-modern=false" not in " ".join(argv)



def test_a_cell_moved_back_to_its_release_build_keeps_its_own_name():
    moved = {c.name: c for c in select_cells(DEFAULT, qemu_builds=["7.2"])}
    assert "amd64-nvdimm-virtiofs-scsi~qemu7.2" not in moved  # 3.0.0's own build is 7.2
    back = moved["amd64-nvdimm-virtiofs-scsi"]
    assert back.qemu_build == "7.2" and "on QEMU" not in back.description
    assert moved["amd64-initrd-9p-blk@4.1.0~qemu7.2"].qemu_build == "7.2"
