"""Entry point for ``python -m katatest``."""

from katatest.cli import main

raise SystemExit(main())
