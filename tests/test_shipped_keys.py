"""Every QEMU configuration a release ships is kept as data, renders as Kata renders it, and has every key it sets
read by the loader (or listed, with why, in katatest.kata.key_coverage)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from katatest.conformance.vectors import first_difference
from katatest.errors import ConfigError
from katatest.generate.render import render_file
from katatest.host.flags import parse_flags
from katatest.kata import loader
from katatest.kata.key_coverage import NOT_LAUNCH, UNMODELLED, UnmodelledKey
from katatest.kata.releases import load_release
from katatest.kata.tomlconf import load_toml
from katatest.matrix.cell_config import BASE_DIR
from tests.conformance_files import DATA

SHIPPED = sorted(BASE_DIR.glob("*/configuration-qemu*.toml"))
NAME = re.compile(r"configuration-qemu(?:-(?P<variant>.+))?-(?P<arch>amd64|arm64)\.toml")


def vector_of(path: Path) -> Path:
    """The shipped/ vector Kata made from this config (shipped_ARCH[_VARIANT])."""
    match = NAME.fullmatch(path.name)
    assert match, path
    variant = f"_{match['variant'].replace('-', '_')}" if match["variant"] else ""
    return DATA / f"kata-{path.parent.name}" / "shipped" / f"shipped_{match['arch']}{variant}"


def test_every_shipped_vector_has_its_config() -> None:
    vectors = {p.with_suffix("") for p in DATA.glob("kata-*/shipped/*.toml") if not p.stem.endswith("_nested")}
    assert vectors == {vector_of(p) for p in SHIPPED if p.parent.name != "3.0.0"}
    assert len(vectors) == 11 + 12


@pytest.mark.parametrize("config", [p for p in SHIPPED], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_config_renders_as_kata(config: Path) -> None:
    vector = vector_of(config)
    facts, _ = parse_flags(vector.with_suffix(".flags").read_text())
    rendered = render_file(config, facts, release=config.parent.name)
    assert first_difference(vector.with_suffix(".argv").read_text().splitlines(), rendered.argv_values()) == ""


def _set_keys(doc: dict) -> set[str]:
    """Every table.key a config sets (hypervisor and agent tables without their name, as key_coverage says)."""
    keys = set()
    for table in ("hypervisor", "agent"):
        for section in doc.get(table, {}).values():
            keys |= {f"{table}.{k}" for k in section}
    for table in ("runtime", "factory", "image"):
        keys |= {f"{table}.{k}" for k in doc.get(table, {})}
    return keys


@pytest.mark.parametrize("config", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_key_is_read(config: Path) -> None:
    """A key the loader never looks at would be a setting silently ignored (as the TDX quote-generation port
    once was): each must be read, or named in key_coverage with why it does not change the launch."""
    doc = load_toml(config)
    loader.READ_KEYS.clear()
    facts, _ = parse_flags(vector_of(config).with_suffix(".flags").read_text())
    loader.load_configuration(doc, facts, str(config), load_release(config.parent.name))
    read = {re.sub(r"^(hypervisor|agent)\.[^.]+\.", r"\1.", k) for k in loader.READ_KEYS}
    ignored = _set_keys(doc) - read - set(NOT_LAUNCH) - set(UNMODELLED)
    assert not ignored, f"{config.name}: keys the loader ignores: {sorted(ignored)}"


def test_the_key_check_can_fail(tmp_path: Path) -> None:
    config = tmp_path / "configuration-qemu-amd64.toml"
    config.write_text((BASE_DIR / "4.1.0" / "configuration-qemu-amd64.toml").read_text()
                      + "\n[runtime.nothing]\n")
    doc = load_toml(config)
    doc["hypervisor"]["qemu"]["made_up_key"] = 1
    loader.READ_KEYS.clear()
    facts, _ = parse_flags("")
    loader.load_configuration(doc, facts, str(config), load_release("4.1.0"))
    assert "hypervisor.qemu.made_up_key" not in loader.READ_KEYS
    assert "hypervisor.qemu.tdx_quote_generation_service_socket_port" in loader.READ_KEYS


@pytest.mark.parametrize(("key", "value"), [("kernel_verity_params", '"root_hash=ab"'), ("enable_numa", "true"),
                                            ("numa_mapping", '["0"]')])
def test_unmodelled_key_is_refused_by_name(tmp_path: Path, key: str, value: str) -> None:
    text = (BASE_DIR / "4.1.0" / "configuration-qemu-amd64.toml").read_text()
    text = re.sub(rf"(?m)^{key} = .*\n", "", text)
    text = text.replace("[hypervisor.qemu]\n", f"[hypervisor.qemu]\n{key} = {value}\n")
    config = tmp_path / "c.toml"
    config.write_text(text)
    with pytest.raises(UnmodelledKey, match=f"hypervisor.qemu.{key}"):
        render_file(config, parse_flags("")[0], release="4.1.0")
    run = subprocess.run([sys.executable, "-m", "katatest", "render", str(config), "--kata-version", "4.1.0"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and len(run.stderr.splitlines()) == 1 and key in run.stderr


def _tdx(tmp_path: Path, release: str, port: int | None) -> str:
    text = (BASE_DIR / release / "configuration-qemu-tdx-amd64.toml").read_text()
    text = re.sub(r"(?m)^tdx_quote_generation_service_socket_port = .*\n", "", text)
    if port is not None:
        text = text.replace("[hypervisor.qemu]\n", f"[hypervisor.qemu]\ntdx_quote_generation_service_socket_port = "
                                                   f"{port}\n", 1)
    config = tmp_path / f"tdx-{release}-{port}.toml"
    config.write_text(text)
    argv = render_file(config, parse_flags("--guest-protection tdx")[0], release=release).argv_values()
    return next(a for a in argv if "tdx-guest" in a)


@pytest.mark.parametrize(("release", "port", "socket"), [
    ("3.30.0", None, '{"type":"unix","path":"/var/run/tdx-qgs/qgs.socket"}'),
    ("3.30.0", 4050, '{"type":"vsock","cid":"2","port":"4050"}'),
    ("3.30.0", 4051, '{"type":"vsock","cid":"2","port":"4051"}'),
    ("4.1.0", 0, '{"type":"vsock","cid":"2","port":"4050"}'),
    ("4.1.0", 4051, '{"type":"vsock","cid":"2","port":"4051"}'),
])
def test_tdx_quote_generation_port(tmp_path: Path, release: str, port: int | None, socket: str) -> None:
    """govmm's getQgsSocketAddress: a port is vsock on it; no port is the unix socket (3.30.0) or, with no such
    socket on the host, vsock 4050 (4.1.0)."""
    assert f'"quote-generation-socket":{socket}' in _tdx(tmp_path, release, port)


def test_cca_needs_a_cca_host() -> None:
    config = BASE_DIR / "3.30.0" / "configuration-qemu-cca-arm64.toml"
    with pytest.raises(ConfigError, match="does not support") as err:
        render_file(config, parse_flags("--arch arm64")[0], release="3.30.0")
    assert err.value.stage == "CreateVM"
    argv = render_file(config, parse_flags("--arch arm64 --guest-protection cca")[0], release="3.30.0").argv_values()
    assert "rme-guest,id=rme0,measurement-algorithm=sha512" in argv
    assert "nvdimm" not in " ".join(argv)
