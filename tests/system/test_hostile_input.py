"""Hostile input against real Gunicorn: every attempt gets its documented 4xx, never a
500, and the service stays healthy. The table of what was tried is written to
var/hostile-inputs.md."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis

from app.web.sessions import Database
from devtools.processes import PROJECT_ROOT, TOKEN_VARIABLE, ServerProcess, start_web

TOKEN = "hostile-input-admin-token-0123456789"
USER = {"email": "ann@example.com", "name": "Ann"}


@dataclass(frozen=True)
class Attempt:
    name: str
    request: bytes
    expected: int
    # Gunicorn itself refuses malformed HTTP before the app sees it, as plain text.
    by_gunicorn: bool = False


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    head: str


def _request(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    content_type: str | None = "application/json",
    headers: tuple[str, ...] = (),
    authorized: bool = True,
) -> bytes:
    """A raw request; with the session's all-scopes token unless it sends its own or
    `authorized` is false (the hostile part is elsewhere)."""
    if authorized and not any(h.lower().startswith("authorization:") for h in headers):
        headers = (*headers, f"Authorization: Bearer {os.environ[TOKEN_VARIABLE]}")
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", "Connection: close", *headers]
    if body or method in ("POST", "PATCH", "PUT"):
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


def _post(path: str, body: bytes, **kwargs: object) -> bytes:
    return _request("POST", path, body, **kwargs)  # type: ignore[arg-type]


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _chunked(body: bytes) -> bytes:
    head = (
        b"POST /api/v1/users HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        + f"Authorization: Bearer {os.environ[TOKEN_VARIABLE]}\r\n\r\n".encode()
    )
    return head + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def _attempts(user_id: str) -> list[Attempt]:
    users = "/api/v1/users"
    one = f"{users}/{user_id}"
    nested = b"[" * 5000 + b"]" * 5000
    return [
        Attempt("body over MAX_CONTENT_LENGTH (2 MiB)", _post(users, b"x" * (2 << 20)), 413),
        Attempt("chunked body over MAX_CONTENT_LENGTH", _chunked(b" " * (2 << 20)), 413),
        Attempt("malformed JSON", _post(users, b'{"email": '), 400),
        Attempt("invalid UTF-8 in JSON", _post(users, b'{"email": "\xff\xfe", "name": "x"}'), 400),
        Attempt(
            "lone surrogate escape", _post(users, b'{"email": "a@b.co", "name": "\\ud800"}'), 400
        ),
        Attempt("JSON nested 5000 deep", _post(users, nested), 400),
        Attempt("JSON array instead of object", _post(users, b"[1, 2]"), 422),
        Attempt("JSON string instead of object", _post(users, b'"ann"'), 422),
        Attempt("JSON null", _post(users, b"null"), 422),
        Attempt("empty body", _post(users, b""), 400),
        Attempt("unknown field", _post(users, _json({**USER, "admin": True})), 422),
        Attempt(
            "email of 255 characters",
            _post(users, _json({**USER, "email": "a" * 243 + "@example.com"})),
            422,
        ),
        Attempt("name of 201 characters", _post(users, _json({**USER, "name": "n" * 201})), 422),
        Attempt("NUL byte in name", _post(users, _json({**USER, "name": "A\u0000n"})), 422),
        Attempt(
            "newline in name (log forging)",
            _post(users, _json({**USER, "name": "A\nlevel=ERROR"})),
            422,
        ),
        Attempt("number instead of string", _post(users, _json({**USER, "name": 12345})), 422),
        Attempt("not an email", _post(users, _json({**USER, "email": "ann"})), 422),
        Attempt(
            "reserved email domain", _post(users, _json({**USER, "email": "a@x.localhost"})), 422
        ),
        Attempt("text/plain body", _post(users, _json(USER), content_type="text/plain"), 415),
        Attempt(
            "form body",
            _post(users, b"email=a&name=b", content_type="application/x-www-form-urlencoded"),
            415,
        ),
        Attempt("no Content-Type", _post(users, _json(USER), content_type=None), 415),
        Attempt("duplicate email", _post(users, _json(USER)), 409),
        Attempt(
            "SQL in name (stored as text)",
            _post(users, _json({"email": "bob@example.com", "name": "'; DROP TABLE users;--"})),
            201,
        ),
        Attempt(
            "emoji and RTL text in name",
            _post(
                users,
                _json(
                    {"email": "cy@example.com", "name": "Cy \U0001f600 \u05e9\u05dc\u05d5\u05dd"}
                ),
            ),
            201,
        ),
        Attempt("limit=101", _request("GET", f"{users}?limit=101"), 422),
        Attempt("limit=0", _request("GET", f"{users}?limit=0"), 422),
        Attempt("limit=-1", _request("GET", f"{users}?limit=-1"), 422),
        Attempt("limit=1e9", _request("GET", f"{users}?limit=1e9"), 422),
        Attempt("forged cursor", _request("GET", f"{users}?cursor=eyJ4IjoxfQ"), 422),
        Attempt("unknown query parameter", _request("GET", f"{users}?sort=email"), 422),
        Attempt("id that is not a UUID", _request("GET", f"{users}/1"), 404),
        Attempt("path traversal", _request("GET", f"{users}/../../etc/passwd"), 404),
        Attempt("unknown route", _request("GET", "/api/v2/users"), 404),
        Attempt("wrong method", _request("PUT", users, _json(USER)), 405),
        Attempt(
            "stale If-Match",
            _request("PATCH", one, _json({"name": "B"}), headers=('If-Match: "999"',)),
            412,
        ),
        Attempt("PATCH with null field", _request("PATCH", one, _json({"name": None})), 422),
        Attempt("PATCH with nothing to change", _request("PATCH", one, _json({})), 422),
        Attempt(
            "Idempotency-Key with spaces",
            _post(users, _json(USER), headers=("Idempotency-Key: a b",)),
            400,
        ),
        Attempt(
            "Idempotency-Key of 256 characters",
            _post(users, _json(USER), headers=("Idempotency-Key: " + "k" * 256,)),
            400,
        ),
        Attempt(
            "X-Request-ID with quotes (replaced)",
            _request("GET", users, headers=('X-Request-ID: "><script>',)),
            200,
        ),
        Attempt("admin without a token", _request("GET", "/admin/config", authorized=False), 401),
        Attempt("the API without a token", _request("GET", users, authorized=False), 401),
        Attempt(
            "admin with a wrong token",
            _request("GET", "/admin/config", headers=("Authorization: Bearer " + "y" * 36,)),
            401,
        ),
        Attempt(
            "admin with Basic auth",
            _request("GET", "/admin/config", headers=("Authorization: Basic YWRtaW46YWRtaW4=",)),
            401,
        ),
        Attempt(
            "request line over 4094 bytes",
            _request("GET", f"{users}?cursor=" + "a" * 5000),
            414,
            by_gunicorn=True,
        ),
        Attempt(
            "101 header fields",
            _request("GET", users, headers=tuple(f"X-H{n}: v" for n in range(101))),
            431,
            by_gunicorn=True,
        ),
        Attempt(
            "header of 9000 bytes",
            _request("GET", users, headers=("X-Big: " + "v" * 9000,)),
            431,
            by_gunicorn=True,
        ),
        Attempt(
            "Content-Length and Transfer-Encoding (smuggling)",
            _post(users, b"0\r\n\r\n", headers=("Transfer-Encoding: chunked",)),
            400,
            by_gunicorn=True,
        ),
        Attempt("garbage request line", b"HELLO\r\n\r\n", 400, by_gunicorn=True),
        Attempt(
            "HTTP/2 preface on HTTP/1.1 port",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            400,
            by_gunicorn=True,
        ),
    ]  # fmt: skip


def _send(port: int, raw: bytes) -> Answer:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        # The server may answer and close before reading everything: that is fine.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(raw)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(status_line.split()[1]), headers, body, head.decode("latin-1"))


@pytest.fixture
def web(
    database_url: str, redis_url: str, db: Database, redis_db: Redis, tmp_path: Path
) -> Iterator[tuple[ServerProcess, int]]:
    process, port = start_web(
        database_url,
        redis_url,
        tmp_path / "web.log",
        ADMIN_TOKEN=TOKEN,
        MAX_CONTENT_LENGTH="1048576",
    )
    yield process, port
    process.kill()


def test_hostile_input_gets_a_documented_4xx_and_never_a_500(
    web: tuple[ServerProcess, int],
) -> None:
    process, port = web
    created = _send(port, _post("/api/v1/users", _json(USER)))
    assert created.status == 201
    user_id = json.loads(created.body)["id"]

    rows = []
    for attempt in _attempts(user_id):
        answer = _send(port, attempt.request)
        rows.append(f"| {attempt.name} | {attempt.expected} | {answer.status} |")
        assert answer.status == attempt.expected, (attempt.name, answer.status, answer.body[:300])
        if answer.status >= 400 and not attempt.by_gunicorn:
            assert answer.headers["content-type"] == "application/problem+json", attempt.name
            problem = json.loads(answer.body)
            assert problem["status"] == answer.status
            assert problem["request_id"] == answer.headers["x-request-id"]
        assert b"Traceback" not in answer.body

    assert _send(port, _request("GET", "/healthz")).status == 200
    assert _send(port, _request("GET", f"/api/v1/users/{uuid.UUID(user_id)}")).status == 200
    log = process.output()
    assert "Traceback" not in log
    assert '"status": 500' not in log

    table = "\n".join(["| input | expected | got |", "|---|---|---|", *rows])
    report = PROJECT_ROOT / "var" / "hostile-inputs.md"
    report.parent.mkdir(exist_ok=True)
    report.write_text(f"# Hostile inputs against Gunicorn + the app\n\n{table}\n")
    print(f"\n{table}")


def test_every_response_carries_the_safety_headers_and_no_version_banner(
    web: tuple[ServerProcess, int],
) -> None:
    _, port = web
    created = json.loads(_send(port, _post("/api/v1/users", _json(USER))).body)
    for raw in (
        _request("GET", f"/api/v1/users/{created['id']}"),
        _request("GET", "/api/v1/users"),
        _request("GET", "/api/v1/nope"),
        _post("/api/v1/users", b"{"),
        _request("GET", "/healthz"),
        _request("GET", "/openapi.json"),
    ):
        answer = _send(port, raw)
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
        assert (
            answer.headers["content-security-policy"]
            == "default-src 'none'; frame-ancestors 'none'"
        )
        # Gunicorn names itself but not its version; nothing else says what runs here.
        assert answer.headers.get("server", "gunicorn") == "gunicorn"
        assert "x-powered-by" not in answer.headers
        assert answer.head.lower().count("\r\ndate:") == 1, "one Date header"
