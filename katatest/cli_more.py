"""Registration of the subcommands beyond render/explain.

Each registrar takes the subparsers object, adds its parser and sets ``handler`` via ``set_defaults``.
"""

from __future__ import annotations

REGISTRARS: list = []

from katatest.launch.doctor import register_doctor  # noqa: E402 - after REGISTRARS exists

REGISTRARS.append(register_doctor)

from katatest.assets.cli import register_assets  # noqa: E402,F401 - appends itself to REGISTRARS
from katatest.cli_boot import register_boot  # noqa: E402
from katatest.report.cli import register_report  # noqa: E402,F401 - appends itself to REGISTRARS

REGISTRARS.append(register_boot)

from katatest.cli_lint import register_lint  # noqa: E402

REGISTRARS.append(register_lint)
