"""Per-cell artifact files under ``<reports>/cells/<cell>/`` (written by the cell fixtures)."""

from __future__ import annotations

from pathlib import Path

KNOWN = ("argv.txt", "launch-argv.txt", "overrides.json", "explain.txt", "findings.json", "console.log",
         "virtiofsd.log", "qemu-stderr.log")
"""Artifacts in display order; qmp-*.json and anything else follow by name."""


def _order(name: str) -> tuple[int, str]:
    return (KNOWN.index(name) if name in KNOWN else len(KNOWN), name)


def cell_artifacts(cells_dir: Path, cell: str) -> list[str]:
    """Files (relative paths, posix) in ``cells_dir/cell``, known ones first, no dotfiles (bookkeeping such
    as the run stamp); [] if the dir is absent."""
    root = cells_dir / cell
    if not root.is_dir():
        return []
    files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=_order)


def scan(cells_dir: Path) -> dict[str, list[str]]:
    """Artifacts of every cell directory present."""
    if not cells_dir.is_dir():
        return {}
    return {d.name: cell_artifacts(cells_dir, d.name) for d in sorted(cells_dir.iterdir()) if d.is_dir()}
