"""Deploys, crashes and outages under load: no failed request, no lost job."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from devtools.processes import descendants, free_port, http_call, kill_tree, worker
from devtools.smtp_sink import SmtpSink
from tests.conftest import make_settings, worker_env
from tests.reliability.conftest import OwnedServers, Row, start_web
from tests.support.load import BalancedLoad

LOAD_CLIENTS = 4


def test_sigterm_under_load_drains_without_a_failed_request(
    servers: OwnedServers, tmp_path: Path, report: list[Row]
) -> None:
    """The client behaves as a load balancer: it polls /readyz (every 10 ms here, to
    measure how fast it flips) and stops sending 1 s after its first 503."""
    web, port = start_web(servers, tmp_path, SHUTDOWN_DRAIN_SECONDS="2")
    try:
        with BalancedLoad(port, LOAD_CLIENTS) as load:
            time.sleep(1)
            signalled = time.monotonic()
            web.process.send_signal(signal.SIGTERM)
            # The balancer: poll /readyz, stop routing 1 s after the first 503.
            first_unready = None
            while first_unready is None and time.monotonic() - signalled < 5:
                if http_call("GET", port, "/readyz")[0] == 503:
                    first_unready = time.monotonic()
                else:
                    time.sleep(0.01)
            assert first_unready is not None, "readiness never failed"
            time.sleep(max(0.0, first_unready + 1 - time.monotonic()))
        exit_code = web.process.wait(30)
    finally:
        web.kill()

    flipped_ms = (first_unready - signalled) * 1000
    report.append(
        Row(
            f"SIGTERM under load (drain 2 s; /readyz 503 after {flipped_ms:.0f} ms)",
            load.sent,
            load.succeeded,
            len(load.failures),
        )
    )
    assert exit_code == 0, web.output()
    assert flipped_ms < 500
    assert load.failures == [], f"{len(load.failures)} of {load.sent} failed: {load.failures[:5]}"
    assert load.succeeded == load.sent > 50


def test_sighup_under_load_fails_no_request(
    servers: OwnedServers, tmp_path: Path, report: list[Row]
) -> None:
    web, port = start_web(servers, tmp_path)
    try:
        with BalancedLoad(port, LOAD_CLIENTS) as load:
            time.sleep(1)
            for _ in range(3):
                web.process.send_signal(signal.SIGHUP)
                time.sleep(1.5)
        assert web.terminate() == 0
    finally:
        web.kill()
    report.append(Row("SIGHUP x3 under load", load.sent, load.succeeded, len(load.failures)))
    assert load.failures == []


def test_max_requests_recycling_under_load_fails_no_request(
    servers: OwnedServers, tmp_path: Path, report: list[Row]
) -> None:
    web, port = start_web(
        servers, tmp_path, GUNICORN_MAX_REQUESTS="20", GUNICORN_MAX_REQUESTS_JITTER="5"
    )
    try:
        with BalancedLoad(port, LOAD_CLIENTS) as load:
            # Enough requests for every worker to recycle several times, however busy
            # the machine is (a fixed duration once gave too few on a loaded one).
            deadline = time.monotonic() + 60
            while load.sent < 150 and time.monotonic() < deadline:
                time.sleep(0.2)
        assert web.terminate() == 0
    finally:
        web.kill()
    report.append(Row("max_requests=20 recycling", load.sent, load.succeeded, len(load.failures)))
    assert load.failures == []
    assert load.sent >= 150


def test_sigkill_of_one_worker_fails_at_most_its_request(
    servers: OwnedServers, tmp_path: Path, report: list[Row]
) -> None:
    web, port = start_web(servers, tmp_path)
    try:
        with BalancedLoad(port, LOAD_CLIENTS) as load:
            time.sleep(1)
            os.kill(descendants(web.process.pid)[0], signal.SIGKILL)
            time.sleep(3)
        assert web.terminate() == 0
    finally:
        web.kill()
    report.append(Row("SIGKILL one web worker", load.sent, load.succeeded, len(load.failures)))
    assert len(load.failures) <= 1, load.failures


def test_postgres_outage_gives_only_503_and_recovers_within_5_s(
    servers: OwnedServers, tmp_path: Path, report: list[Row]
) -> None:
    web, port = start_web(servers, tmp_path)
    try:
        with BalancedLoad(port, LOAD_CLIENTS) as load:
            time.sleep(1)
            stopped = time.monotonic()
            servers.postgres.stop()
            assert http_call("GET", port, "/healthz")[0] == 200
            assert http_call("GET", port, "/readyz")[0] == 503
            time.sleep(5)
            servers.postgres.start()
            restarted = time.monotonic()
            time.sleep(6)
        assert web.terminate() == 0
    finally:
        web.kill()
    during = [o for t, o in load.outcomes if stopped <= t < restarted]
    after = [(t, o) for t, o in load.outcomes if t >= restarted]
    first_ok = next(t for t, o in after if o == "200")
    unexpected = [o for o in load.tally() if o not in ("200", "503")]
    tally = load.tally()
    report.append(
        Row(
            f"PostgreSQL down 5 s under load ({tally['503']} answered 503)",
            load.sent,
            load.succeeded,
            load.sent - tally["200"] - tally["503"],
        )
    )
    assert unexpected == [], load.tally()
    assert "503" in during
    assert first_ok - restarted < 5
    assert all(o == "200" for t, o in after if t > first_ok + 0.5)


def test_idempotent_post_retried_across_sighup_creates_one_user(
    servers: OwnedServers, tmp_path: Path, report: list[Row]
) -> None:
    web, port = start_web(servers, tmp_path)
    body = {"email": "retry@example.com", "name": "Retry"}
    headers = {"Idempotency-Key": "deploy-retry-1"}
    responses = []
    try:
        responses.append(http_call("POST", port, "/api/v1/users", body, headers=headers))
        web.process.send_signal(signal.SIGHUP)
        for _ in range(3):
            time.sleep(0.5)
            responses.append(http_call("POST", port, "/api/v1/users", body, headers=headers))
        users = http_call("GET", port, "/api/v1/users?limit=100")[2]["items"]
        assert web.terminate() == 0
    finally:
        web.kill()
    statuses = [status for status, _, _ in responses]
    report.append(
        Row("Idempotent POST x4 across SIGHUP", 4, statuses.count(201), 4 - statuses.count(201))
    )
    assert statuses == [201] * 4
    assert len({response[2]["id"] for response in responses}) == 1
    assert [user["email"] for user in users] == ["retry@example.com"]


def _worker_env(servers: OwnedServers, tmp_path: Path, smtp_url: str) -> dict[str, str]:
    settings = make_settings(database_url=servers.database_url, redis_url=servers.redis_url)
    return worker_env(settings, tmp_path, SMTP_URL=smtp_url)


def _create_users(port: int, count: int, prefix: str) -> int:
    created = 0
    for n in range(count):
        body = {"email": f"{prefix}{n}@example.com", "name": f"{prefix} {n}"}
        created += http_call("POST", port, "/api/v1/users", body)[0] == 201
    return created


def test_redis_outage_while_users_are_created_loses_no_email(
    servers: OwnedServers, tmp_path: Path, report: list[Row]
) -> None:
    web, port = start_web(servers, tmp_path)
    sink = SmtpSink(free_port()).start()
    try:
        servers.redis.stop()
        created = _create_users(port, 200, "outage")
        time.sleep(5)
        servers.redis.start()
        jobs = worker(_worker_env(servers, tmp_path, sink.url), tmp_path / "w.log")
        try:
            sink.wait_for(200, timeout=120)
            time.sleep(1)
            assert jobs.terminate() == 0
        finally:
            jobs.kill()
        assert web.terminate() == 0
    finally:
        web.kill()
        sink.stop()
    recipients = [str(message["To"]) for message in sink.messages]
    unique = len(set(recipients))
    report.append(
        Row(
            "Redis down 5 s while 200 users are created",
            200,
            created,
            200 - created,
            200,
            unique,
            200 - unique,
        )
    )
    assert created == 200
    assert len(recipients) == unique == 200


def test_worker_sigterm_and_sigkill_mid_job_lose_no_job(
    servers: OwnedServers, tmp_path: Path, report: list[Row]
) -> None:
    web, port = start_web(servers, tmp_path)
    port_smtp = free_port()
    slow = SmtpSink(port_smtp, delay=1.0).start()
    env = _worker_env(servers, tmp_path, slow.url)
    try:
        created = _create_users(port, 12, "jobs")
        first = worker(env, tmp_path / "w1.log")
        assert slow.recorder.receiving.wait(30)
        time.sleep(1.5)
        assert first.terminate() == 0  # warm: its current job finishes
        slow.recorder.receiving.clear()
        second = worker(env, tmp_path / "w2.log")
        assert slow.recorder.receiving.wait(30)
        time.sleep(0.5)
        kill_tree(second.process.pid)  # mid-job: that job is abandoned
        second.process.wait()
        second.kill()
        slow.stop()
        sink = SmtpSink(port_smtp).start()
        third = worker(env, tmp_path / "w3.log")
        try:
            sink.wait_for(12 - len(slow.messages), timeout=150)
            time.sleep(1)
            assert third.terminate() == 0
        finally:
            third.kill()
            sink.stop()
        assert web.terminate() == 0
    finally:
        web.kill()
    recipients = [str(m["To"]) for m in slow.messages + sink.messages]
    unique = len(set(recipients))
    report.append(
        Row(
            "worker SIGTERM then SIGKILL mid-job",
            12,
            created,
            12 - created,
            12,
            unique,
            12 - unique,
        )
    )
    assert unique == 12, "no job lost"
    assert len(recipients) == 12, "none sent twice"
