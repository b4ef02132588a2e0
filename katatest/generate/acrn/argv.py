"""The acrn-dm command line of Kata 3.0.0 (``Acrn.CreateVM`` -> ``LaunchAcrn``)."""

from __future__ import annotations

from katatest.generate.acrn.devices import (
    BLOCK_POOL_SIZE,
    DUMMY_DISK,
    LPC,
    Device,
    HostBridge,
    SocketConsole,
    VirtioBlk,
    device_args,
)
from katatest.generate.acrn.kernel import kernel_command_line
from katatest.generate.paths import sandbox_paths
from katatest.generate.provenance import Arg, FieldSources
from katatest.host.facts import HostFacts
from katatest.kata.hypervisor_config import KataConfig

# acrnIdxToUUIDs: the fixed VM UUIDs, handed out first-free from Kata's persisted UUID store.
ACRN_UUIDS = (
    "a7ada506-1ab0-4b6b-a0da-e513ca9b8c2f", "dbeae168-26e4-4084-9227-622193e56325",
    "18ed60cd-e9ea-4bf4-8f87-8523fc8347a3", "3f90b6f8-449a-4e72-b99c-063a889fc422",
    "1ae8587b-e599-4b59-8260-6d14ac166a55", "75f3b94b-49ed-48fc-b019-577ef45adf2b",
    "ca62cf3c-8359-47e8-a3f7-de2d682dfb02", "e3189497-c3f6-4b97-9e2c-18ac0ab9064d",
)
CONSOLE_SOCKET = "console.sock"
FIXED = ("kata.fixed",)
PATH_SOURCES = ("host.sandbox_id", "host.rootless", "host.xdg_runtime_dir")


def acrn_devices(cfg: KataConfig, facts: HostFacts, src: FieldSources) -> list[Device]:
    """``buildDevices``: bridge, LPC, console socket, the image, then the dummy block pool."""
    console = sandbox_paths(facts).socket(CONSOLE_SOCKET)
    devices: list[Device] = [HostBridge(), LPC(), SocketConsole("console0", console, True, PATH_SOURCES),
                             VirtioBlk(cfg.hypervisor.image_path, src("image_path"))]
    devices += [VirtioBlk(DUMMY_DISK, FIXED) for _ in range(BLOCK_POOL_SIZE)]
    return devices


def acrn_argv(cfg: KataConfig, facts: HostFacts, src: FieldSources, uuid_index: int = 0) -> list[Arg]:
    """``-U uuid -A -m <mem>M <devices> -k kernel -B params sandbox-<id>`` (``uuid_index``: the first free
    slot of the UUID store, 0 on a host running no other ACRN sandbox)."""
    hv = cfg.hypervisor
    params, params_src = kernel_command_line(cfg, facts, src)
    mem_src = src("memory_size")
    args = [Arg(hv.hypervisor_path, src("hypervisor_path")),
            Arg("-U", FIXED), Arg(ACRN_UUIDS[uuid_index], ("host.acrn_uuid_store",)),
            Arg("-A", FIXED),
            Arg("-m", mem_src), Arg(f"{hv.memory_size}M", mem_src)]
    args += device_args(acrn_devices(cfg, facts, src))
    args += [Arg("-k", src("kernel_path")), Arg(hv.kernel_path, src("kernel_path"))]
    if params:
        args += [Arg("-B", params_src), Arg(params, params_src)]
    args.append(Arg(f"sandbox-{facts.sandbox_id}", ("host.sandbox_id",)))
    return args
