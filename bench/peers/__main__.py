"""`python -m bench.peers`: see `bench.peers.harness`."""

from bench.peers.harness import main

raise SystemExit(main())
