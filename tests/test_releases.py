"""The release seam (issue 10): the generator takes the Kata release as input and looks up the behaviours that
differ between releases in that release's data file, never in version comparisons."""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

import pytest

from katatest.cli import main
from katatest.conformance.vectors import normalise
from katatest.errors import KatatestError
from katatest.generate.qemu.argv import QMP_VALUES, render_argv
from katatest.generate.qemu.build import build_qemu_config
from katatest.generate.render import render_file
from katatest.host.flags import parse_flags
from katatest.kata import releases
from katatest.kata.hypervisors import NAMES
from katatest.kata.loader import load_kata_config
from katatest.kata.releases import QMP_TRANSPORTS, QemuBehaviour, Release, known_releases, load_release
from katatest.kata.tomlconf import load_toml

ROOT = Path(__file__).resolve().parent.parent
NAMED = ROOT / "tests" / "data" / "conformance" / "kata-3.0.0" / "named"
DEBUG = NAMED / "debug_hypervisor.toml"
GENERATORS = ROOT / "katatest" / "generate"


def test_3_0_0_is_the_default_release() -> None:
    assert known_releases() == ["3.0.0", "3.30.0", "4.1.0"] and releases.DEFAULT_RELEASE == "3.0.0"
    kata = load_release()
    assert kata == Release("3.0.0", ("qemu", "clh", "fc", "acrn"),
                           QemuBehaviour(daemonize=True, qmp="socket", kernel_irqchip=True, debug_log=True),
                           bundled_qemu="6.2.0", bundled_virtiofsd="1.3.0")
    assert set(kata.hypervisors) <= set(NAMES)


def test_later_releases_drive_qemu_only() -> None:
    for version in ("3.30.0", "4.1.0"):
        kata = load_release(version)
        assert kata.hypervisors == ("qemu",)
        assert not kata.qemu.daemonize and kata.qemu.qmp == "fd" and kata.qemu.vsock_fd == 4
    assert not load_release("3.30.0").qemu.pcie_root_bus_pin and load_release("4.1.0").qemu.pcie_root_bus_pin


def test_a_later_release_refuses_clh() -> None:
    clh = ROOT / "tests" / "data" / "conformance" / "kata-3.0.0-clh" / "named"
    toml = sorted(clh.glob("*.toml"))[0]
    facts, _ = parse_flags(toml.with_suffix(".flags").read_text())
    render_file(toml, facts)
    with pytest.raises(KatatestError, match=r"Kata 4\.1\.0 does not drive clh"):
        render_file(toml, facts, release="4.1.0")


def test_unknown_release_names_the_known_ones() -> None:
    facts, _ = parse_flags((NAMED / "default.flags").read_text())
    with pytest.raises(KatatestError, match=r"unknown Kata release '2\.9\.9' \(known: 3\.0\.0, 3\.30\.0, 4\.1\.0\)"):
        render_file(NAMED / "default.toml", facts, release="2.9.9")
    with pytest.raises(KatatestError, match="unknown Kata release"):
        load_release("../base/configuration-qemu-amd64")


def test_cli_release_flag(capsys: pytest.CaptureFixture[str]) -> None:
    flags = shlex.split((NAMED / "default.flags").read_text())
    assert main(["render", str(NAMED / "default.toml"), *flags, "--kata-version", "3.0.0"]) == 0
    capsys.readouterr()
    assert main(["render", str(NAMED / "default.toml"), *flags, "--kata-version", "9"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "katatest: unknown Kata release '9' (known: 3.0.0, 3.30.0, 4.1.0)\n"


def _argv(behaviour: QemuBehaviour) -> list[str]:
    facts, _ = parse_flags(DEBUG.with_suffix(".flags").read_text())
    cfg = load_kata_config(load_toml(DEBUG), facts, str(DEBUG))
    kata = Release("test", ("qemu",), behaviour)
    return [a.value for a in render_argv(build_qemu_config(cfg, facts, kata))]


def test_the_qemu_generator_reads_each_behaviour_from_the_release() -> None:
    """Each behaviour flipped in a release changes exactly the argument it names."""
    base = load_release().qemu
    argv = _argv(base)
    assert normalise(argv) == normalise(DEBUG.with_suffix(".argv").read_text().splitlines())  # Kata 3.0.0's own
    assert "-daemonize" in argv and "-D" in argv
    assert any("kernel_irqchip=on" in a for a in argv)
    assert "-daemonize" not in _argv(dataclasses.replace(base, daemonize=False))
    assert "-D" not in _argv(dataclasses.replace(base, debug_log=False))
    machine = _argv(dataclasses.replace(base, kernel_irqchip=False))
    assert not any("kernel_irqchip" in a for a in machine) and any(a.startswith("q35,accel=kvm") for a in machine)


def test_every_qmp_transport_a_release_may_name_is_implemented() -> None:
    assert set(QMP_VALUES) == set(QMP_TRANSPORTS)


@pytest.mark.parametrize(("text", "problem"), [
    ('version = "x"\nhypervisors = ["qemu"]\n[qemu]\ndaemonize = true\nqmp = "socket"\nkernel_irqchip = true\n'
     'debug_log = true\nextra = 1\n', "qemu: unknown keys extra"),
    ('version = "x"\nhypervisors = ["dragonball"]\n[qemu]\n', "hypervisors: unknown"),
    ('version = "x"\nhypervisors = ["qemu"]\n[qemu]\ndaemonize = true\nqmp = "pipe"\nkernel_irqchip = true\n'
     'debug_log = true\n', "qemu.qmp: 'pipe' is not implemented"),
    ('version = "x"\nhypervisors = ["qemu"]\n[qemu]\ndaemonize = 1\nqmp = "socket"\nkernel_irqchip = true\n'
     'debug_log = true\n', "daemonize must be a bool"),
    ((releases.RELEASES_DIR / "3.0.0.toml").read_text().replace('version = "3.0.0"', 'version = "y"'),
     "does not match the file name"),
    ((releases.RELEASES_DIR / "3.0.0.toml").read_text().replace('nydusd_argv = "plain"', 'nydusd_argv = "x"'),
     "qemu.nydusd_argv: 'x' is not implemented"),
])
def test_a_bad_release_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str,
                                     problem: str) -> None:
    (tmp_path / "x.toml").write_text(text)
    monkeypatch.setattr(releases, "RELEASES_DIR", tmp_path)
    load_release.cache_clear()
    try:
        with pytest.raises(KatatestError, match=re.escape(problem)):
            load_release("x")
    finally:
        load_release.cache_clear()


def test_no_version_comparisons_in_the_generators() -> None:
    """Release differences are data: no generator compares versions."""
    pattern = re.compile(r"version\s*(>=|<=|==|!=|<|>)|release\s*(>=|<=|<|>)|\"3\.0\.0\"\s*(==|!=)")
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in GENERATORS.rglob("*.py")
                 for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
