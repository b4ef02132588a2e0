"""devices: every generated -device/-object has its evidence in the guest, and no unexpected device exists."""

from __future__ import annotations

from collections import Counter

import pytest
from katatest.fixtures.guests import group_reads

from katatest.expect.checks import (
    MACHINE_PCI_DEVICES,
    VIRTIO_PCI_IDS,
    device_props,
    has_virtio_modern_capability,
    machine_type,
    options,
    pci_devices_from_argv,
    props,
)
from katatest.guest.reads import read_together

PCI_LIST = "for d in /sys/bus/pci/devices/*; do read v < $d/vendor; read i < $d/device; echo ${d##*/} $v $i; done"
PMEM, REGION_SIZE = "test -b /dev/pmem0", "cat /sys/bus/nd/devices/region0/size"
NO_PMEM = "test ! -e /dev/pmem0"
RNG = "cat /sys/class/misc/hw_random/rng_current"
HVC, VIRTIO_PORTS = "test -c /dev/hvc0", "ls /sys/class/virtio-ports 2>/dev/null | wc -l"
SCSI_HOSTS = "cat /sys/class/scsi_host/*/proc_name 2>/dev/null"
PVPANIC = "test -e /sys/bus/acpi/devices/QEMU0001:00"
DMAR, IOMMUS = "test -e /sys/firmware/acpi/tables/DMAR", "ls /sys/class/iommu 2>/dev/null"
VSOCK = "test -e /dev/vsock"
VIRTIO_MMIO = "ls /sys/bus/virtio/devices 2>/dev/null"
reads = group_reads((PCI_LIST, PMEM, REGION_SIZE, NO_PMEM, RNG, HVC, VIRTIO_PORTS, SCSI_HOSTS, PVPANIC, DMAR,
                     IOMMUS, VSOCK, VIRTIO_MMIO))


@pytest.fixture(scope="session")
def guest_pci(guest, reads) -> dict[str, str]:
    """BDF -> vendor:device of every PCI function the guest sees."""
    if machine_type(guest.plan.argv) == "microvm":
        pytest.skip("microvm has no PCI bus: its virtio-mmio devices are checked by test_virtio_mmio")
    out = {}
    for line in reads.text(PCI_LIST).splitlines():
        bdf, vendor, device = line.split()
        out[bdf] = f"{vendor[2:]}:{device[2:]}"
    return out


def test_every_pci_device_is_accounted_for(guest, guest_pci):
    """The guest's PCI functions are exactly the machine's built-ins plus the launched argv's devices."""
    remaining = Counter(guest_pci.values())
    for vendor, device in MACHINE_PCI_DEVICES[machine_type(guest.plan.argv)]:
        assert remaining[f"{vendor}:{device}"] > 0, f"machine built-in {vendor}:{device} missing"
        remaining[f"{vendor}:{device}"] -= 1
    missing = []
    for driver, ids in pci_devices_from_argv(guest.plan.argv):
        hit = next((i for i in ids if remaining[i] > 0), None)
        if hit is None:
            missing.append(f"{driver} ({'/'.join(ids)})")
        else:
            remaining[hit] -= 1
    unexpected = sorted(+remaining)
    assert not missing, f"generated devices without a PCI function in the guest: {missing}"
    assert not unexpected, f"guest PCI functions nobody asked for: {unexpected}"


def test_guest_pci_matches_qmp_query_pci(guest, guest_pci):
    seen = Counter()
    for bus in guest.vm.qmp.execute("query-pci"):
        stack = list(bus["devices"])
        while stack:
            dev = stack.pop()
            seen[f"{dev['id']['vendor']:04x}:{dev['id']['device']:04x}"] += 1
            stack += (dev.get("pci_bridge") or {}).get("bus", {}).get("devices", [])
    assert seen == Counter(guest_pci.values())


def test_transitional_or_modern_as_disable_modern_says(guest, guest_pci):
    """disable-modern=true (nested host) devices expose no virtio 1.0 capability; =false ones do."""
    wanted = []
    for value in options(guest.plan.argv, "-device"):
        fields = device_props(value)
        if "disable-modern" not in fields or not fields[""].endswith("-pci"):
            continue
        if fields[""] not in VIRTIO_PCI_IDS:
            continue
        family = [device for device in VIRTIO_PCI_IDS[fields[""]] if device]
        bdfs = [b for b, ident in guest_pci.items() if ident.split(":")[1] in family]
        assert bdfs, f"{fields['']} not found"
        wanted.append((value, fields["disable-modern"], f"cat /sys/bus/pci/devices/{bdfs[0]}/config"))
    if not wanted:
        pytest.skip("no device with disable-modern in this cell (e.g. microvm's virtio-mmio)")
    configs = read_together(guest.channel, [cmd for _, _, cmd in wanted])
    for value, disable_modern, cmd in wanted:
        assert has_virtio_modern_capability(configs.data(cmd)) == (disable_modern == "false"), value


def test_pci_bridges_and_root_ports(guest, guest_pci):
    argv = guest.plan.argv
    bridges = [props(d) for d in options(argv, "-device") if d.startswith("pci-bridge")]
    ports = [props(d) for d in options(argv, "-device") if d.startswith("pcie-root-port")]
    assert list(guest_pci.values()).count("1b36:0001") == len(bridges)
    assert list(guest_pci.values()).count("1b36:000c") == len(ports)
    for bridge in bridges:
        slot = int(bridge["addr"], 16)
        assert f"0000:00:{slot:02x}.0" in guest_pci, f"{bridge['id']} not at addr {bridge['addr']}"
        assert guest_pci[f"0000:00:{slot:02x}.0"] == "1b36:0001"


def test_nvdimm_region_and_pmem(guest, reads):
    nvdimms = [props(o) for o in options(guest.plan.argv, "-object") if o.startswith("memory-backend-file,id=mem0")]
    if not nvdimms:
        assert reads.ok(NO_PMEM)
        pytest.skip("no nvdimm in this cell")
    assert reads.ok(PMEM)
    size = int(reads.text(REGION_SIZE))
    assert size == int(nvdimms[0]["size"])


def test_virtio_rng_is_the_current_hwrng(guest, reads):
    assert any(o.startswith("rng-random") for o in options(guest.plan.argv, "-object"))
    current = reads.text(RNG)
    assert current.startswith("virtio_rng")


def test_console_device(guest, reads):
    legacy = bool(options(guest.plan.argv, "-serial"))
    if legacy:
        assert guest.channel.console in ("ttyS0", "ttyAMA0")
    else:
        assert guest.channel.console == "hvc0"
        assert reads.ok(HVC)
        ports = reads.text(VIRTIO_PORTS)
        assert int(ports) >= 1, "virtconsole registers a virtio port"


def test_scsi_host(guest, reads):
    scsi = [d for d in options(guest.plan.argv, "-device") if d.startswith("virtio-scsi")]
    names = reads.stdout(SCSI_HOSTS).split()
    assert ("virtio_scsi" in names) == bool(scsi)


def test_pvpanic(guest, reads):
    wanted = "pvpanic" in options(guest.plan.argv, "-device")
    present = reads.ok(PVPANIC)
    assert present == wanted
    assert ("-no-shutdown" in guest.plan.argv) == wanted


def test_viommu(guest, reads):
    wanted = any(d.startswith("intel-iommu") for d in options(guest.plan.argv, "-device"))
    dmar = reads.ok(DMAR)
    units = reads.stdout(IOMMUS).split()
    assert dmar == wanted
    assert bool(units) == wanted


def test_vsock(guest, reads):
    wanted = any(d.startswith("vhost-vsock") for d in options(guest.plan.argv, "-device"))
    generated = any(d.startswith("vhost-vsock") for d in options(guest.generated_argv, "-device"))
    if generated and not wanted:
        pytest.skip("vhost-vsock dropped by a launch override (no /dev/vhost-vsock on this host)")
    assert reads.ok(VSOCK) == wanted


def test_memory_backends_match_qmp_query_memdev(guest):
    memdevs = {m["id"]: m for m in guest.vm.qmp.execute("query-memdev")}
    for value in options(guest.plan.argv, "-object"):
        fields = props(value)
        if not fields[""].startswith("memory-backend"):
            continue
        memdev = memdevs.get(fields["id"])
        assert memdev is not None, f"{fields['id']} missing from query-memdev"
        size = fields["size"]
        expected = int(size[:-1]) * 1024 * 1024 if size.endswith("M") else int(size)
        assert memdev["size"] == expected
        assert memdev["share"] == (fields.get("share") == "on")
        assert memdev["prealloc"] == (fields.get("prealloc") == "on")


def test_virtio_mmio(guest, reads):
    """microvm: one virtio-mmio device in the guest per generated virtio ``*-device``."""
    if machine_type(guest.plan.argv) != "microvm":
        pytest.skip("PCI machine: devices are checked through PCI")
    wanted = [d for d in options(guest.plan.argv, "-device")
              if device_props(d)[""].endswith("-device") and device_props(d)[""].startswith(("virtio-", "vhost-"))]
    present = reads.stdout(VIRTIO_MMIO).split()
    assert len(present) == len(wanted), (present, wanted)
