"""The benchmark: the service with everything on, the service with instrumentation off,
and a bare Flask + SQLAlchemy baseline, on the same Gunicorn settings, alternated and
repeated in one run so drift cancels out; plus jobs, exports, startup and memory.

Results go to bench/results/latest.json and bench/results/latest.md. Timings live here,
never in the test suite.
"""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from redis import Redis
from rq import Queue

from bench.devstack import devstack_benchmarks
from bench.job_throughput import job_benchmarks
from devtools.otlp_receiver import OtlpReceiver
from devtools.processes import TOKEN_VARIABLE, descendants, free_port, http_call

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WRK = ROOT / "bench" / "wrk"
SCENARIOS = {
    "GET /api/v1/users/{id}": "get_user.lua",
    "POST /api/v1/users": "create_user.lua",
    "GET /api/v1/users?limit=50": None,
    "mixed 90% GET / 10% POST": "mixed.lua",
}
# The baseline's POST is the naive write (INSERT, COMMIT, RQ enqueue): see baseline_app.py.
WRITE_SCENARIOS = ("POST /api/v1/users", "mixed 90% GET / 10% POST")
DURATION = int(os.environ.get("BENCH_SECONDS", "8"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
CONNECTIONS, THREADS, WORKERS = 16, 2, 4


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def prepare_database(server_url: str) -> str:
    name = f"users_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_libpq(server_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = server_url.rsplit("/", 1)[0] + f"/{name}"
    env = {**os.environ, "APP_ENV": "test", "DATABASE_URL": url, "REDIS_URL": "redis://x"}
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    return url


def drop_database(server_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(_libpq(server_url), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed_users(url: str, count: int) -> list[str]:
    with psycopg.connect(_libpq(url)) as connection:
        connection.execute("TRUNCATE users CASCADE")
        connection.execute(
            "INSERT INTO users (id, email, name, version, created_at, updated_at) "
            "SELECT gen_random_uuid(), 'seed' || n || '@example.com', 'Seed user ' || n, 1, "
            "now() + n * interval '1 microsecond', now() FROM generate_series(1, %s) n",
            (count,),
        )
        rows = connection.execute("SELECT id FROM users LIMIT 1000").fetchall()
    return [str(row[0]) for row in rows]


def start_server(kind: str, env: dict[str, str], log: Path) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
    if kind == "baseline":
        argv.append("bench.baseline_app:app")
    elif kind == "auth off":
        argv.append("bench.auth_off_app:app")
    full_env = {
        **os.environ,
        **env,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "METRICS_PORT": str(free_port()),
        "WEB_CONCURRENCY": str(WORKERS),
        "SHUTDOWN_DRAIN_SECONDS": "0",
    }
    process = subprocess.Popen(
        argv, env=full_env, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if http_call("GET", port, "/api/v1/users?limit=1")[0] == 200:
                return Server(process, port)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{kind} did not start: see {log}")


def _script(name: str | None, ids: list[str], work: Path) -> list[str]:
    report = (WRK / "report.lua").read_text()
    body = (WRK / name).read_text() if name else ""
    ids_table = "IDS = {" + ",".join(f'"{i}"' for i in ids) + "}\n"
    # A nonce per wrk run: the POST scripts build unique emails from it.
    run = f'RUN = "{uuid.uuid4().hex[:12]}"\n'
    # Every request carries the bearer token, as every client of the API must.
    token = f'wrk.headers["Authorization"] = "Bearer {os.environ[TOKEN_VARIABLE]}"\n'
    path = work / f"{name or 'plain'}.lua"
    path.write_text(ids_table + run + token + body + "\n" + report)
    return ["-s", str(path)]


def wrk(port: int, scenario: str, ids: list[str], work: Path, seconds: int) -> dict[str, Any]:
    path = "/api/v1/users?limit=50" if SCENARIOS[scenario] is None else "/"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = subprocess.run(
        [
            "wrk",
            f"-t{THREADS}",
            f"-c{CONNECTIONS}",
            f"-d{seconds}s",
            "--latency",
            *_script(SCENARIOS[scenario], ids, work),
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    result["wrk_cpu_percent"] = 100 * cpu / (result["duration_us"] / 1e6)
    return result


def http_benchmarks(
    database_url: str,
    redis_url: str,
    work: Path,
    scenarios: tuple[str, ...] = tuple(SCENARIOS),
    configurations: tuple[str, ...] | None = None,
    repeats: int = REPEATS,
) -> dict[str, Any]:
    receiver = OtlpReceiver().start()
    common = {
        "APP_ENV": "production",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SMTP_URL": "smtp://127.0.0.1:1",
        "LOG_LEVEL": "info",
    }
    configs = {
        "baseline": ("baseline", {**common, "METRICS_ENABLED": "false"}),
        "service, everything on": (
            "service",
            {
                **common,
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_TRACES_SAMPLER_RATIO": "0.01",
            },
        ),
        "service, instrumentation off": ("service", {**common, "METRICS_ENABLED": "false"}),
        # Everything on but the bearer check: the cost of authentication alone.
        "service, auth off": (
            "auth off",
            {
                **common,
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_TRACES_SAMPLER_RATIO": "0.01",
            },
        ),
    }
    if configurations is not None:
        configs = {name: configs[name] for name in configurations}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        c: {s: [] for s in scenarios} for c in configs
    }
    ids = seed_users(database_url, 10_000)
    order = list(configs)
    for repeat in range(repeats):
        for name in order[repeat % len(order) :] + order[: repeat % len(order)]:
            kind, env = configs[name]
            server = start_server(kind, env, work / f"{kind}.log")
            try:
                wrk(server.port, "GET /api/v1/users/{id}", ids, work, 2)  # warm-up
                for scenario in scenarios:
                    runs[name][scenario].append(wrk(server.port, scenario, ids, work, DURATION))
                    print(
                        f"{name:32} {scenario:30} {runs[name][scenario][-1]['rps']:8.0f} req/s",
                        flush=True,
                    )
            finally:
                server.stop()
                # Both apps enqueue a welcome job per POST and no worker runs here.
                Redis.from_url(redis_url).flushdb()
    receiver.stop()
    return {name: {s: _median(r) for s, r in found.items()} for name, found in runs.items()}


def _median(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rps": statistics.median(r["rps"] for r in results),
        "p50_ms": statistics.median(r["p50_ms"] for r in results),
        "p99_ms": statistics.median(r["p99_ms"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "wrk_cpu_percent": statistics.median(r["wrk_cpu_percent"] for r in results),
    }


def export_benchmarks(database_url: str, redis_url: str) -> dict[str, Any]:
    redis = Redis.from_url(redis_url)
    results: dict[str, Any] = {}
    env = {
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LOG_LEVEL": "warning",
        "WORKER_METRICS_PORT": "0",
        "WORKER_QUEUES": "exports",
    }
    for rows in (100_000, 1_000_000):
        redis.flushdb()
        seed_users(database_url, rows)
        export_id = uuid.uuid4()
        with psycopg.connect(_libpq(database_url)) as connection:
            connection.execute(
                "INSERT INTO exports (id, status, rows_done, chunk_count, expires_at) "
                "VALUES (%s, 'queued', 0, 0, now() + interval '1 day')",
                (export_id,),
            )
        Queue("exports", connection=redis).enqueue(
            "app.features.exports.jobs.run_export", kwargs={"export_id": str(export_id)}
        )
        argv = [sys.executable, "-m", "worker", "--burst"]
        process = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peak = 0
        while process.poll() is None:
            for pid in [process.pid, *descendants(process.pid)]:
                peak = max(peak, _rss(pid))
            time.sleep(0.05)
        with psycopg.connect(_libpq(database_url)) as connection:
            status, done, seconds = connection.execute(  # type: ignore[misc]
                "SELECT status, rows_done, extract(epoch FROM finished_at - started_at) "
                "FROM exports WHERE id = %s",
                (export_id,),
            ).fetchone()
        if status != "finished" or done != rows:
            raise RuntimeError(f"export ended {status} with {done} of {rows} rows")
        results[f"export {rows:,} rows: rows/s"] = rows / float(seconds)
        results[f"export {rows:,} rows: peak RSS of worker and horse (MiB)"] = peak / 2**20
    return results


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (FileNotFoundError, ProcessLookupError):
        return 0


def _pss(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def startup_and_memory(database_url: str, redis_url: str, work: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    common = {
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LOG_LEVEL": "warning",
    }
    for preload in ("false", "true"):
        started = time.perf_counter()
        port = free_port()
        env = {
            **os.environ,
            **common,
            "GUNICORN_PRELOAD_APP": preload,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "METRICS_PORT": str(free_port()),
            "WEB_CONCURRENCY": str(WORKERS),
            "SHUTDOWN_DRAIN_SECONDS": "0",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
            env=env,
            cwd=ROOT,
            stdout=(work / "startup.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        while True:
            try:
                if http_call("GET", port, "/readyz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.02)
        results[f"start to /readyz 200 (s), preload_app={preload}"] = time.perf_counter() - started
        for _ in range(50):
            http_call("GET", port, "/api/v1/users?limit=5")
        workers = descendants(process.pid)
        results[f"RSS per web worker (MiB), preload_app={preload}"] = (
            statistics.mean(_rss(pid) for pid in workers) / 2**20
        )
        results[f"PSS per web worker (MiB), preload_app={preload}"] = (
            statistics.mean(_pss(pid) for pid in workers) / 2**20
        )
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    job = Queue("default", connection=redis).enqueue("bench.jobs.noop")
    started = time.perf_counter()
    worker = subprocess.Popen(
        [sys.executable, "-m", "worker"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={
            **os.environ,
            **common,
            "WORKER_METRICS_PORT": "0",
            "WORKER_QUEUES": "default",
            "WORKER_HEARTBEAT_FILE": str(work / "hb"),
        },
    )
    while job.get_status(refresh=True) != "finished":
        time.sleep(0.01)
    results["worker start to first job done (s)"] = time.perf_counter() - started
    worker.send_signal(signal.SIGTERM)
    worker.wait(60)
    return results


def write_results(results: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    http = results["http"]
    lines = [
        f"Machine: {results['machine']}; wrk -t{THREADS} -c{CONNECTIONS}, {DURATION} s per "
        f"run, {REPEATS} alternated repeats (medians), {WORKERS} sync workers. The baseline "
        "is a bare Flask + SQLAlchemy app; its POST is the naive write: INSERT, COMMIT, "
        "then an RQ enqueue of the welcome job, no outbox.",
        "",
        "| scenario | configuration | req/s | p50 ms | p99 ms | errors | wrk CPU % |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario in SCENARIOS:
        for config, scenarios in http.items():
            r = scenarios[scenario]
            lines.append(
                f"| {scenario} | {config} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
                f"{r['p99_ms']:.2f} | {r['errors']} | {r['wrk_cpu_percent']:.0f} |"
            )
    lines += [
        "",
        "| scenario | full / baseline req/s | full / baseline p99 | full / off req/s "
        "| auth on / auth off req/s |",
        "|---|---|---|---|---|",
    ]
    for scenario, ratio in results["ratios"].items():
        lines.append(
            f"| {scenario} | {ratio['throughput_vs_baseline']:.2f} | "
            f"{ratio['p99_vs_baseline']:.2f} | {ratio['throughput_vs_off']:.2f} | "
            f"{ratio['throughput_auth_on_vs_off']:.2f} |"
        )
    lines += ["", "| measurement | value |", "|---|---|"]
    for key, value in results["other"].items():
        lines.append(f"| {key} | {value:.2f} |")
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def compare(http: dict[str, Any]) -> dict[str, Any]:
    """The service with everything on against the baseline and against itself off."""
    full, baseline, off, no_auth = (
        http[c]
        for c in (
            "service, everything on",
            "baseline",
            "service, instrumentation off",
            "service, auth off",
        )
    )
    return {
        scenario: {
            "throughput_vs_baseline": full[scenario]["rps"] / baseline[scenario]["rps"],
            "p99_vs_baseline": full[scenario]["p99_ms"] / baseline[scenario]["p99_ms"],
            "throughput_vs_off": full[scenario]["rps"] / off[scenario]["rps"],
            "throughput_auth_on_vs_off": full[scenario]["rps"] / no_auth[scenario]["rps"],
        }
        for scenario in full
    }


def locations() -> tuple[str, str, Path]:
    """The PostgreSQL server (a database is created on it per run), the bench's own Redis
    database (flushed between runs) and the work directory."""
    server_url = os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
    work = Path(os.environ.get("BENCH_WORK_DIR", "var/bench"))
    work.mkdir(parents=True, exist_ok=True)
    return server_url, redis_url, work


def main() -> int:
    server_url, redis_url, work = locations()
    database_url = prepare_database(server_url)
    try:
        http = http_benchmarks(database_url, redis_url, work)
        ratios = compare(http)
        user_id = seed_users(database_url, 1000)[0]
        RESULTS.mkdir(parents=True, exist_ok=True)
        profile = RESULTS / "profile-get-user.txt"
        subprocess.run(
            [sys.executable, "-m", "bench.profile", database_url, redis_url, user_id, str(profile)],
            cwd=ROOT,
            check=True,
        )
        other = {
            **job_benchmarks(database_url, redis_url, work, start_server),
            **export_benchmarks(database_url, redis_url),
            **startup_and_memory(database_url, redis_url, work),
            **devstack_benchmarks(work),
        }
    finally:
        drop_database(server_url, database_url)
        Redis.from_url(redis_url).flushdb()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    write_results({"machine": machine, "http": http, "ratios": ratios, "other": other})
    return 0
