"""Faults the way production delivers them, each under a stream of sign-ups: the OOM
killer's SIGKILL of one process (the worker, a supervised child, the supervisor), a
worker frozen then killed while idle, and PostgreSQL or Redis frozen for 20 s.

After each, what the system believes is compared with what is true: every user row in
the database got exactly one email at a real SMTP server, within a bound; no request
took longer than its bound; and no process of the worker is left behind.

The bounds, from the settings these workers run with (tests/conftest.py `worker_env`):
a job popped by a process that died is put back after STRANDED_AFTER_SECONDS (10 s) by
the next housekeeping (1 s); a job killed mid-run is found abandoned after two missed
beats (2 s) at the next maintenance (1 s) and retried after 1 s. So delivery takes at
most the outage plus 20 s. A request is bounded by REQUEST_TIMEOUT (5 s here, to keep
the run short; 10 s by default) plus the time to connect.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis

from devtools.embedded import freeze, thaw
from devtools.processes import ServerProcess, descendants, free_port, worker
from devtools.smtp_sink import SmtpSink
from tests.conftest import make_settings, worker_env
from tests.reliability.conftest import OwnedServers, Row, start_web
from tests.support.signups import (
    ProbeStream,
    SignupStream,
    users_in_database,
    wait_until_mailed,
    worst_delivery_seconds,
)

REQUEST_TIMEOUT = 5.0
REQUEST_BOUND = REQUEST_TIMEOUT + 2.0
RECOVERY_BOUND = 20.0
OUTAGE = 20.0
READINESS_PROBE_TIMEOUT = 3.0
LIVENESS_PROBE_TIMEOUT = 5.0


@dataclass
class Stack:
    servers: OwnedServers
    tmp_path: Path
    port: int
    sink: SmtpSink
    redis: Redis
    workers: list[ServerProcess]

    def start_worker(self, processes: int = 1) -> ServerProcess:
        settings = make_settings(
            database_url=self.servers.database_url, redis_url=self.servers.redis_url
        )
        env = worker_env(
            settings,
            self.tmp_path,
            SMTP_URL=self.sink.url,
            WORKER_PROCESSES=str(processes),
            LOG_LEVEL="info",
        )
        live = self.live_workers()
        process = worker(env, self.tmp_path / f"worker-{len(self.workers)}.log")
        self.workers.append(process)
        deadline = time.monotonic() + 60
        while self.live_workers() < live + processes:
            assert time.monotonic() < deadline, process.output()
            time.sleep(0.1)
        return process

    def live_workers(self) -> int:
        return int(self.redis.scard("rq:workers"))


@pytest.fixture
def stack(servers: OwnedServers, tmp_path: Path) -> Iterator[Stack]:
    web, port = start_web(
        servers,
        tmp_path,
        REQUEST_TIMEOUT=str(REQUEST_TIMEOUT),
        # The limiter on, as in production (its limit out of the stream's reach), so a
        # frozen Redis shows that it fails open within its own short timeout.
        RATE_LIMITS_ENABLED="true",
        RATE_LIMIT_WRITES="100000/minute",
    )
    sink = SmtpSink(free_port()).start()
    redis = Redis.from_url(servers.redis_url)
    stack = Stack(servers, tmp_path, port, sink, redis, [])
    try:
        yield stack
    finally:
        for process in stack.workers:
            process.kill()
        web.kill()
        sink.stop()
        redis.close()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_gone(pids: list[int], timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)
    return [pid for pid in pids if _alive(pid)]


def _process_tree(process: ServerProcess) -> list[int]:
    return [process.process.pid, *descendants(process.process.pid)]


def _run(
    stack: Stack,
    report: list[Row],
    scenario: str,
    fault: Callable[[Stack, ServerProcess], float],
    *,
    processes: int = 1,
) -> None:
    """Start the worker, stream sign-ups, deliver the fault (which returns how long the
    outage lasted), then judge: mail, request times, and processes after a clean stop."""
    first = stack.start_worker(processes)
    with SignupStream(stack.port) as stream, ProbeStream(stack.port) as probes:
        time.sleep(2)
        outage = fault(stack, first)
        time.sleep(3)
    users = users_in_database(stack.servers.database_url, stream.prefix)
    mailed = wait_until_mailed(stack.sink, users, timeout=outage + RECOVERY_BOUND + 30)
    running = [pid for process in stack.workers for pid in _process_tree(process)]
    for process in stack.workers:
        if process.process.poll() is None:
            assert process.terminate() == 0, process.output()
    left_behind = _wait_gone(running)

    lost = users - set(mailed)
    duplicated = {address for address, count in mailed.items() if count > 1}
    delivery = worst_delivery_seconds(stack.sink, stream)
    report.append(
        Row(
            f"{scenario} (worst delivery {delivery:.1f} s, worst request"
            f" {stream.worst_seconds:.2f} s, worst /readyz {probes.worst['/readyz']:.2f} s)",
            sent=len(stream.answers),
            succeeded=sum(status == "201" for status, _ in stream.answers),
            failed=sum(status != "201" for status, _ in stream.answers),
            jobs_enqueued=len(users),
            jobs_done=len(users) - len(lost),
            lost=len(lost),
        )
    )
    assert not lost, f"{len(lost)} of {len(users)} never mailed"
    assert not duplicated, f"mailed twice: {sorted(duplicated)[:5]}"
    assert len(users) >= 10
    assert delivery <= outage + RECOVERY_BOUND
    assert stream.worst_seconds <= REQUEST_BOUND, sorted(stream.answers, key=lambda a: -a[1])[:3]
    unexpected = {status for status, _ in stream.answers} - {"201", "503"}
    assert not unexpected, unexpected
    assert left_behind == [], "processes of the worker outlived a clean stop"
    # Within the Kubernetes probes' timeoutSeconds (deploy/k8s/api-deployment.yaml).
    assert probes.worst["/readyz"] < READINESS_PROBE_TIMEOUT, probes.worst
    assert probes.worst["/healthz"] < LIVENESS_PROBE_TIMEOUT, probes.worst


def _sigkill_and_replace(victims: Callable[[ServerProcess], list[int]]) -> Callable[..., float]:
    """SIGKILL some processes of the worker; every process that was below them must go
    too; then a replacement starts, as Kubernetes or systemd would start one."""

    def fault(stack: Stack, process: ServerProcess) -> float:
        started = time.monotonic()
        targets = victims(process)
        below = [pid for target in targets for pid in descendants(target)]
        for target in targets:
            os.kill(target, signal.SIGKILL)
        assert _wait_gone(below) == [], "a child outlived its SIGKILLed parent"
        if process.process.pid in targets:
            process.process.wait(10)
            stack.start_worker(1)
        return time.monotonic() - started

    return fault


def test_sigkill_of_the_worker_process(stack: Stack, report: list[Row]) -> None:
    """The OOM killer's SIGKILL of a one-process worker. It has no child to orphan:
    RQ's scheduling runs in its own loop (worker/scheduling.py), not a forked process."""

    def victims(process: ServerProcess) -> list[int]:
        assert descendants(process.process.pid) == [], "no scheduler process to orphan"
        return [process.process.pid]

    _run(stack, report, "SIGKILL of the worker", _sigkill_and_replace(victims))


def test_sigkill_of_a_supervised_child(stack: Stack, report: list[Row]) -> None:
    def victims(process: ServerProcess) -> list[int]:
        return descendants(process.process.pid)[:1]

    def fault(stack: Stack, process: ServerProcess) -> float:
        live = stack.live_workers()
        outage = _sigkill_and_replace(victims)(stack, process)
        # The supervisor's replacement registers under a new name at once (the dead one's
        # registration lingers until its TTL: one more live worker meanwhile).
        deadline = time.monotonic() + 10
        while stack.live_workers() < live + 1:
            assert time.monotonic() < deadline, "the replacement child never registered"
            time.sleep(0.1)
        return outage

    _run(stack, report, "SIGKILL of a supervised child", fault, processes=2)


def test_sigkill_of_the_supervisor(stack: Stack, report: list[Row]) -> None:
    def victims(process: ServerProcess) -> list[int]:
        return [process.process.pid]

    _run(stack, report, "SIGKILL of the supervisor", _sigkill_and_replace(victims), processes=2)


def test_sigstop_then_sigkill_of_an_idle_worker(stack: Stack, report: list[Row]) -> None:
    """Issue 18's reproduction: Redis hands a job id to the frozen worker's blocked pop."""

    def fault(stack: Stack, process: ServerProcess) -> float:
        started = time.monotonic()
        process.process.send_signal(signal.SIGSTOP)
        time.sleep(3)
        process.process.send_signal(signal.SIGKILL)
        process.process.wait()
        stack.start_worker(1)
        return time.monotonic() - started

    _run(stack, report, "SIGSTOP then SIGKILL of an idle worker", fault)


def _frozen(server: Callable[[OwnedServers], list[int]]) -> Callable[..., float]:
    def fault(stack: Stack, _process: ServerProcess) -> float:
        pids = server(stack.servers)
        freeze(pids)
        try:
            time.sleep(OUTAGE)
        finally:
            thaw(pids)
        return OUTAGE

    return fault


def test_postgres_frozen_for_20_s(stack: Stack, report: list[Row]) -> None:
    _run(stack, report, "PostgreSQL SIGSTOPped 20 s", _frozen(lambda s: s.postgres.pids()))


def test_redis_frozen_for_20_s(stack: Stack, report: list[Row]) -> None:
    _run(stack, report, "Redis SIGSTOPped 20 s", _frozen(lambda s: s.redis.pids()))
