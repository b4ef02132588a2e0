"""Registration of the subcommands beyond render/explain.

Each registrar takes the subparsers object, adds its parser and sets ``handler`` via ``set_defaults``.
"""

from __future__ import annotations

REGISTRARS: list = []
