"""The ``katatest`` command line: output formats, provenance, and one-line errors (exit 2, no traceback)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from katatest.cli import COMMANDS, main
from katatest.cli import boot as cli_boot
from katatest.cli.facts import config_facts
from katatest.conformance.vectors import normalise
from katatest.errors import ConfigError
from katatest.kata.tomlconf import MAX_CONFIG_BYTES, load_toml, read_config

REPO = Path(__file__).resolve().parent.parent
NAMED = REPO / "tests" / "data" / "conformance" / "kata-3.0.0" / "named"
DEFAULT = NAMED / "default.toml"
DEFAULT_FLAGS = shlex.split((NAMED / "default.flags").read_text())
EXPECTED = normalise((NAMED / "default.argv").read_text().splitlines())
EXPECTED_DAEMON = (NAMED / "default.virtiofsd.argv").read_text().splitlines()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m katatest ARGS`` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "katatest", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60)


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``katatest.cli.main(ARGS)`` in-process; usage errors (SystemExit) count as their exit code."""
    try:
        code = main(list(args))
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, out: str, err: str, *mentions: str) -> None:
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("katatest")
    for text in mentions:
        assert text in lines[0], (text, lines[0])


def base_toml(**changes: str) -> str:
    """default.toml with some ``[hypervisor.qemu]`` lines replaced (``key=raw TOML value``)."""
    lines = []
    for line in DEFAULT.read_text().splitlines():
        key = line.partition("=")[0].strip()
        lines.append(f"{key} = {changes.pop(key)}" if key in changes else line)
    header = lines.index("[hypervisor.qemu]")
    lines[header + 1:header + 1] = [f"{k} = {v}" for k, v in changes.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------
# Rendering


def test_subprocess_render_equals_vector() -> None:
    proc = run_cli("render", str(DEFAULT), *DEFAULT_FLAGS)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert normalise(proc.stdout.splitlines()) == EXPECTED


def test_in_process_render_equals_vector(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "render", str(DEFAULT), *DEFAULT_FLAGS)
    assert (code, err) == (0, "")
    assert normalise(out.splitlines()) == EXPECTED


def test_shell_format_round_trips(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "render", str(DEFAULT), *DEFAULT_FLAGS, "--format", "shell")
    assert code == 0
    assert out.count("\n") == 1
    assert normalise(shlex.split(out)) == EXPECTED


def test_shell_format_quotes_awkward_paths(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "awkward.toml"
    kernel = "/opt/with space/ünï,cödé's $kernel"
    config.write_text(base_toml(kernel=json.dumps(kernel)))
    code, out, _ = run_main(capsys, "render", str(config), *DEFAULT_FLAGS, "--format", "shell")
    assert code == 0
    argv = shlex.split(out)
    assert argv[argv.index("-kernel") + 1] == kernel


def test_json_format_has_value_and_sources(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "render", str(DEFAULT), *DEFAULT_FLAGS, "--format", "json")
    assert code == 0
    items = json.loads(out)
    assert normalise([item["value"] for item in items]) == EXPECTED
    for item in items:
        assert set(item) == {"value", "sources"}
        assert isinstance(item["value"], str)
        assert item["sources"] and all(isinstance(s, str) and s for s in item["sources"])
    memory = items[[i["value"] for i in items].index("-m") + 1]
    assert "hypervisor.qemu.default_memory" in memory["sources"]


def test_virtiofsd_prints_daemon_argv(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "render", str(DEFAULT), *DEFAULT_FLAGS, "--virtiofsd")
    assert code == 0
    assert out.splitlines() == EXPECTED_DAEMON


def test_virtiofsd_subprocess_nydus() -> None:
    proc = run_cli("render", str(NAMED / "nydus_default.toml"),
                   *shlex.split((NAMED / "nydus_default.flags").read_text()), "--virtiofsd")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == (NAMED / "nydus_default.nydusd.argv").read_text().splitlines()


def test_virtiofsd_without_daemon_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    toml = NAMED / "virtio_9p.toml"
    code, out, err = run_main(capsys, "render", str(toml), "--virtiofsd")
    assert_one_line_error(code, out, err, "--virtiofsd")


def test_explain_one_line_per_argument(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "explain", str(DEFAULT), *DEFAULT_FLAGS)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(EXPECTED)
    assert all("  <- " in line for line in lines)
    for line, value in zip(lines, EXPECTED):
        if "<random>" not in value and "<uuid>" not in value:
            assert line.startswith(value)
    assert any(line.startswith("/usr/bin/qemu-system-x86_64") and "hypervisor.qemu.path" in line for line in lines)


def test_explain_subprocess_daemon() -> None:
    proc = run_cli("explain", str(DEFAULT), *DEFAULT_FLAGS, "--virtiofsd")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(EXPECTED_DAEMON)
    assert all("<-" in line for line in lines)


def test_render_with_missing_kernel_and_image(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    kernel, image = tmp_path / "absent" / "vmlinux", tmp_path / "absent" / "image.img"
    config = tmp_path / "c.toml"
    config.write_text(base_toml(kernel=json.dumps(str(kernel)), image=json.dumps(str(image))))
    code, out, err = run_main(capsys, "render", str(config), *DEFAULT_FLAGS, "--image-size", "4096")
    assert (code, err) == (0, "")
    argv = out.splitlines()
    assert argv[argv.index("-kernel") + 1] == str(kernel)
    assert f"mem-path={image},size=4096" in out


def test_existing_image_size_is_read(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    image = tmp_path / "image.img"
    image.write_bytes(b"\0" * 12345)
    config = tmp_path / "c.toml"
    config.write_text(base_toml(image=json.dumps(str(image))))
    code, out, _ = run_main(capsys, "render", str(config), *DEFAULT_FLAGS)
    assert code == 0
    assert f"mem-path={image},size=12345" in out


def test_image_size_flag_wins_over_the_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``--image-size`` is the fact: an existing image is measured only when it is not given."""
    image = tmp_path / "image.img"
    image.write_bytes(b"\0" * 12345)
    config = tmp_path / "c.toml"
    config.write_text(base_toml(image=json.dumps(str(image))))
    code, out, _ = run_main(capsys, "render", str(config), *DEFAULT_FLAGS, "--image-size", "4096")
    assert code == 0
    assert f"mem-path={image},size=4096" in out


def test_existing_initrd_is_measured(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """An existing initrd's real size decides Kata's "smaller than image" check (``--initrd-size`` otherwise)."""
    initrd = tmp_path / "initrd.img"
    with open(initrd, "wb") as fh:
        fh.truncate(4096 * 1024 * 1024)  # sparse: 4 GiB, larger than default_memory
    config = tmp_path / "c.toml"
    config.write_text(base_toml(image='""', initrd=json.dumps(str(initrd))))
    code, out, err = run_main(capsys, "render", str(config), *DEFAULT_FLAGS)
    assert_one_line_error(code, out, err, "hypervisor.qemu.initrd", "smaller than image")
    code, out, err = run_main(capsys, "render", str(config), *DEFAULT_FLAGS, "--initrd-size", "4096")
    assert (code, err) == (0, "")
    assert f"-initrd\n{initrd}\n" in out


def test_broken_pipe_is_quiet() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "katatest", "render", str(DEFAULT), *DEFAULT_FLAGS],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (0, 120)
    assert "Traceback" not in err


# ---------------------------------------------------------------------------------------------------------
# Invalid configs: exit 2, one line on stderr naming the key or file


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"default_memory": '"2048"'}, "hypervisor.qemu.default_memory"),
        ({"default_vcpus": "1.5"}, "hypervisor.qemu.default_vcpus"),
        ({"enable_debug": '"yes"'}, "hypervisor.qemu.enable_debug"),
        ({"pflashes": "[1, 2]"}, "hypervisor.qemu.pflashes"),
        ({"memory_slots": "-1"}, "hypervisor.qemu.memory_slots"),
        ({"default_maxmemory": "-1"}, "hypervisor.qemu.default_maxmemory"),
        ({"machine_type": '"pc"'}, "hypervisor.qemu.machine_type"),
        ({"machine_type": '"pc\\nnext line"'}, "hypervisor.qemu.machine_type"),
        ({"shared_fs": '"none"'}, "hypervisor.qemu.shared_fs"),
        ({"block_device_driver": '"ide"'}, "hypervisor.qemu.block_device_driver"),
        ({"path": '"/usr/bin/qemu\\u0000x"'}, "hypervisor.qemu.path"),
        ({"default_vcpus": "8", "default_maxvcpus": "4"}, "default_maxvcpus"),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, dict) else None,
)
def test_invalid_config_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, changes: dict[str, str],
                                    key: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(base_toml(**changes))
    code, out, err = run_main(capsys, "render", str(config), *DEFAULT_FLAGS)
    assert_one_line_error(code, out, err, key)


def test_invalid_config_subprocess_no_traceback(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(base_toml(machine_type='"pc"'))
    proc = run_cli("explain", str(config), *DEFAULT_FLAGS)
    assert_one_line_error(proc.returncode, proc.stdout, proc.stderr, str(config), "machine_type")


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "no such dir" / "config.toml"
    code, out, err = run_main(capsys, "render", str(missing))
    assert_one_line_error(code, out, err, str(missing))


def test_directory_instead_of_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run_main(capsys, "render", str(tmp_path))
    assert_one_line_error(code, out, err, str(tmp_path))


@pytest.mark.parametrize("text", [b"[hypervisor.qemu\n", b"a = \n", b"x = 1\nx = 2\n", b"\xff\xfe[x]\n",
                                  b"[hypervisor.qemu]\npath = \"\\ud800\"\n"])
def test_unparsable_toml(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: bytes) -> None:
    config = tmp_path / "garbage.toml"
    config.write_bytes(text)
    code, out, err = run_main(capsys, "render", str(config))
    assert_one_line_error(code, out, err, str(config))


def test_no_hypervisor_section(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "empty.toml"
    config.write_text("[runtime]\n")
    code, out, err = run_main(capsys, "render", str(config))
    assert_one_line_error(code, out, err, "hypervisor")


@pytest.mark.parametrize("name", ["shared_fs_none", "confidential_guest", "arm64_iommu"])
def test_err_vector_subprocess(name: str) -> None:
    flags = shlex.split((NAMED / f"{name}.flags").read_text())
    proc = run_cli("render", str(NAMED / f"{name}.toml"), *flags)
    assert_one_line_error(proc.returncode, proc.stdout, proc.stderr, f"{name}.toml")


# ---------------------------------------------------------------------------------------------------------
# Bad flags: exit 2, one line


@pytest.mark.parametrize(
    ("flags", "mention"),
    [
        (["--arch", "sparc"], "--arch"),
        (["--host-cpus", "0"], "--host-cpus"),
        (["--host-cpus", "x"], "--host-cpus"),
        (["--host-mem-mib", "-1"], "--host-mem-mib"),
        (["--vsock-cid", "-3"], "--vsock-cid"),
        (["--id", "a/b"], "--id"),
        (["--id", ""], "--id"),
        (["--guest-protection", "snp"], "--guest-protection"),
        (["--format", "yaml"], "--format"),
        (["--no-such-flag"], "--no-such-flag"),
        (["--host-mem-mib", "1" + "0" * 23], "--host-mem-mib"),
        (["--host-mem-mib", "1e23"], "--host-mem-mib"),
        (["--host-mem-mib", str(2**32 + 1)], "--host-mem-mib"),
        (["--image-size", str(2**70)], "--image-size"),
        (["--initrd-size", str(2**50)], "--initrd-size"),
        (["--host-cpus", "-2"], "--host-cpus"),
        (["--host-cpus", "100000"], "--host-cpus"),
        (["--vsock-cid", str(2**32)], "--vsock-cid"),
        (["--vsock-cid", "99999999999999999999"], "--vsock-cid"),
        (["--sev-cbitpos", "64"], "--sev-cbitpos"),
        (["--workload-mem-mib", str(2**64)], "--workload-mem-mib"),
    ],
)
def test_bad_flag_is_one_line(capsys: pytest.CaptureFixture[str], flags: list[str], mention: str) -> None:
    code, out, err = run_main(capsys, "render", str(DEFAULT), *flags)
    assert_one_line_error(code, out, err, mention)


def test_bad_flag_subprocess() -> None:
    proc = run_cli("render", str(DEFAULT), "--arch", "sparc")
    assert_one_line_error(proc.returncode, proc.stdout, proc.stderr, "sparc")


def test_no_command_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys)
    assert_one_line_error(code, out, err)


def test_socket_path_too_long_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "render", str(DEFAULT), *DEFAULT_FLAGS, "--id", "a" * 120)
    assert_one_line_error(code, out, err, "socket path too long")


# ---------------------------------------------------------------------------------------------------------
# Files that are not configs: one line naming the file, before anything is parsed (issue 9, item 7)


def _limited_memory() -> None:
    """Child side of run_capped: 2 GiB of address space, so a regression cannot exhaust the machine's RAM."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def run_capped(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m katatest ARGS`` with a memory cap and a short timeout (a FIFO must not hang the open)."""
    return subprocess.run([sys.executable, "-m", "katatest", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=30, preexec_fn=_limited_memory)


def test_dev_zero_is_one_line() -> None:
    proc = run_capped("render", "/dev/zero")
    assert_one_line_error(proc.returncode, proc.stdout, proc.stderr, "/dev/zero", "character device")


def test_fifo_is_one_line_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    proc = run_capped("render", str(fifo))  # nobody ever writes: a blocking open would wait forever
    assert_one_line_error(proc.returncode, proc.stdout, proc.stderr, str(fifo), "FIFO")


@pytest.mark.parametrize("size", [MAX_CONFIG_BYTES + 1, 113 * 1024 * 1024])
def test_huge_file_is_refused_unread(tmp_path: Path, size: int) -> None:
    config = tmp_path / "huge.toml"
    config.write_text(DEFAULT.read_text())
    with open(config, "r+b") as fh:
        fh.truncate(size)  # sparse: the tail is NUL bytes, never read
    proc = run_capped("render", str(config), *DEFAULT_FLAGS)
    assert_one_line_error(proc.returncode, proc.stdout, proc.stderr, str(config), f"larger than {MAX_CONFIG_BYTES}")


def test_config_at_the_cap_is_read(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = DEFAULT.read_text()
    padding = MAX_CONFIG_BYTES - len(text.encode())
    config = tmp_path / "padded.toml"
    config.write_text("#" * (padding - 1) + "\n" + text)
    assert config.stat().st_size == MAX_CONFIG_BYTES
    code, out, err = run_main(capsys, "render", str(config), *DEFAULT_FLAGS)
    assert (code, err) == (0, "")
    assert normalise(out.splitlines()) == EXPECTED


def test_read_config_stops_at_cap_plus_one(tmp_path: Path) -> None:
    """A file that grows after fstat (st_size lies) is still cut off after cap + 1 bytes."""
    config = tmp_path / "c.toml"
    config.write_bytes(b"x" * 100)
    assert read_config(config, limit=100) == b"x" * 100
    with pytest.raises(ConfigError, match="larger than 99 bytes"):
        read_config(config, limit=99)


@pytest.mark.parametrize(("forced", "section"), [("fc", "firecracker"), ("clh", "clh"), ("acrn", "acrn")])
def test_forced_hypervisor_needs_its_section(capsys: pytest.CaptureFixture[str], forced: str, section: str) -> None:
    code, out, err = run_main(capsys, "render", str(DEFAULT), *DEFAULT_FLAGS, "--hypervisor", forced)
    assert_one_line_error(code, out, err, "--hypervisor", f"[hypervisor.{section}]")


def test_forced_hypervisor_matching_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "render", str(DEFAULT), *DEFAULT_FLAGS, "--hypervisor", "qemu")
    assert code == 0
    assert normalise(out.splitlines()) == EXPECTED


def test_unknown_host_arch_is_an_error(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """On a riscv64 host the reference facts still render; probing the host names the architecture."""
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    code, out, err = run_main(capsys, "render", str(DEFAULT), *DEFAULT_FLAGS)
    assert (code, err) == (0, "")
    assert normalise(out.splitlines()) == EXPECTED
    code, out, err = run_main(capsys, "render", str(DEFAULT), *DEFAULT_FLAGS, "--detect-host")
    assert_one_line_error(code, out, err, "riscv64")


# ---------------------------------------------------------------------------------------------------------
# Flags anywhere before --; the guest command is exactly what follows it (issue 9, item 2)


@pytest.fixture
def boot_args(monkeypatch: pytest.MonkeyPatch) -> list[argparse.Namespace]:
    """The parsed arguments ``katatest boot`` would act on (its handler records them instead of booting)."""
    seen: list[argparse.Namespace] = []

    def record(args: argparse.Namespace) -> int:
        seen.append(args)
        return 0

    monkeypatch.setattr(cli_boot, "cmd_boot", record)
    return seen


BOOT_CONFIG = str(REPO / "katatest" / "data" / "base" / "configuration-qemu-amd64.toml")


@pytest.mark.parametrize("argv", [
    ["boot", BOOT_CONFIG, "--host-cpus", "2", "--arch", "arm64", "--host-mem-mib", "4096", "--", "cat", "/x"],
    ["boot", "--host-cpus", "2", BOOT_CONFIG, "--arch", "arm64", "--host-mem-mib", "4096", "--", "cat", "/x"],
    ["boot", "--arch", "arm64", "--host-mem-mib", "4096", "--host-cpus", "2", BOOT_CONFIG, "--", "cat", "/x"],
])
def test_boot_flags_anywhere_before_dashdash(boot_args: list[argparse.Namespace], argv: list[str]) -> None:
    assert main(argv) == 0
    (args,) = boot_args
    assert (args.config, args.arch, args.host_cpus, args.host_mem_mib) == (BOOT_CONFIG, "arm64", 2, 4096)
    assert args.command_argv == ["cat", "/x"]
    facts = config_facts(args, load_toml(args.config), detect=False)
    assert (facts.arch, facts.host_cpus, facts.host_mem_mib) == ("arm64", 2, 4096)


def test_boot_guest_command_keeps_its_own_flags(boot_args: list[argparse.Namespace]) -> None:
    """After the first ``--`` nothing is parsed: the guest command may carry katatest's flag names and ``--``."""
    assert main(["boot", BOOT_CONFIG, "--timeout", "5", "--", "ls", "--arch", "-l", "--", "--timeout"]) == 0
    (args,) = boot_args
    assert (args.timeout, args.arch) == (5.0, None)
    assert args.command_argv == ["ls", "--arch", "-l", "--", "--timeout"]


@pytest.mark.parametrize("tail", [[], ["--"]])
def test_boot_without_command_uses_the_default(boot_args: list[argparse.Namespace], tail: list[str]) -> None:
    assert main(["boot", BOOT_CONFIG, "--host-cpus", "2", *tail]) == 0
    assert not boot_args[0].command_argv
    assert cli_boot.DEFAULT_COMMAND == ("cat", "/proc/cmdline")


def test_boot_command_without_dashdash_is_one_line(capsys: pytest.CaptureFixture[str],
                                                   boot_args: list[argparse.Namespace]) -> None:
    code, out, err = run_main(capsys, "boot", BOOT_CONFIG, "cat", "/proc/cmdline")
    assert_one_line_error(code, out, err, "unrecognized arguments: cat /proc/cmdline", "after --")
    assert boot_args == []


@pytest.mark.parametrize("command", ["render", "explain", "lint"])
def test_render_commands_take_flags_anywhere(capsys: pytest.CaptureFixture[str], command: str) -> None:
    flags = ["--host-cpus", "8", "--host-mem-mib", "16384", "--arch", "amd64"]
    outputs = {run_main(capsys, command, *flags[:2], str(DEFAULT), *flags[2:]),
               run_main(capsys, command, str(DEFAULT), *flags), run_main(capsys, command, *flags, str(DEFAULT))}
    if command == "render":
        outputs = {(code, "\n".join(normalise(out.splitlines())), err) for code, out, err in outputs}
    elif command == "explain":
        outputs = {(code, len(out.splitlines()), err) for code, out, err in outputs}
    assert len(outputs) == 1, outputs
    assert next(iter(outputs))[0] in (0, 1)


def test_command_table_matches_the_registrars() -> None:
    """``katatest --help`` lists the static table; each registrar adds exactly its command with that help."""
    for command in COMMANDS:
        sub = argparse.ArgumentParser().add_subparsers()
        command.register()(sub)
        (action,) = sub._choices_actions
        assert (action.dest, action.help) == (command.name, command.help)
