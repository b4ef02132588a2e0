"""Which config keys / host facts produced a field of the loaded KataConfig."""

from __future__ import annotations

from katatest.argv import MissingProvenance
from katatest.kata.hypervisor_config import KataConfig
from katatest.kata.toml_schema import HYPERVISOR_KEYS

Sources = tuple[str, ...]


class FieldSources:
    """Look up the provenance the loader recorded, falling back to the TOML key of ``table``.

    The fallback must name a real key of ``[hypervisor.*]``: a field the loader recorded nothing for and whose
    name is no TOML key (runtime state such as ``boot_from_template``) raises MissingProvenance instead of
    inventing a source."""

    def __init__(self, cfg: KataConfig, table: str) -> None:
        self.sources = cfg.sources
        self.table = table  # e.g. "hypervisor.clh"

    def __call__(self, *names: str) -> Sources:
        """Sources of one or more ``HypervisorConfig`` fields, merged in order."""
        merged: list[str] = []
        for name in names:
            recorded = self.sources.get(f"hypervisor.{name}")
            if recorded is None and name not in HYPERVISOR_KEYS:
                raise MissingProvenance(f"HypervisorConfig field {name!r}: the loader recorded no source and "
                                        f"{self.table}.{name} is no configuration key")
            merged.extend(recorded if recorded is not None else (f"{self.table}.{name}",))
        return tuple(dict.fromkeys(merged))
