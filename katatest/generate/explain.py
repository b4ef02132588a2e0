"""Human-readable provenance: each argument (or JSON field) with the keys/facts that produced it."""

from __future__ import annotations

from katatest.generate.provenance import Arg

NO_SOURCE = "kata constant"


def explain_args(args: list[Arg], width_cap: int = 60) -> list[str]:
    """One line per argument: ``value  <- source, source``."""
    width = min(max((len(a.value) for a in args), default=0), width_cap)
    return [f"{a.value:{width}}  <- {', '.join(a.sources) or NO_SOURCE}" for a in args]


def explain_fields(sources: dict[str, tuple[str, ...]]) -> list[str]:
    """One line per JSON pointer of a VM config document."""
    width = min(max((len(p) for p in sources), default=0), 40)
    return [f"{pointer:{width}}  <- {', '.join(srcs) or NO_SOURCE}" for pointer, srcs in sorted(sources.items())]
