"""VM configuration JSON with provenance: build a tree of sourced leaves, flatten it to plain JSON plus a
JSON-pointer -> sources map, and compare two JSON documents by their first differing pointer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Sources = tuple[str, ...]


@dataclass(frozen=True)
class Leaf:
    """One JSON scalar and the config keys / host facts that produced it."""

    value: Any
    sources: Sources = ()


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
        sources[pointer] = ("kata.fixed",)
        return node

    return walk(tree, prefix), sources


def json_difference(expected: Any, actual: Any, pointer: str = "") -> str:
    """The first JSON pointer where two parsed documents differ, described; '' when equal."""
    where = pointer or "/"
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            sub = f"{pointer}/{pointer_token(key)}"
            if key not in actual:
                return f"{sub}: missing (expected {expected[key]!r})"
            if key not in expected:
                return f"{sub}: unexpected {actual[key]!r}"
            found = json_difference(expected[key], actual[key], sub)
            if found:
                return found
        return ""
    if isinstance(expected, list) and isinstance(actual, list):
        for index, (want, got) in enumerate(zip(expected, actual)):
            found = json_difference(want, got, f"{pointer}/{index}")
            if found:
                return found
        if len(expected) != len(actual):
            return f"{where}: expected {len(expected)} items, got {len(actual)}"
        return ""
    if type(expected) is not type(actual) or expected != actual:
        return f"{where}: expected {expected!r}, got {actual!r}"
    return ""
