"""`python -m devtools`: the development stack and its companions. Never used in production.

    python -m devtools run [--var-dir DIR] [--stop-with-parent]   the stack (make run)
    python -m devtools mail [NAME]       list the development inbox, show the newest or NAME
    python -m devtools psql [--var-dir DIR] [ARGS...]       psql on the stack's database
    python -m devtools redis-cli [--var-dir DIR] [ARGS...]  redis-cli on the stack's Redis
    python -m devtools seed [--var-dir DIR] [N]  N realistic users through the users service
    python -m devtools k8s-image KUSTOMIZATION NAME:TAG   the image an overlay deploys

Embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are set; their URLs are
written to var/stack.env while the stack runs, so these commands, `python -m app config`,
`python -m worker ...` and `make migrate-up` find it with nothing set by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.foundation.config import STACK_ENV_FILE, ConfigError, exit_on_config_error, load_settings
from app.foundation.logs import configure_logging
from devtools.processes import PROJECT_ROOT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devtools", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the development stack")
    run.add_argument("--var-dir", type=Path, default=PROJECT_ROOT / "var")
    run.add_argument(
        "--stop-with-parent",
        action="store_true",
        help="stop when the parent process (make) dies or is being stopped",
    )
    mail = commands.add_parser("mail", help="list the development inbox and show a message")
    mail.add_argument("name", nargs="?", help="a file name from the list (default: newest)")
    mail.add_argument("--var-dir", type=Path, default=PROJECT_ROOT / "var")
    for client in ("psql", "redis-cli"):
        command = commands.add_parser(client, help=f"{client} on the running stack")
        command.add_argument("--var-dir", type=Path, default=PROJECT_ROOT / "var")
    image = commands.add_parser("k8s-image", help="set the image of a Kustomize overlay")
    image.add_argument("kustomization", type=Path)
    image.add_argument("image", help="NAME:TAG")
    token = commands.add_parser("token", help="a token of the running stack's issuer")
    token.add_argument("--var-dir", type=Path, default=PROJECT_ROOT / "var")
    token.add_argument("scopes", nargs="*", help="default: every scope")
    seed = commands.add_parser("seed", help="create realistic users through the service")
    seed.add_argument("--var-dir", type=Path, default=PROJECT_ROOT / "var")
    seed.add_argument("count", nargs="?", type=int, default=1000)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # The clients' own options (psql -c ...) are not ours: everything unknown goes to them.
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in ("psql", "redis-cli"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.args = rest
    try:
        return _dispatch(args)
    except ConfigError as error:
        exit_on_config_error(error)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "mail":
        from devtools.inbox import show

        sys.stdout.write(show(args.var_dir / "mail", args.name))
        return 0
    if args.command == "k8s-image":
        from devtools.k8s_image import set_image

        try:
            set_image(args.kustomization, args.image)
        except ValueError as error:
            raise ConfigError([f"IMAGE: {error}"]) from None
        print(f"{args.kustomization}: image {args.image}")
        return 0
    if args.command == "run":
        from devtools.stack import run_dev_stack

        # The stack's own file must not choose the servers of the stack it is about to start.
        settings = load_settings(_env_file=".env")
        configure_logging(settings.log_level)
        return run_dev_stack(settings, args.var_dir, stop_with_parent=args.stop_with_parent)
    # The other commands work on the running stack: its stack.env after .env (as Settings
    # read var/stack.env from the checkout), the environment over both.
    settings = load_settings(_env_file=(".env", args.var_dir / Path(STACK_ENV_FILE).name))
    if args.command == "token":
        from devtools.issuer import ALL_SCOPES, ISSUER_KEY_FILE, DevIssuer

        if settings.auth_issuer is None:
            raise ConfigError(["AUTH_ISSUER: no stack is running (start one with make run)"])
        issuer = DevIssuer.of_running_stack(args.var_dir / ISSUER_KEY_FILE, settings.auth_issuer)
        scopes = [s for arg in args.scopes for s in arg.split()] or list(ALL_SCOPES)
        print(f'# a token for {" ".join(scopes)}, valid 1 h: curl -H "Authorization: Bearer $T"')
        print(issuer.token(scopes))
        return 0
    if args.command == "seed":
        from devtools.seed import seed

        configure_logging(settings.log_level)
        created = seed(settings, args.count)
        print(f"{created} users created; their welcome emails are queued")
        return 0
    from devtools import clients

    build = clients.psql_argv if args.command == "psql" else clients.redis_cli_argv
    clients.exec_client(build(settings, args.args))
    return 0  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main())
