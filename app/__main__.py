"""`python -m app`: operator commands over the same Settings as the web process.

    python -m app config [--log-level L]   print the effective settings, secrets masked
    python -m app dev                      run the development stack (make run)

Flags override the environment, which overrides .env, which overrides the defaults.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from app.config import ConfigError, exit_on_config_error, load_settings
from app.devstack import run_dev_stack
from app.logging import configure_logging
from app.migrations import PROJECT_ROOT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", help="overrides LOG_LEVEL")
    parser.add_argument("--port", type=int, help="overrides PORT")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("config", help="print the effective settings, secrets masked")
    dev = commands.add_parser("dev", help="run the development stack")
    dev.add_argument("--var-dir", type=Path, default=PROJECT_ROOT / "var")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(log_level=args.log_level, port=args.port)
        if args.command == "config":
            sys.stdout.write(orjson.dumps(settings.redacted(), option=orjson.OPT_INDENT_2).decode())
            sys.stdout.write("\n")
            return 0
        configure_logging(settings.log_level)
        return run_dev_stack(settings, args.var_dir)
    except ConfigError as error:
        exit_on_config_error(error)


if __name__ == "__main__":
    sys.exit(main())
