"""Registration of the subcommands beyond render/explain.

Each registrar takes the subparsers object, adds its parser and sets ``handler`` via ``set_defaults``.
"""

from __future__ import annotations

REGISTRARS: list = []

from katatest.launch.doctor import register_doctor  # noqa: E402 - after REGISTRARS exists

REGISTRARS.append(register_doctor)

from katatest.assets.cli import register_assets  # noqa: E402,F401 - appends itself to REGISTRARS
