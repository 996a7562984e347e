"""``python -m gsomia``."""

from gsomia.cli import main

raise SystemExit(main())
