"""The worker as operators run it: real `python -m worker` processes, real SMTP."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from email.utils import parseaddr
from pathlib import Path

from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import select, text

from app.factory import create_app
from app.features.users.jobs import send_welcome_email
from app.foundation.config import Settings
from app.foundation.mail import create_mailer
from app.jobs.context import JobContext, install_job_context
from app.jobs.outbox import OutboxMessage
from app.web.services import services
from app.web.sessions import Database
from devtools.processes import ServerProcess, descendants, free_port, kill_tree, scrape, worker
from devtools.smtp_sink import SmtpSink
from tests.conftest import worker_env
from tests.support.factories import create_user


def _log_lines(process: ServerProcess) -> list[dict[str, object]]:
    return [json.loads(line) for line in process.output().splitlines() if line.startswith("{")]


def _sent_at(db: Database, user_id: str) -> object:
    with db.engine.connect() as connection:
        return connection.execute(
            text("SELECT welcome_email_sent_at FROM users WHERE id = :id"), {"id": user_id}
        ).scalar_one()


def _outbox(db: Database) -> list[OutboxMessage]:
    with db.sessionmaker() as session:
        return list(session.scalars(select(OutboxMessage)))


def test_welcome_email_is_sent_once_with_text_html_and_message_id(
    client: FlaskClient,
    db: Database,
    redis_db: Redis,
    sink: SmtpSink,
    settings: Settings,
    tmp_path: Path,
) -> None:
    response = client.post(
        "/api/v1/users",
        json={"email": "wendy@example.com", "name": "Wendy <W>"},
        headers={"X-Request-ID": "req-welcome-1"},
    )
    user_id = response.json["id"]  # type: ignore[index]

    process = worker(
        worker_env(settings, tmp_path, SMTP_URL=sink.url), tmp_path / "w.log", "--burst"
    )
    assert process.process.wait(60) == 0, process.output()
    process.kill()

    [message] = sink.wait_for(1, timeout=5)
    assert message["To"] == '"Wendy <W>" <wendy@example.com>'
    assert message["Message-ID"] == f"<welcome.{user_id}@example.com>"
    assert message.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part.get_content() for part in message.iter_parts()}
    assert "Hello Wendy <W>" in parts["text/plain"]
    assert "Hello Wendy &lt;W&gt;" in parts["text/html"]
    assert _sent_at(db, user_id) is not None
    assert all(row.completed_at is not None for row in _outbox(db))
    job_lines = [line for line in _log_lines(process) if line.get("job_id")]
    assert job_lines
    assert all(line["request_id"] == "req-welcome-1" for line in job_lines)

    # Running the job again (a retry, a duplicate enqueue) sends nothing more.
    install_job_context(
        JobContext(
            settings.model_copy(update={"smtp_url": None}),
            db.engine,
            db.sessionmaker,
            create_mailer(settings.model_copy(update={"smtp_url": None})),
        )
    )
    try:
        assert send_welcome_email(user_id) == "skipped: already sent"
        assert send_welcome_email(str(uuid.uuid4())) == "skipped: user deleted"
    finally:
        install_job_context(None)
    assert len(sink.messages) == 1


def test_sigterm_mid_job_finishes_the_job_and_exits_0(
    client: FlaskClient, db: Database, redis_db: Redis, settings: Settings, tmp_path: Path
) -> None:
    """The worker runs jobs in its own process (SimpleWorker). Older RQ let that worker
    kill the running job on SIGTERM (rq #523); this is the check that the RQ we lock
    finishes it."""
    slow = SmtpSink(free_port(), delay=2.0).start()
    try:
        user = create_user(client)
        process = worker(worker_env(settings, tmp_path, SMTP_URL=slow.url), tmp_path / "w.log")
        assert slow.recorder.receiving.wait(30), process.output()

        process.process.send_signal(signal.SIGTERM)

        assert process.process.wait(30) == 0, process.output()
        process.kill()
        assert len(slow.messages) == 1
        assert _sent_at(db, user["id"]) is not None
        assert any("warm shut down" in str(line["message"]) for line in _log_lines(process))
    finally:
        slow.stop()


def test_sigkill_mid_job_is_retried_by_a_fresh_worker_and_sent_once(
    client: FlaskClient, db: Database, redis_db: Redis, settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    slow = SmtpSink(port, delay=30.0).start()
    user = create_user(client)
    env = worker_env(settings, tmp_path, SMTP_URL=slow.url)
    first = worker(env, tmp_path / "first.log")
    assert slow.recorder.receiving.wait(30), first.output()

    kill_tree(first.process.pid)  # worker, work horse and scheduler: a node loss
    first.process.wait()
    first.kill()
    slow.stop()
    sink = SmtpSink(port).start()
    second = worker(env, tmp_path / "second.log")
    try:
        # Found abandoned after its heartbeat expires, retried once the killed
        # worker's scheduler lock (RQ: 60 s + interval) lapses.
        messages = sink.wait_for(1, timeout=120)
        time.sleep(2)
        assert len(messages) == 1, second.output()
        assert len(sink.messages) == 1
        assert _sent_at(db, user["id"]) is not None
        assert second.terminate() == 0
    finally:
        second.kill()
        sink.stop()


def test_smtp_down_is_retried_with_backoff_then_delivered(
    client: FlaskClient, db: Database, redis_db: Redis, settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    create_user(client)
    process = worker(
        worker_env(settings, tmp_path, SMTP_URL=f"smtp://127.0.0.1:{port}"), tmp_path / "w.log"
    )
    try:
        deadline = time.monotonic() + 30
        while "scheduled for retry" not in process.output():  # nothing listens yet
            assert time.monotonic() < deadline, process.output()
            time.sleep(0.1)
        sink = SmtpSink(port).start()
        try:
            assert len(sink.wait_for(1, timeout=30)) == 1, process.output()
        finally:
            sink.stop()
        assert process.terminate() == 0
    finally:
        process.kill()
    assert any("retry" in str(line["message"]).lower() for line in _log_lines(process))


def test_exhausted_job_lands_in_failed_registry_and_can_be_requeued(
    db: Database, redis_db: Redis, settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    app = create_app(settings.model_copy(update={"job_retry_max": 1}))
    user = create_user(app.test_client())
    env = worker_env(settings, tmp_path, SMTP_URL=f"smtp://127.0.0.1:{port}")
    run = worker(env, tmp_path / "w.log")
    try:
        deadline = time.monotonic() + 30
        failed: list[dict[str, object]] = []
        while not failed and time.monotonic() < deadline:
            time.sleep(0.2)
            failed = services(app).jobs.failed_jobs(settings.queue_names)
        assert run.terminate() == 0
    finally:
        run.kill()
    assert len(failed) == 1
    assert failed[0]["func"] == "app.features.users.jobs.send_welcome_email"

    listing = worker(env, tmp_path / "list.log", "failed", "list")
    assert listing.process.wait(30) == 0
    listing.kill()
    assert str(failed[0]["id"]) in listing.output()

    sink = SmtpSink(port).start()
    try:
        requeue = worker(env, tmp_path / "rq.log", "failed", "requeue", str(failed[0]["id"]))
        assert requeue.process.wait(30) == 0, requeue.output()
        requeue.kill()
        deliver = worker(env, tmp_path / "w3.log", "--burst")
        assert deliver.process.wait(60) == 0
        deliver.kill()
        assert len(sink.wait_for(1, timeout=10)) == 1
    finally:
        sink.stop()
    assert _sent_at(db, user["id"]) is not None
    services(app).close()


def test_check_reports_a_fresh_heartbeat_only_while_the_worker_runs(
    db: Database, redis_db: Redis, settings: Settings, tmp_path: Path
) -> None:
    env = worker_env(settings, tmp_path, WORKER_LIVENESS_SECONDS="5")

    def check() -> int:
        probe = worker(env, tmp_path / "check.log", "check")
        code = probe.process.wait(30)
        probe.kill()
        return code

    assert check() == 1
    process = worker(env, tmp_path / "w.log")
    try:
        deadline = time.monotonic() + 20
        while check() != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert check() == 0
        assert process.terminate() == 0
    finally:
        process.kill()
    time.sleep(5.5)
    assert check() == 1


def test_worker_metrics_count_jobs_and_queues(
    client: FlaskClient,
    db: Database,
    redis_db: Redis,
    sink: SmtpSink,
    settings: Settings,
    tmp_path: Path,
) -> None:
    create_user(client)
    create_user(client)
    metrics_port = free_port()
    env = worker_env(settings, tmp_path, SMTP_URL=sink.url, WORKER_METRICS_PORT=str(metrics_port))
    process = worker(env, tmp_path / "w.log")
    try:
        sink.wait_for(2, timeout=30)
        deadline = time.monotonic() + 10
        job = (("job_kind", "app.features.users.jobs.send_welcome_email"),)
        samples = scrape(metrics_port)
        while samples.get(("rq_jobs_finished_total", job)) != 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            samples = scrape(metrics_port)
        assert process.terminate() == 0
    finally:
        process.kill()
    assert samples[("rq_jobs_started_total", job)] == 2
    assert samples[("rq_jobs_finished_total", job)] == 2
    assert samples[("rq_job_duration_seconds_count", job)] == 2
    assert samples[("rq_queue_depth", (("queue", "default"),))] == 0
    assert samples[("rq_failed_jobs", (("queue", "default"),))] == 0
    assert samples[("rq_worker_last_heartbeat_timestamp_seconds", ())] > time.time() - 60


def test_worker_processes_share_the_queues_sum_their_metrics_and_stop_together(
    client: FlaskClient,
    db: Database,
    redis_db: Redis,
    sink: SmtpSink,
    settings: Settings,
    tmp_path: Path,
) -> None:
    users = [create_user(client) for _ in range(20)]
    metrics_port = free_port()
    env = worker_env(
        settings,
        tmp_path,
        SMTP_URL=sink.url,
        WORKER_PROCESSES="2",
        WORKER_METRICS_PORT=str(metrics_port),
        TMPDIR=str(tmp_path),
    )
    supervisor = worker(env, tmp_path / "w.log")
    try:
        delivered = sink.wait_for(20, timeout=60)
        children = _wait_for_children(supervisor.process.pid, 2)
        probe = worker(env, tmp_path / "check.log", "check")
        checked = probe.process.wait(30)
        probe.kill()

        os.kill(children[0], signal.SIGKILL)  # a crashed child is replaced
        replaced = _wait_for_children(supervisor.process.pid, 2, without=children[0])
        samples = scrape(metrics_port)
        started = descendants(supervisor.process.pid)
        assert supervisor.terminate() == 0, supervisor.output()
    finally:
        supervisor.kill()

    recipients = sorted(parseaddr(str(message["To"]))[1] for message in delivered)
    assert recipients == sorted(user["email"] for user in users)  # each once
    assert checked == 0
    assert children[0] not in replaced
    job = (("job_kind", "app.features.users.jobs.send_welcome_email"),)
    assert samples[("rq_jobs_finished_total", job)] == 20  # summed over the processes
    assert samples[("rq_queue_depth", (("queue", "default"),))] == 0
    assert not [pid for pid in started if _running(pid)]
    assert not list(tmp_path.glob("worker-metrics-*"))


def _children(pid: int) -> list[int]:
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").glob("*")
        for child in (task / "children").read_text().split()
    ]


def _wait_for_children(pid: int, count: int, without: int = 0) -> list[int]:
    deadline = time.monotonic() + 20
    found = [child for child in _children(pid) if child != without]
    while len(found) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        found = [child for child in _children(pid) if child != without]
    assert len(found) == count, found
    return found


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_a_sigkilled_worker_leaves_no_process_and_its_metrics_port_to_the_next(
    settings: Settings, db: Database, redis_db: Redis, tmp_path: Path
) -> None:
    """Issue 18: RQ's forked scheduler outlived a SIGKILLed worker under PID 1, kept its
    Redis connections and its metrics port, and the next worker failed to bind it."""
    port = free_port()
    env = worker_env(settings, tmp_path, WORKER_METRICS_PORT=str(port))
    first = worker(env, tmp_path / "w1.log")
    try:
        deadline = time.monotonic() + 30
        while ("rq_worker_last_heartbeat_timestamp_seconds", ()) not in _scrape_or_empty(port):
            assert time.monotonic() < deadline, first.output()
            time.sleep(0.1)
        children = descendants(first.process.pid)
        os.kill(first.process.pid, signal.SIGKILL)  # the OOM killer: this process only
        first.process.wait()
        second = worker(env, tmp_path / "w2.log")
        try:
            deadline = time.monotonic() + 30
            while not _scrape_or_empty(port):
                assert second.process.poll() is None, second.output()
                assert time.monotonic() < deadline, second.output()
                time.sleep(0.1)
            assert second.terminate() == 0
        finally:
            second.kill()
    finally:
        first.kill()
    assert children == [], "the worker has no child process to orphan"
    assert "Address already in use" not in second.output()


def _scrape_or_empty(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        return scrape(port)
    except OSError:
        return {}
