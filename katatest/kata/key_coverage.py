"""Keys of Kata's configuration that katatest reads but does not turn into arguments, each with why (data).

Every key a shipped configuration sets is either used by the loader, or listed here (tests/test_shipped_keys.py
fails otherwise): ``NOT_LAUNCH`` keys change nothing Kata launches at sandbox start; ``UNMODELLED`` keys do, and
katatest refuses a value other than Kata's default naming the key, rather than render a wrong argv."""

from __future__ import annotations

from typing import Any

from katatest.errors import KatatestError

# key (table.key, hypervisor/agent tables without their name) -> what Kata uses it for, after the launch.
NOT_LAUNCH: dict[str, str] = {
    "hypervisor.vhost_user_reconnect_timeout_sec": "reconnect of hot-plugged vhost-user-blk devices",
    "agent.visible_cdi_devices": "CDI devices visible to containers (agent)",
    "runtime.create_container_timeout": "the agent's CreateContainer request timeout",
    "runtime.dan_conf": "Directly Attachable Network descriptions (none on a plain host)",
    "runtime.enable_vcpus_pinning": "host-side pinning of the vCPU threads after boot",
    "runtime.experimental_force_guest_pull": "container images pulled in the guest (agent)",
    "runtime.guest_selinux_label": "SELinux label of container processes (agent)",
    "runtime.kubelet_root_dir": "the kubelet's directory, for volumes",
    "runtime.pod_resource_api_sock": "the kubelet's pod-resources socket, for cold-plugged pod devices",
}

# key -> Kata's default: any other value changes the launched VM in a way katatest does not model.
UNMODELLED: dict[str, Any] = {
    "hypervisor.kernel_verity_params": "",  # dm-verity root: kernel parameters from the verity hash
    "hypervisor.enable_numa": False,  # guest NUMA nodes: -numa / memory backends per node
    "hypervisor.numa_mapping": [],  # idem (only with enable_numa)
}


class UnmodelledKey(KatatestError):
    """A key whose value Kata would turn into arguments katatest cannot reproduce."""


def refuse_unmodelled(table: str, values: dict[str, Any], kind: str) -> None:
    """Raise UnmodelledKey for a key of ``table`` (e.g. "hypervisor.qemu", ``kind`` "hypervisor") set to
    anything but Kata's default."""
    for key, default in UNMODELLED.items():
        section, _, name = key.partition(".")
        if section == kind and name in values and values[name] != default:
            raise UnmodelledKey(f"{table}.{name} = {values[name]!r}: katatest does not model what Kata launches "
                                f"for it (only {default!r}); its argv would not be Kata's")
