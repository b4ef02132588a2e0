"""Every hot-plug vector of Kata 3.0.0, 3.30.0 and 4.1.0: ``katatest hotplug NAME.toml $(cat NAME.flags)
--kata-version R --ops NAME.ops --replies NAME.replies`` prints exactly ``NAME.qmp``, byte for byte (compared as
strings: Python's ``True == 1`` must not hide ``"on"`` vs ``true``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from katatest.cli import main
from katatest.conformance.vectors import HOTPLUG_SETS, discover
from katatest.generate.qemu.hotplug_ops import qmp_line
from katatest.generate.qemu.hotplug_peers import ModelQemu
from tests.conformance_files import DATA

ROOT = Path(__file__).resolve().parents[1]
CASES = [pytest.param(v, r, id=v.id) for suite, r in HOTPLUG_SETS.items() for v in discover(DATA, suite)]


def test_every_set_is_there() -> None:
    counts = {suite: len(discover(DATA, suite)) for suite in HOTPLUG_SETS}
    assert counts == {"kata-3.0.0-hotplug": 84, "kata-3.30.0-hotplug": 88, "kata-4.1.0-hotplug": 90}


@pytest.mark.parametrize(("vector", "release"), CASES)
def test_hotplug_vector(vector, release: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["hotplug", str(vector.toml), *vector.flags, "--kata-version", release, "--ops", str(vector.file(".ops")),
            "--replies", str(vector.file(".replies"))]
    assert main(argv) == 0
    out = capsys.readouterr().out
    want = vector.file(".qmp").read_text()
    if out != want:
        got, expected = out.splitlines(), want.splitlines()
        first = next(i for i in range(max(len(got), len(expected)))
                     if i >= len(got) or i >= len(expected) or got[i] != expected[i])
        pytest.fail(f"line {first}: expected {expected[first] if first < len(expected) else 'EOF'}\n"
                    f"got {got[first] if first < len(got) else 'EOF'}")
    # the result of every op has its section (what Kata returned is recorded per section, as the commands)
    headers = [line for line in want.splitlines() if line.startswith("# ")]
    results = [line for line in vector.file(".result").read_text().splitlines() if line.startswith("# ")]
    assert headers == results[:len(headers)]


def test_three_releases_spell_values_differently(capsys: pytest.CaptureFixture[str]) -> None:
    """3.0.0 sends "on" and "1" where 3.30+ send true and 1; compared as text, never as parsed objects."""
    lines = {}
    for suite, release in HOTPLUG_SETS.items():
        vector = next(v for v in discover(DATA, suite) if v.name == "blk_aio_threads")
        main(["hotplug", str(vector.toml), *vector.flags, "--kata-version", release, "--ops", str(vector.file(".ops")),
              "--replies", str(vector.file(".replies"))])
        lines[release] = next(line for line in capsys.readouterr().out.splitlines() if '"device_add"' in line)
    assert '"share-rw":"on"' in lines["3.0.0"] and '"num-queues":"1"' in lines["3.0.0"]
    assert '"share-rw":true' in lines["4.1.0"] and '"num-queues":1' in lines["4.1.0"]
    assert json.loads(lines["3.0.0"]) != json.loads(lines["4.1.0"])


def test_json_format_carries_provenance(capsys: pytest.CaptureFixture[str]) -> None:
    vector = next(v for v in discover(DATA, "kata-4.1.0-hotplug") if v.name == "mixed")
    assert main(["hotplug", str(vector.toml), *vector.flags, "--kata-version", "4.1.0", "--ops",
                 str(vector.file(".ops")), "--replies", str(vector.file(".replies")), "--format", "json"]) == 0
    sections = json.loads(capsys.readouterr().out)
    cpu = next(c for s in sections for c in s["commands"] if c["qmp"].get("arguments", {}).get("driver", "")
               .startswith("host-"))
    assert "reply: query-hotpluggable-cpus (the next free slot)" in cpu["sources"]
    assert "release.qemu.qmp_typed_values" in cpu["sources"] and cpu["sources"][0].startswith("op: cpu")


@pytest.mark.parametrize(("ops", "message"), [("cpu x\n", "expected cpu N"), ("jump 3\n", "unknown op 'jump'"),
                                             ("block add a a.img 12\n", "expected file=BYTES or dev")])
def test_bad_ops_are_one_line(tmp_path: Path, ops: str, message: str) -> None:
    vector = next(v for v in discover(DATA, "kata-4.1.0-hotplug") if v.name == "cpu_add")
    script = tmp_path / "bad.ops"
    script.write_text(ops)
    run = subprocess.run([sys.executable, "-m", "katatest", "hotplug", str(vector.toml), *vector.flags,
                          "--kata-version", "4.1.0", "--ops", str(script)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and len(run.stderr.splitlines()) == 1 and message in run.stderr, run.stderr


def test_the_model_of_qemu_answers_as_qemu_does(tmp_path: Path) -> None:
    """katatest's own model of QEMU's replies (used without --replies) against Debian's QEMU 7.2 started with
    the same -smp: the same hot-pluggable CPU slots, in the same order."""
    from katatest.launch.qmp import Qmp

    sock = tmp_path / "qmp.sock"
    argv = ["/usr/bin/qemu-system-x86_64", "-machine", "q35,accel=tcg", "-smp",
            "1,cores=1,threads=1,sockets=4,maxcpus=4", "-nodefaults", "-display", "none", "-S", "-qmp",
            f"unix:{sock},server=on,wait=off"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.05"], check=False)
        qmp = Qmp(str(sock))
        real = qmp.execute("query-hotpluggable-cpus")
        qmp.close()
    finally:
        proc.kill()
        proc.wait()
    model = ModelQemu(argv, "amd64").answer(qmp_line("query-hotpluggable-cpus"))["return"]
    strip = [{k: v for k, v in e.items() if k != "qom-path"} | {"used": "qom-path" in e} for e in real]
    mine = [{k: v for k, v in e.items() if k != "qom-path"} | {"used": "qom-path" in e} for e in model]
    for entry in strip + mine:
        entry["props"] = {k: v for k, v in entry["props"].items() if k in ("socket-id", "core-id", "thread-id")}
        entry["type"] = re.sub(r"^.*-x86_64-cpu$", "x86_64-cpu", entry["type"])
    assert mine == strip


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.mkdir(), "cannot read op script: a directory, not a regular file"),
    (lambda p: p.write_bytes(b"cpu \xff\n"), "cannot read op script"),
    (lambda p: p.write_bytes(b"cpu 1\n" * 200_000), "cannot read op script: larger than"),
    (lambda p: None, "cannot read op script: No such file"),
])
def test_bad_op_files_are_one_line(tmp_path: Path, make, message: str) -> None:
    vector = next(v for v in discover(DATA, "kata-4.1.0-hotplug") if v.name == "cpu_add")
    script = tmp_path / "ops"
    make(script)
    run = subprocess.run([sys.executable, "-m", "katatest", "hotplug", str(vector.toml), *vector.flags,
                          "--kata-version", "4.1.0", "--ops", str(script)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and len(run.stderr.splitlines()) == 1 and message in run.stderr, run.stderr
