"""`python -m app`: operator commands over the same Settings as the web process.

    python -m app config [--log-level L]   print the effective settings, secrets masked

Flags override the environment, which overrides var/stack.env (written by `make run`),
which overrides .env, which overrides the defaults.
"""

from __future__ import annotations

import argparse
import sys

import orjson

from app.foundation.config import load_settings_or_exit


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", help="overrides LOG_LEVEL")
    parser.add_argument("--port", type=int, help="overrides PORT")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("config", help="print the effective settings, secrets masked")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings_or_exit(log_level=args.log_level, port=args.port)
    sys.stdout.write(orjson.dumps(settings.redacted(), option=orjson.OPT_INDENT_2).decode())
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
