"""`python -m devtools run`: the development stack (`make run`). Never used in production.

    python -m devtools run [--var-dir DIR]

Embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are set; their URLs are
written to var/stack.env while the stack runs, so `python -m app config`,
`python -m worker ...` and `make migrate-up` find it with nothing set by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.foundation.config import ConfigError, exit_on_config_error, load_settings
from app.foundation.logs import configure_logging
from app.foundation.migrations import PROJECT_ROOT
from devtools.stack import run_dev_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the development stack")
    run.add_argument("--var-dir", type=Path, default=PROJECT_ROOT / "var")
    args = parser.parse_args(argv)
    try:
        # The stack's own file must not choose the servers of the stack it is about to start.
        settings = load_settings(_env_file=".env")
        configure_logging(settings.log_level)
        return run_dev_stack(settings, args.var_dir)
    except ConfigError as error:
        exit_on_config_error(error)


if __name__ == "__main__":
    sys.exit(main())
