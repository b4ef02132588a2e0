"""Build-time defaults of Kata 3.0.0's runtime (config-settings.go.in as built for QEMU, virtcontainers)."""

from __future__ import annotations

from katatest.kata.hypervisors import hypervisor

DEFAULT_HYPERVISOR_PATH = hypervisor("qemu").default_paths["amd64"]  # katautils' default, for every table
DEFAULT_HYPERVISOR_CTL_PATH = "/usr/bin/acrnctl"
DEFAULT_JAILER_PATH = "/usr/bin/jailer"
DEFAULT_IMAGE_PATH = "/usr/share/kata-containers/kata-containers.img"
DEFAULT_KERNEL_PATH = "/usr/share/kata-containers/vmlinuz.container"
DEFAULT_INITRD_PATH = "/usr/share/kata-containers/kata-containers-initrd.img"
DEFAULT_FIRMWARE_PATH = ""
DEFAULT_FIRMWARE_VOLUME_PATH = ""
DEFAULT_KERNEL_PARAMS = ""
DEFAULT_MACHINE_TYPE = "q35"
SYSTEMD_UNIT_NAME = "kata-containers.target"

DEFAULT_VCPU_COUNT = 1
DEFAULT_MEM_SIZE_MIB = 2048
DEFAULT_MEM_SLOTS = 10
DEFAULT_MEM_OFFSET = 0
DEFAULT_BRIDGES = 1
MAX_PCI_BRIDGES = 5
DEFAULT_BLOCK_DEVICE_DRIVER = "virtio-scsi"
DEFAULT_BLOCK_DEVICE_AIO = "io_uring"
DEFAULT_MSIZE_9P = 8192
DEFAULT_ENTROPY_SOURCE = "/dev/urandom"
DEFAULT_GUEST_HOOK_PATH = ""
DEFAULT_VIRTIO_FS_CACHE = "none"
DEFAULT_VHOST_USER_STORE_PATH = "/var/run/kata-containers/vhost-user/"
DEFAULT_SGX_EPC_SIZE = 0
DEFAULT_INTERNETWORKING_MODEL = "tcfilter"
DEFAULT_VFIO_MODE = "guest-kernel"
DEFAULT_TEMPLATE_PATH = "/run/vc/vm/template"
DEFAULT_VM_CACHE_ENDPOINT = "/var/run/kata-containers/cache.sock"

MIN_HYPERVISOR_MEMORY_MIB = 256  # vc.MinHypervisorMemory

# govmm.MaxVCPUs(): amd64 fixed, arm64 by the default GIC version (v3).
MAX_VCPUS = {"amd64": 240, "arm64": 123}

BLOCK_DEVICE_DRIVERS = ("virtio-scsi", "virtio-blk", "virtio-mmio", "nvdimm", "virtio-blk-ccw")
BLOCK_DEVICE_AIOS = ("io_uring", "native", "threads")
SHARED_FS_TYPES = ("virtio-9p", "virtio-fs", "virtio-fs-nydus")
INTERNETWORKING_MODELS = ("default", "macvtap", "tcfilter", "none")
VFIO_MODES = ("vfio", "guest-kernel")


# Agent kernel parameters (kata_agent.go).
AGENT_DEBUG_CONSOLE = "agent.debug_console"
AGENT_DEBUG_CONSOLE_VPORT = "agent.debug_console_vport"
AGENT_DEBUG_CONSOLE_VPORT_VALUE = "1026"
AGENT_CONTAINER_PIPE_SIZE = "agent.container_pipe_size"
