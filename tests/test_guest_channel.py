"""The guest command channel: protocol unit tests, and real boots (TCG) of the built guest assets."""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from katatest.assets.cache import GuestAssets, asset_status, ensure_assets
from katatest.guest import GuestChannel, GuestChannelError, GuestPanic, guest_host
from katatest.guest.protocol import MAX_STDIN, CommandResult, Reply, md5, request_frame
from tests.faults.console_proxy import FaultRates, LossyConsole

DAX_ROOT = "root=/dev/pmem0p1 rootflags=dax,data=ordered,errors=remount-ro ro rootfstype=ext4"
BLK_ROOT = "root=/dev/vda1 rootflags=data=ordered,errors=remount-ro ro rootfstype=ext4"
AARCH64_FIRMWARE = Path("/usr/share/qemu-efi-aarch64/QEMU_EFI.fd")
pytestmark = pytest.mark.usefixtures("isolated_env")  # QEMU sockets under a TMPDIR of its own


CHUNK = 24576  # the guest init's chunk size


def _b64_lines(data: bytes) -> bytes:
    text = base64.b64encode(data)
    return b"\n".join(text[i:i + 76] for i in range(0, len(text), 76)) + b"\n"


def _chunks(rid: str, out: bytes, err: bytes, status: int) -> list[bytes]:
    """The reply frames the guest init sends (its send_chunk), one per 24 KiB of stdout+stderr."""
    payload = out + err
    n = max(1, -(-len(payload) // CHUNK))
    frames = []
    for seq in range(n):
        part = payload[seq * CHUNK:(seq + 1) * CHUNK]
        fields = b"%s %d %d %d %d %d %d" % (rid.encode(), seq, n, status, len(out), len(err), len(part))
        frames.append(b"\nKTCHUNK %s %s\n" % (fields, md5(fields + b"\n" + part).encode())
                      + _b64_lines(part) + b"\nKTCEND %s %d\n" % (rid.encode(), seq))
    return frames


@pytest.mark.parametrize(("old", "new"), [(b" 10 5 0 ", b" 0 5 0 "), (b" 10 5 0 ", b" 11 5 0 "),
                                          (b"abc 0 1 10", b"abc 0 2 10"), (b" 10 5 0 ", b" 10 4 0 ")])
def test_reply_header_fields_are_checked(old: bytes, new: bytes):
    """A damaged status, chunk count or stdout/stderr split is a damaged chunk (asked for again), never a
    value: the checksum covers the header's fields."""
    frame = _chunks("abc", b"hello", b"", 10)[0]
    assert old in frame
    damaged = frame.replace(old, new, 1)
    reply = Reply("abc")
    assert _feed(reply, damaged) == (False, [0])
    assert reply.result() is None
    assert _feed(reply, frame) == (True, [])
    assert reply.result() == CommandResult(10, b"hello", b"")


def _feed(reply: Reply, *pieces: bytes) -> tuple[bool, list[int]]:
    buf = bytearray(b"".join(pieces))
    return reply.feed(buf)


def test_reply_is_binary_safe_and_ignores_kernel_lines():
    out = bytes(range(256)) * 3
    frame = _chunks("abc", out, b"warn\n", 3)[0]
    noisy = frame.replace(b"\nKTCEND", b"\n[   12.345] virtio_net: some message\nKTCEND")
    reply = Reply("abc")
    assert _feed(reply, b"junk\nKTACC abc\n", noisy) == (True, [])
    assert reply.result() == CommandResult(3, out, b"warn\n")


def test_a_damaged_copy_asks_for_no_second_copy_while_one_is_on_the_way(tmp_path):
    """The channel has asked for chunk 1; a damaged copy of another chunk arrives meanwhile: it asks for nothing
    more (one copy on the way at a time: a console that drops what its socket cannot take overruns with several),
    and the reply still comes back exact once the guest sends what was asked for."""
    out = bytes(range(256)) * 250  # 64000 bytes: 3 chunks
    needs: list[bytes] = []
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "console.sock"))
    listener.listen(1)

    def guest() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\n" not in data.lstrip(b"\n"):
                data += conn.recv(4096)
            rid = data.split(b"KTREQ ", 1)[1].split()[0].decode()
            frames = _chunks(rid, out, b"", 0)
            conn.sendall(b"\nKTACC %s\n" % rid.encode() + frames[0])
            damaged_2 = frames[2].replace(b"KTCHUNK %s 2 3 " % rid.encode(), b"KTCHUNK %s 2 4 " % rid.encode())
            for seq in (1, 2):
                line = b""
                while not line.startswith(b"KTNEED"):
                    line = b""
                    while not line.endswith(b"\n"):
                        line += conn.recv(1)
                    line = line.strip()
                needs.append(line)
                if seq == 1:  # a damaged stray copy first; whatever it asks for comes in the next 0.3 s
                    conn.sendall(damaged_2)
                    conn.settimeout(0.3)
                    with contextlib.suppress(TimeoutError):
                        needs.append(conn.recv(4096).strip())
                    conn.settimeout(None)
                conn.sendall(frames[seq])

    thread = threading.Thread(target=guest, daemon=True)
    thread.start()
    with GuestChannel(tmp_path / "console.sock", tmp_path / "console.log", timeout=20) as channel:
        channel.resend_first = channel.resend_max = 10.0  # no resend for silence in this test
        assert channel.run("cat big", timeout=10) == CommandResult(0, out, b"")
    thread.join(5)
    listener.close()
    assert [n.split()[2] for n in needs] == [b"1", b"2"], needs  # no KTNEED 1 again for the damaged chunk 2


def test_reply_of_several_chunks_needs_each_and_ignores_other_ids():
    out, err = bytes(range(256)) * 200, b"e" * 30000  # 81200 bytes: 4 chunks
    frames = _chunks("abc", out, err, 0)
    assert len(frames) == 4
    reply = Reply("abc")
    _feed(reply, _chunks("old", b"x", b"", 0)[0], frames[0])
    assert reply.result() is None and reply.missing() == 1
    _feed(reply, frames[2], frames[1])
    assert reply.missing() == 3 and reply.result() is None
    _feed(reply, frames[3])
    assert reply.result() == CommandResult(0, out, err)


def test_reply_reports_a_damaged_chunk_and_takes_the_resent_copy():
    frame = _chunks("abc", b"hello world", b"", 0)[0]
    damaged = frame.replace(b"aGVsbG8", b"aGVsbG9")
    reply = Reply("abc")
    assert _feed(reply, damaged) == (False, [0])
    assert reply.result() is None and reply.corrupt == {0: 1}
    assert _feed(reply, frame) == (True, [])
    assert reply.result().stdout == b"hello world"


def test_reply_lost_header_or_end_line():
    frame = _chunks("abc", b"payload", b"", 0)[0]
    headless = frame.split(b"\n", 2)[2]  # the KTCHUNK line is gone
    reply = Reply("abc")
    assert _feed(reply, headless) == (False, [0])
    endless = frame.rsplit(b"KTCEND", 1)[0]  # the KTCEND line is gone: its resent copy still parses
    assert _feed(reply, endless, frame) == (True, [])
    assert reply.result().stdout == b"payload"


def test_reply_duplicates_are_harmless_and_counts_must_add_up():
    frame = _chunks("abc", b"x" * 10, b"", 0)[0]
    reply = Reply("abc")
    assert _feed(reply, frame, frame, frame) == (True, [])
    assert reply.result().stdout == b"x" * 10
    lying = Reply("abd")  # an intact frame whose counts do not add up: a guest bug, not line damage
    fields = b"abd 0 1 0 9 0 5"
    frame = (b"\nKTCHUNK %s %s\n" % (fields, md5(fields + b"\n12345").encode()) + _b64_lines(b"12345")
             + b"\nKTCEND abd 0\n")
    _feed(lying, frame)
    with pytest.raises(ValueError, match="announced"):
        lying.result()


def test_request_line_is_checksummed_before_its_stdin_count_is_trusted():
    request = request_frame("id1", ["echo", "a b", "$x"], b"\n\x00", 5)
    line, block = request[1:].split(b"\n", 1)
    fields = line.split(b" ")
    assert fields[:3] == [b"KTREQ", b"id1", b"5"] and request.count(b"\n") == 2
    assert base64.b64decode(fields[3]) == b"echo 'a b' '$x'"
    assert int(fields[4]) == len(block) and base64.b64decode(block) == b"\n\x00"
    assert fields[5].decode() == md5(block)
    assert fields[6].decode() == md5(b" ".join(fields[1:6]) + b"\n")  # what the guest recomputes
    with pytest.raises(ValueError, match="exceeds"):
        request_frame("id2", "cat", bytes(MAX_STDIN + 1), 5)


# -- real boots ---------------------------------------------------------------------------------------

def _qemu_argv(arch: str, assets: GuestAssets, shape: str, sock: Path, extra: str = "",
               share: Path | None = None, extra_args: Sequence[str] = ()) -> list[str]:
    """A minimal command line of our own, with Kata's console wiring (virtconsole or legacy serial)."""
    if arch == "amd64":
        argv = ["qemu-system-x86_64", "-machine", "q35,accel=tcg,nvdimm=on", "-cpu", "max"]
    else:
        argv = ["qemu-system-aarch64", "-machine", "virt,accel=tcg,gic-version=max,nvdimm=on", "-cpu", "max"]
        if shape == "nvdimm":
            argv += ["-bios", str(AARCH64_FIRMWARE)]
    argv += ["-m", "512M,slots=2,maxmem=2G", "-smp", "1", "-nodefaults", "-no-user-config", "-nographic",
             "-vga", "none", "--no-reboot", "-kernel", str(assets.kernel)]
    chardev = ["-chardev", f"socket,id=charconsole0,path={sock},server=on,wait=off"]
    if shape == "serial":
        argv += ["-serial", "chardev:charconsole0", *chardev]
        consoles = "console=ttyS0"  # what Kata puts on the cmdline for legacy serial, arm64 included
    else:
        argv += ["-device", "virtio-serial-pci,id=serial0",
                 "-device", "virtconsole,chardev=charconsole0,id=console0", *chardev]
        consoles = "console=hvc0 console=hvc1"
    if shape == "nvdimm":
        argv += ["-device", "nvdimm,id=nv0,memdev=mem0,unarmed=on", "-object",
                 f"memory-backend-file,id=mem0,mem-path={assets.image},size={assets.image_size},readonly=on"]
        root = DAX_ROOT
    elif shape == "blk":
        argv += ["-drive", f"file={assets.image},format=raw,if=none,id=disk0,readonly=on",
                 "-device", "virtio-blk-pci,drive=disk0"]
        root = BLK_ROOT
    else:
        argv += ["-initrd", str(assets.initrd)]
        root = ""
    if share is not None:  # Kata's virtio-9p wiring (virtio_9p.argv)
        argv += ["-device", "virtio-9p-pci,disable-modern=false,fsdev=extra-9p-kataShared,mount_tag=kataShared",
                 "-fsdev", f"local,id=extra-9p-kataShared,path={share},security_model=none,multidevs=remap"]
    argv += list(extra_args)
    return argv + ["-append", f"{root} {consoles} quiet panic=1 katatest.msize9p=512000 {extra}".strip()]


@contextlib.contextmanager
def booted(arch: str, shape: str, artifacts: Path, extra: str = "", share: Path | None = None,
           extra_args: Sequence[str] = (), lossy: LossyConsole | None = None) -> Iterator[GuestChannel]:
    """Boot QEMU by hand and yield a ready channel; always kills QEMU and removes the socket dir.

    With ``lossy`` (its ``front``/``back`` are set here), the channel talks through that fault proxy."""
    assets = ensure_assets(arch, progress=lambda _m: None)
    rundir = Path(tempfile.mkdtemp(prefix="kt-boot-"))
    sock = rundir / "console.sock"
    argv = _qemu_argv(arch, assets, shape, sock, extra, share, extra_args)
    (artifacts / "qemu.argv").write_text("\n".join(argv) + "\n")
    stderr = open(artifacts / "qemu.stderr", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
    with contextlib.ExitStack() as stack:
        if lossy is not None:
            lossy.front, lossy.back = rundir / "lossy.sock", sock
            stack.enter_context(lossy)
        channel = GuestChannel(lossy.front if lossy else sock, artifacts / "console.log", timeout=90,
                               is_alive=lambda: proc.poll() is None)
        try:
            channel.wait_ready()
            yield channel
        finally:
            channel.close()
            proc.kill()
            proc.wait()
            stderr.close()
            shutil.rmtree(rundir, ignore_errors=True)


def _require(arch: str) -> None:
    binary = {"amd64": "qemu-system-x86_64", "arm64": "qemu-system-aarch64"}[arch]
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} not installed")
    kernel = next(s for s in asset_status(arch) if s.name == "kernel")
    if kernel.state not in ("built", "override"):
        pytest.skip(f"no {arch} guest kernel: run `katatest assets build --arch {arch}`")
    if arch == "arm64" and not AARCH64_FIRMWARE.is_file():
        pytest.skip("qemu-efi-aarch64 not installed")


ARCHES = ["amd64", "arm64"]


def root_block_device(host) -> str:
    """The block device behind / (the kernel shows it as /dev/root in /proc/mounts)."""
    devnum = host.check_output("awk '$5 == \"/\" {print $3}' /proc/self/mountinfo")
    return host.check_output(f"grep -l '^{devnum}$' /sys/class/block/*/dev").split("/")[-2]


@pytest.mark.boot
@pytest.mark.parametrize("arch", ARCHES)
def test_boot_nvdimm_dax_root(arch, tmp_path):
    _require(arch)
    with booted(arch, "nvdimm", tmp_path) as channel:
        host = guest_host(channel)
        assert channel.console == "hvc0"
        assert "rootflags=dax,data=ordered" in host.file("/proc/cmdline").content_string
        root = host.mount_point("/")
        assert root.filesystem == "ext4" and root_block_device(host) == "pmem0p1"
        assert "dax=always" in root.options and "ro" in root.options
        assert host.run("touch /x").rc != 0  # read-only root
        assert host.check_output("echo hi; echo oops >&2") == "hi"
        # binary-safe both ways, with exit status and stderr separate
        payload = bytes(range(256)) * 8
        result = channel.run("cat; echo err >&2; exit 7", stdin=payload)
        assert (result.exit_status, result.stdout, result.stderr) == (7, payload, b"err\n")


@pytest.mark.boot
@pytest.mark.parametrize("arch", ARCHES)
def test_boot_initrd(arch, tmp_path):
    _require(arch)
    with booted(arch, "initrd", tmp_path) as channel:
        host = guest_host(channel)
        assert "katatest.msize9p=512000" in host.file("/proc/cmdline").content_string
        assert host.file("/run/katatest/console").content_string.strip() == "hvc0"
        assert host.file("/run/katatest/shared-fs").content_string.strip() == "none"  # no share attached
        assert host.mount_point("/run").filesystem == "tmpfs"
        assert host.file("/bin/sh").is_symlink
        # several flow-controlled chunks on both streams
        big = channel.run("head -c 60000 /dev/zero; head -c 30000 /dev/zero | tr '\\0' x >&2")
        assert big.stdout == bytes(60000) and big.stderr == b"x" * 30000


@pytest.mark.boot
@pytest.mark.parametrize("arch", ARCHES)
def test_boot_legacy_serial_console(arch, tmp_path):
    """Kata's legacy serial shape: console=ttyS0 (arm64's PL011 is ttyAMA0, which the init falls back to)."""
    _require(arch)
    with booted(arch, "serial", tmp_path) as channel:
        assert channel.console == {"amd64": "ttyS0", "arm64": "ttyAMA0"}[arch]
        assert channel.check_output("uname -m") == {"amd64": "x86_64", "arm64": "aarch64"}[arch]


@pytest.mark.boot
def test_boot_virtio_blk_root(tmp_path):
    _require("amd64")
    with booted("amd64", "blk", tmp_path) as channel:
        host = guest_host(channel)
        assert root_block_device(host) == "vda1" and "dax" not in host.mount_point("/").options


@pytest.mark.boot
def test_boot_9p_share_mounted_like_kata_agent(tmp_path):
    _require("amd64")
    share = tmp_path / "share"
    share.mkdir()
    (share / "from-host").write_bytes(b"hello guest\n")
    with booted("amd64", "initrd", tmp_path, share=share) as channel:
        host = guest_host(channel)
        assert host.file("/run/katatest/shared-fs").content_string.strip() == "9p"
        mount = host.mount_point("/run/kata-containers/shared/containers")
        assert mount.filesystem == "9p" and mount.device == "kataShared"
        assert {"trans=virtio", "nodev", "mmap", "msize=512000"} <= set(mount.options), mount.options
        assert host.file("/run/kata-containers/shared/containers/from-host").content_string == "hello guest\n"
        channel.check_output("echo back > /run/kata-containers/shared/containers/from-guest")
    assert (share / "from-guest").read_text() == "back\n"


VIRTIOFSD = Path("/usr/lib/qemu/virtiofsd")


@pytest.mark.boot
@pytest.mark.skipif(not VIRTIOFSD.is_file(), reason="virtiofsd (qemu-system-common) not installed")
def test_boot_virtio_fs_share_mounted_like_kata_agent(tmp_path):
    _require("amd64")
    share = tmp_path / "share"
    share.mkdir()
    (share / "from-host").write_bytes(b"over virtio-fs\n")
    rundir = Path(tempfile.mkdtemp(prefix="kt-vfs-"))
    vfs_sock = rundir / "vhost-fs.sock"
    # Kata's virtiofsd options (default.virtiofsd.argv), with a socket path instead of an inherited fd.
    daemon = subprocess.Popen([str(VIRTIOFSD), f"--socket-path={vfs_sock}", "-o", "cache=auto", "-o",
                               "no_posix_lock", "-o", f"source={share}", "-f", "--thread-pool-size=1",
                               "-o", "announce_submounts"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if vfs_sock.exists():
                break
            time.sleep(0.05)
        extra_args = ["-object", "memory-backend-file,id=dimm1,size=512M,mem-path=/dev/shm,share=on",
                      "-numa", "node,memdev=dimm1", "-chardev", f"socket,id=char-vfs,path={vfs_sock}",
                      "-device", "vhost-user-fs-pci,chardev=char-vfs,tag=kataShared"]
        with booted("amd64", "initrd", tmp_path, extra_args=extra_args) as channel:
            host = guest_host(channel)
            assert host.file("/run/katatest/shared-fs").content_string.strip() == "virtiofs"
            mount = host.mount_point("/run/kata-containers/shared/containers")
            assert mount.filesystem == "virtiofs" and mount.device == "kataShared"
            assert host.file("/run/kata-containers/shared/containers/from-host").content_string == \
                "over virtio-fs\n"
    finally:
        daemon.kill()
        daemon.wait()
        shutil.rmtree(rundir, ignore_errors=True)


@pytest.mark.boot
def test_vm_exit_is_reported(tmp_path):
    _require("amd64")
    with pytest.raises(GuestChannelError, match="VM gone|VM exited"), booted("amd64", "initrd", tmp_path) as ch:
        ch.run("reboot -f", timeout=20)


@pytest.mark.boot
def test_kernel_panic_fails_fast_with_console_tail(tmp_path):
    _require("amd64")
    with pytest.raises(GuestPanic, match="Attempted to kill init"), booted(
            "amd64", "initrd", tmp_path, extra="rdinit=/bin/false"):
        pass


@pytest.mark.boot
@pytest.mark.parametrize("shape", ["initrd", "serial"], ids=["virtconsole", "legacy-serial"])
def test_channel_recovers_every_command_through_a_lossy_console(shape, tmp_path):
    """Bytes dropped, corrupted, duplicated and delayed in both directions (seeded): every command still
    comes back exact, and the faults really happened on both paths."""
    _require("amd64")
    # to_host at 1/500: the 40 short replies (~6 KB) then carry ~12 faults; at 1/800, 4 (fewer than the 5 asserted
    # below) came in 1 of ~40 runs (the fault draws depend on how the bytes are split into reads)
    # delays up to 10 ms: the 16550 hands its output over in reads of a few bytes, ~400 per run here, so 50 ms
    # delays added ~10 s of sleeping to the legacy-serial case and proved nothing more (all stay under the resend)
    lossy = LossyConsole(Path(), Path(), to_guest=FaultRates(per_byte=1 / 600, delay=0.1, max_delay_s=0.01),
                         to_host=FaultRates(per_byte=1 / 500, delay=0.1, max_delay_s=0.01), seed=7)
    with booted("amd64", shape, tmp_path, lossy=lossy) as channel:
        # resends sooner than the channel's defaults (1 s doubling to 4 s, for a loaded CI host): a round trip
        # takes ~45 ms here (~150 ms under load), so 0.15 s of silence mostly means a lost frame (an early resend is
        # harmless: the guest never runs an id twice), and the 41 commands need no minute
        channel.resend_first, channel.resend_max = 0.15, 0.6
        for i in range(40):  # small requests and replies: many of them get hit
            result = channel.run(f"echo out{i}; echo err{i} >&2; exit {i % 5}", timeout=20)
            assert (result.exit_status, result.stdout, result.stderr) == (i % 5, b"out%d\n" % i, b"err%d\n" % i)
        lossy.to_host.per_byte = lossy.to_guest.per_byte = 1 / 60000  # several chunks: rarer faults
        payload = bytes(range(256)) * 32
        result = channel.run("cat; head -c 70000 /dev/zero | tr '\\0' y", stdin=payload, timeout=60)
        assert result.stdout == payload + b"y" * 70000 and result.exit_status == 0
    counts = lossy.counts
    assert counts["to_guest"].total >= 5 and counts["to_host"].total >= 5, counts
    assert channel.stats.commands in (41, 42)  # 42 when the ready banner was lost and the console asked for
    stats = channel.stats
    assert stats.request_resends + stats.silent_pokes + stats.damaged_chunks >= 5, stats
    print(f"{shape}: faults {counts}; channel {channel.stats}")
