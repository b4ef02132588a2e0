"""Kata 3.0.0's two ways of turning kernel parameters into one command-line string."""

from __future__ import annotations

from katatest.kata.hypervisor_config import Param


def serialize_params(params: list[Param]) -> str:
    """``SerializeParams(params, "=")`` joined by spaces: empty params dropped, bare keys or values kept."""
    words = []
    for p in params:
        if p.key == "" and p.value == "":
            continue
        words.append(p.value if p.key == "" else p.key if p.value == "" else f"{p.key}={p.value}")
    return " ".join(words)


def clh_params_to_string(params: list[Param]) -> str:
    """clh's ``kernelParamsToString``: ``key[=value]`` joined by spaces (an empty key is kept)."""
    return " ".join(p.key + (f"={p.value}" if p.value else "") for p in params).strip()
