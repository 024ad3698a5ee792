"""`python -m bench` (make bench): see bench/run.py."""

from bench.run import main

raise SystemExit(main())
