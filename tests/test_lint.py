"""katatest lint: comma-containing config values that land unescaped in QEMU option lists."""

from __future__ import annotations

import copy
import subprocess
import sys

from katatest.generate.lint import lint
from katatest.generate.render import render_doc
from katatest.host.flags import parse_flags
from katatest.kata.tomlconf import load_toml
from katatest.matrix.cell_config import base_config_path

FACTS = parse_flags("--host-cpus 8 --host-mem-mib 16384")[0]


def _lint(changes: dict) -> list:
    doc = copy.deepcopy(load_toml(base_config_path("amd64")))
    doc["hypervisor"]["qemu"].update(changes)
    return lint(doc, FACTS, render_doc(doc, FACTS))


def test_shipped_config_is_clean():
    assert _lint({}) == []


def test_image_with_comma_is_reported_with_the_safe_form():
    (finding,) = _lint({"image": "/var/lib/kata,readonly=off.img"})
    assert finding.key == "hypervisor.qemu.image"
    assert "mem-path=/var/lib/kata,readonly=off.img" in finding.argument
    assert "mem-path=/var/lib/kata,,readonly=off.img" in finding.safe


def test_entropy_source_and_blk_image_and_virtiofsd_source():
    findings = _lint({"entropy_source": "/dev/a,b", "valid_entropy_sources": ["/dev/a,b"],
                      "disable_image_nvdimm": True, "image": "/x,y.img"})
    keys = sorted({f.key for f in findings})
    assert keys == ["hypervisor.qemu.entropy_source", "hypervisor.qemu.image"]
    assert any(f.argument.startswith("id=image-") for f in findings)


def test_intended_option_lists_are_not_findings():
    assert _lint({"cpu_features": "pmu=off,vmx=off", "machine_accelerators": "usb=off,dump-guest-core=off"}) == []


def test_rootless_runtime_dir_with_comma():
    facts = FACTS.with_overrides(rootless=True, xdg_runtime_dir="/run/user/a,b")
    doc = load_toml(base_config_path("amd64"))
    findings = lint(doc, facts, render_doc(doc, facts))
    assert {f.key for f in findings} == {"host.xdg_runtime_dir"}
    assert any("path=/run/user/a,,b/run/vc/vm" in f.safe for f in findings)


def test_cli_exit_codes(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(base_config_path("amd64").read_text().replace(
        'image = "/usr/share/kata-containers/kata-containers.img"', 'image = "/var/lib/kata,readonly=off.img"'))
    run = subprocess.run([sys.executable, "-m", "katatest", "lint", str(bad)], capture_output=True, text=True)
    assert run.returncode == 1 and "hypervisor.qemu.image" in run.stdout and ",," in run.stdout
    good = subprocess.run([sys.executable, "-m", "katatest", "lint", str(base_config_path("amd64"))],
                          capture_output=True, text=True)
    assert good.returncode == 0
