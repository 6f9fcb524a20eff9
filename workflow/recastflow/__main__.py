"""Allow ``python -m recastflow``."""

from recastflow.cli import main

raise SystemExit(main())
