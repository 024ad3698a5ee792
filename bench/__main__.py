"""`python -m bench` (make bench): see bench/run.py; `--only` runs some sections
(bench/sections.py)."""

from bench.sections import main

raise SystemExit(main())
