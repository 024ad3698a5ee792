"""Slow clients against the sync workers, with and without the shipped nginx in front.

Debian's nginx runs deploy/nginx/default.conf.template (rendered from its two variables)
before a real Gunicorn. 50 connections send a request head and 50 a request body, one
byte a second each, for 30 s (reopened whenever a server drops them), while /healthz
and a GET by id are asked in a loop. Through nginx nothing may fail; straight at Gunicorn
the same attack is run for contrast and its failures are only recorded.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devtools.processes import TOKEN_VARIABLE, ServerProcess, free_port, http_call
from tests.reliability.conftest import OwnedServers, Row, start_web
from tests.support.nginx import Nginx, nginx_binary

ATTACK_SECONDS = 30
SLOW_HEADS = SLOW_BODIES = 50
PROBE_TIMEOUT = 5.0
# Gunicorn believes X-Forwarded-For from nginx (127.0.0.1) only; clients come from .2.
CLIENT_ADDRESS = "127.0.0.2"


@pytest.fixture
def nginx() -> str:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed and cannot be (not root, or no apt-get)")
    return binary


class SlowClients:
    """The attack: every second one more byte on every connection, from one thread.

    A head never ends (a header value that keeps growing); a body announces 64 KiB and
    trickles it. A connection the server answers or closes is reopened at once, so the
    pressure holds whatever the server's timeouts.
    """

    HEAD = b"GET /healthz HTTP/1.1\r\nHost: api\r\nX-Slow: "
    BODY_HEAD = (
        b"POST /api/v1/users HTTP/1.1\r\nHost: api\r\n"
        b"Content-Type: application/json\r\nContent-Length: 65536\r\n\r\n"
    )

    def __init__(self, port: int) -> None:
        self.port = port
        self.opened = self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _open(self, head: bytes) -> socket.socket | None:
        try:
            connection = socket.create_connection(
                ("127.0.0.1", self.port), timeout=2, source_address=(CLIENT_ADDRESS, 0)
            )
            connection.sendall(head)
        except OSError:
            self.refused += 1
            return None
        self.opened += 1
        return connection

    def _run(self) -> None:
        heads = [self.HEAD[:1]] * SLOW_HEADS + [self.BODY_HEAD] * SLOW_BODIES
        sockets = [self._open(head) for head in heads]
        sent = [1] * len(heads)  # bytes of HEAD sent so far (slow heads only)
        while not self._stop.wait(1):
            for index, connection in enumerate(sockets):
                slow_head = index < SLOW_HEADS
                byte = (self.HEAD + b"a" * sent[index])[sent[index]] if slow_head else 32
                if connection is not None and self._alive(connection):
                    try:
                        connection.send(bytes([byte]))
                        sent[index] += 1
                        continue
                    except OSError:
                        pass
                if connection is not None:
                    connection.close()
                sockets[index], sent[index] = self._open(heads[index]), 1
        for connection in sockets:
            if connection is not None:
                connection.close()

    @staticmethod
    def _alive(connection: socket.socket) -> bool:
        """False once the server answered (a 408, say) or closed the connection."""
        readable, _, _ = select.select([connection], [], [], 0)
        return not readable

    def __enter__(self) -> SlowClients:
        self._thread.start()
        time.sleep(1)  # every connection opened before the probes start
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Probes:
    """/healthz and GET /api/v1/users/<id> asked in a loop, one thread each."""

    port: int
    user_path: str
    latencies: dict[str, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def _ask(self, path: str, stop: threading.Event) -> None:
        times = self.latencies.setdefault(path, [])
        while not stop.is_set():
            started = time.monotonic()
            try:
                status = http_call("GET", self.port, path, timeout=PROBE_TIMEOUT)[0]
                outcome = "200" if status == 200 else str(status)
            except (OSError, http.client.HTTPException) as exc:
                outcome = type(exc).__name__
            times.append(time.monotonic() - started)
            if outcome != "200":
                self.failures.append(f"{path}: {outcome}")
            stop.wait(0.05)

    @contextmanager
    def running(self) -> Iterator[Probes]:
        stop = threading.Event()
        threads = [
            threading.Thread(target=self._ask, args=(path, stop))
            for path in ("/healthz", self.user_path)
        ]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            stop.set()
            for thread in threads:
                thread.join()

    @property
    def sent(self) -> int:
        return sum(len(times) for times in self.latencies.values())

    def p99_ms(self, path: str) -> float:
        times = sorted(self.latencies[path])
        return times[math.ceil(0.99 * len(times)) - 1] * 1000


def attack(port: int, user_path: str) -> tuple[Probes, SlowClients]:
    probes = Probes(port, user_path)
    with SlowClients(port) as clients, probes.running():
        time.sleep(ATTACK_SECONDS)
    return probes, clients


def create_user(port: int) -> str:
    status, _, body = http_call(
        "POST", port, "/api/v1/users", {"email": "slow@example.com", "name": "Slow"}
    )
    assert status == 201, body
    return f"/api/v1/users/{body['id']}"


def test_slow_clients_wait_in_nginx_not_in_the_sync_workers(
    servers: OwnedServers, tmp_path: Path, report: list[Row], nginx: str
) -> None:
    web, gunicorn_port = start_web(servers, tmp_path, FORWARDED_ALLOW_IPS="127.0.0.1")
    try:
        user_path = create_user(gunicorn_port)
        proxy_port = free_port()
        with Nginx(nginx, tmp_path / "nginx", proxy_port, f"127.0.0.1:{gunicorn_port}"):
            proxied, proxied_clients = attack(proxy_port, user_path)
        direct, direct_clients = attack(gunicorn_port, user_path)
    finally:
        web.kill()

    attack_name = f"{SLOW_HEADS} slow heads + {SLOW_BODIES} slow bodies, 1 byte/s, 30 s"
    report.append(
        Row(
            f"{attack_name}, through nginx (/healthz p99 {proxied.p99_ms('/healthz'):.0f} ms; "
            f"{proxied_clients.opened} connections)",
            proxied.sent,
            proxied.sent - len(proxied.failures),
            len(proxied.failures),
        )
    )
    report.append(
        Row(
            f"{attack_name}, straight at Gunicorn, for contrast (/healthz p99 "
            f"{direct.p99_ms('/healthz'):.0f} ms; {direct_clients.opened} connections)",
            direct.sent,
            direct.sent - len(direct.failures),
            len(direct.failures),
        )
    )
    assert proxied.failures == [], proxied.failures[:10]
    assert all(len(times) > 100 for times in proxied.latencies.values()), proxied.sent
    assert proxied_clients.opened >= SLOW_HEADS + SLOW_BODIES
    assert proxied_clients.refused == 0


def raw_request(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One hand-made request from CLIENT_ADDRESS; status, headers, body."""
    with socket.create_connection(
        ("127.0.0.1", port), timeout=10, source_address=(CLIENT_ADDRESS, 0)
    ) as connection:
        connection.sendall(request)
        response = http.client.HTTPResponse(connection)
        response.begin()
        return response.status, dict(response.getheaders()), response.read()


def access_line(web: ServerProcess, request_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in web.output().splitlines():
            if request_id in line and '"request served"' in line:
                record: dict[str, object] = json.loads(line)
                return record
        time.sleep(0.1)
    raise AssertionError(f"no access line for {request_id}:\n{web.output()[-2000:]}")


def test_nginx_answers_problem_json_and_gunicorn_believes_only_its_forwarded_for(
    servers: OwnedServers, tmp_path: Path, nginx: str
) -> None:
    web, gunicorn_port = start_web(
        servers, tmp_path, FORWARDED_ALLOW_IPS="127.0.0.1", LOG_LEVEL="info"
    )
    try:
        user_path = create_user(gunicorn_port)
        proxy_port = free_port()
        with Nginx(nginx, tmp_path / "nginx", proxy_port, f"127.0.0.1:{gunicorn_port}"):
            # A header past Gunicorn's 8190 bytes: nginx's 431 as a problem, not HTML.
            big = b"X-Big: " + b"a" * 9000 + b"\r\n"
            status, headers, body = raw_request(
                proxy_port, b"GET /healthz HTTP/1.1\r\nHost: api\r\n" + big + b"\r\n"
            )
            assert status == 431
            assert headers["Content-Type"] == "application/problem+json"
            assert json.loads(body)["status"] == 431
            # 101 short fields pass nginx and Gunicorn refuses them (431, in HTML): the
            # client still gets a problem.
            many = b"".join(b"X-F%d: 1\r\n" % n for n in range(101))
            status, headers, body = raw_request(
                proxy_port, b"GET /healthz HTTP/1.1\r\nHost: api\r\n" + many + b"\r\n"
            )
            assert (status, headers["Content-Type"]) == (431, "application/problem+json")
            assert b"<html" not in body.lower()

            # A client's own X-Forwarded-For is not believed: nginx appends the address it
            # saw, and the app takes that last entry from nginx alone.
            forged = (
                f"GET {user_path} HTTP/1.1\r\nHost: api\r\nX-Forwarded-For: 203.0.113.9\r\n"
                f"Authorization: Bearer {os.environ[TOKEN_VARIABLE]}\r\n"
            )
            request = forged + "X-Request-ID: through-nginx\r\nConnection: close\r\n\r\n"
            assert raw_request(proxy_port, request.encode())[0] == 200
            assert access_line(web, "through-nginx")["remote_addr"] == CLIENT_ADDRESS
        # Straight at Gunicorn the peer is not the proxy: the header is ignored.
        request = forged + "X-Request-ID: straight-at-gunicorn\r\nConnection: close\r\n\r\n"
        assert raw_request(gunicorn_port, request.encode())[0] == 200
        assert access_line(web, "straight-at-gunicorn")["remote_addr"] == CLIENT_ADDRESS
    finally:
        web.kill()
