"""``python -m occrecon`` is the ``occrecon`` command."""

from occrecon.cli import main

raise SystemExit(main())
