"""``katatest lint``: arguments QEMU (or virtiofsd) would parse differently from what the config meant.

``render`` reproduces Kata exactly, including its lack of comma escaping: a path with a comma inside a QEMU
option list (``mem-path=/a,b.img``) is read by QEMU as two options. Lint names the key, the argument and the
safe form (commas doubled, QEMU's escape).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from katatest.generate.rendered import Rendered
from katatest.host.facts import HostFacts
from katatest.kata.hypervisors import hypervisor as hypervisor_named

# QEMU options whose value is a comma-separated option list.
OPTION_LIST_FLAGS = frozenset({"-machine", "-device", "-object", "-drive", "-chardev", "-fsdev", "-numa", "-qmp",
                               "-m", "-smp", "-rtc", "-global", "-netdev", "-serial"})
# Keys whose value is meant to be an option list (or is not placed in one).
INTENDED_LISTS = frozenset({"machine_accelerators", "cpu_features", "seccompsandbox", "kernel_params",
                            "virtio_fs_extra_args"})


@dataclass(frozen=True)
class LintFinding:
    key: str
    argument: str
    safe: str

    def __str__(self) -> str:
        return (f"{self.key}: contains ',' and lands unescaped in {self.argument!r}; QEMU splits it there. "
                f"Safe form: {self.safe!r}")


def _comma_values(doc: dict[str, Any], facts: HostFacts, hypervisor: str) -> list[tuple[str, str]]:
    section = hypervisor_named(hypervisor).section
    table = (doc.get("hypervisor") or {}).get(section) or {}
    out = []
    for key, value in table.items():
        values = value if isinstance(value, list) else [value]
        if key in INTENDED_LISTS or key.startswith("valid_"):
            continue
        out += [(f"hypervisor.{section}.{key}", v) for v in values if isinstance(v, str) and "," in v]
    if facts.rootless and "," in facts.runtime_dir:
        out.append(("host.xdg_runtime_dir", facts.runtime_dir))
    return out


def _option_list_args(argv: list[str], daemon: bool) -> list[str]:
    if daemon:
        return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-o"]
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in OPTION_LIST_FLAGS]


def lint(doc: dict[str, Any], facts: HostFacts, rendered: Rendered) -> list[LintFinding]:
    """Every config value with a comma that ends up unescaped inside an option list."""
    findings = []
    candidates = _comma_values(doc, facts, rendered.hypervisor)
    targets = [(arg, False) for arg in _option_list_args(rendered.argv_values(), False)]
    if rendered.daemon is not None:
        targets += [(arg, True) for arg in _option_list_args(rendered.daemon_values() or [], True)]
    for key, value in candidates:
        for arg, _ in targets:
            if value in arg and value.replace(",", ",,") not in arg:
                findings.append(LintFinding(key, arg, arg.replace(value, value.replace(",", ",,"))))
    return findings
