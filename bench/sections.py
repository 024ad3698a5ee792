"""`python -m bench [--only SECTION,...]`: the whole benchmark (bench.run.main, which
writes bench/results/latest.*), or some of its sections, to measure one change quickly.

A partial run prints its figures and writes them to $BENCH_WORK_DIR/partial.json; it
never replaces bench/results/latest.*, which hold one whole run, side by side.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis import Redis

from bench import run
from bench.devstack import devstack_benchmarks
from bench.issuer import trust_a_local_issuer
from bench.job_throughput import job_benchmarks

Section = Callable[[str, str, Path], dict[str, Any]]


def _writes(database_url: str, redis_url: str, work: Path) -> dict[str, Any]:
    http = run.http_benchmarks(database_url, redis_url, work, run.WRITE_SCENARIOS)
    return {"http": http, "ratios": run.compare(http)}


def _http(database_url: str, redis_url: str, work: Path) -> dict[str, Any]:
    http = run.http_benchmarks(database_url, redis_url, work)
    return {"http": http, "ratios": run.compare(http)}


def _auth(database_url: str, redis_url: str, work: Path) -> dict[str, Any]:
    """GET by id with and without the bearer check, alternated six times: the ratio the
    authentication costs, with less noise than the full table's three repeats."""
    on, off = "service, everything on", "service, auth off"
    scenario = "GET /api/v1/users/{id}"
    http = run.http_benchmarks(
        database_url, redis_url, work, (scenario,), configurations=(on, off), repeats=6
    )
    return {
        "http": http,
        "auth on / auth off req/s": http[on][scenario]["rps"] / http[off][scenario]["rps"],
    }


SECTIONS: dict[str, Section] = {
    "auth": _auth,
    "http": _http,
    "writes": _writes,
    "jobs": lambda db, redis, work: job_benchmarks(db, redis, work, run.start_server),
    "exports": lambda db, redis, work: run.export_benchmarks(db, redis),
    "startup": run.startup_and_memory,
    "devstack": lambda db, redis, work: devstack_benchmarks(work),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="The benchmark (make bench); --only runs some of its sections.",
    )
    parser.add_argument(
        "--only",
        metavar="SECTION,...",
        type=lambda value: [name.strip() for name in value.split(",") if name.strip()],
        help=f"comma-separated sections: {', '.join(SECTIONS)} (writes: POST and the mix)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    issuer = trust_a_local_issuer(run.locations()[2])
    try:
        return _sections(args)
    finally:
        issuer.stop()


def _sections(args: argparse.Namespace) -> int:
    if not args.only:
        return run.main()
    unknown = [name for name in args.only if name not in SECTIONS]
    if unknown:
        _parser().error(f"unknown sections: {', '.join(unknown)}")
    server_url, redis_url, work = run.locations()
    database_url = run.prepare_database(server_url)
    results: dict[str, Any] = {}
    try:
        for name in args.only:
            results[name] = SECTIONS[name](database_url, redis_url, work)
    finally:
        run.drop_database(server_url, database_url)
        Redis.from_url(redis_url).flushdb()
    (work / "partial.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0
