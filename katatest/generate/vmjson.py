"""VM configuration JSON with provenance: build a tree of sourced leaves, then flatten it to plain JSON plus
a JSON-pointer -> sources map (``Rendered.vmconfig`` / ``Rendered.vmconfig_sources``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from katatest.generate.provenance import MissingProvenance

Sources = tuple[str, ...]


@dataclass(frozen=True)
class Leaf:
    """One JSON scalar and the config keys / host facts that produced it."""

    value: Any
    sources: Sources = ()

    def __post_init__(self) -> None:
        if not self.sources or not all(isinstance(s, str) and s for s in self.sources):
            raise MissingProvenance(f"VM config value {self.value!r} emitted without sources {self.sources!r}")


def leaf(value: Any, *sources: str | Sources) -> Leaf:
    """A sourced scalar; ``sources`` may mix single names and tuples of names."""
    flat: list[str] = []
    for item in sources:
        flat.extend((item,) if isinstance(item, str) else item)
    return Leaf(value, tuple(dict.fromkeys(flat)))


def pointer_token(key: str | int) -> str:
    """Escape one JSON-pointer reference token (RFC 6901)."""
    return str(key).replace("~", "~0").replace("/", "~1")


def flatten(tree: Any, prefix: str = "") -> tuple[Any, dict[str, Sources]]:
    """``(plain JSON value, {pointer: sources})`` for a tree of dicts, lists and Leafs."""
    sources: dict[str, Sources] = {}

    def walk(node: Any, pointer: str) -> Any:
        if isinstance(node, Leaf):
            sources[pointer] = node.sources
            return node.value
        if isinstance(node, dict):
            return {key: walk(value, f"{pointer}/{pointer_token(key)}") for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value, f"{pointer}/{index}") for index, value in enumerate(node)]
        raise MissingProvenance(f"VM config field {pointer or '/'} = {node!r} emitted without sources "
                                "(wrap it in leaf(value, sources))")

    return walk(tree, prefix), sources

