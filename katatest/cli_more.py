"""The subcommands beyond render/explain, each a registrar: it adds its parser and sets ``handler``."""

from __future__ import annotations

from katatest.assets.cli import register_assets
from katatest.cli_boot import register_boot
from katatest.cli_lint import register_lint
from katatest.launch.doctor import register_doctor
from katatest.report.cli import register_report

REGISTRARS = (register_boot, register_doctor, register_assets, register_lint, register_report)
