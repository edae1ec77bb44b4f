"""``python -m estate.cli …``: the same commands as the ``estate`` script."""

from estate.cli.main import main

raise SystemExit(main())
