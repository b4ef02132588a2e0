"""Which config keys / host facts produced a field of the loaded KataConfig."""

from __future__ import annotations

from katatest.kata.hypervisor_config import KataConfig

Sources = tuple[str, ...]


class FieldSources:
    """Look up the provenance the loader recorded, falling back to the TOML key of ``table``."""

    def __init__(self, cfg: KataConfig, table: str) -> None:
        self.sources = cfg.sources
        self.table = table  # e.g. "hypervisor.clh"

    def __call__(self, *names: str) -> Sources:
        """Sources of one or more ``HypervisorConfig`` fields, merged in order."""
        merged: list[str] = []
        for name in names:
            merged.extend(self.sources.get(f"hypervisor.{name}", (f"{self.table}.{name}",)))
        return tuple(dict.fromkeys(merged))

    def agent(self, name: str) -> Sources:
        return tuple(self.sources.get(f"agent.{name}", (f"agent.kata.{name}",)))
