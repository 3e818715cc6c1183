"""`python -m edgeclf` runs the CLI."""

from .cli import main

raise SystemExit(main())
