"""Keys survive the issuer: with the issuer stopped for 60 s under load, tokens signed by a
known key keep working, a token with an unknown kid is refused within 1 s (no worker
waits on the dead issuer), and once the issuer is back a rotated key is picked up."""

from __future__ import annotations

import time
from pathlib import Path

from devtools.issuer import DevIssuer
from devtools.processes import free_port, http_call
from tests.reliability.conftest import OwnedServers, Row, start_web

OUTAGE_SECONDS = 60
REFRESH_SECONDS = 5


def test_an_issuer_outage_fails_no_request_with_a_known_key(
    servers: OwnedServers, tmp_path: Path, report: list[Row]
) -> None:
    issuer = DevIssuer(tmp_path / "issuer.pem", port=free_port()).start()
    web, port = start_web(
        servers,
        tmp_path,
        AUTH_ISSUER=issuer.url,
        AUTH_JWKS_REFRESH_SECONDS=str(REFRESH_SECONDS),
    )
    known = issuer.token(["users:read"])
    try:
        warm = [http_call("GET", port, "/api/v1/users", token=known)[0] for _ in range(12)]
        assert warm == [200] * 12, "every web worker has fetched the keys"

        issuer.stop()
        unknown = _rotated_token(issuer)
        statuses, unknown_seconds = [], []
        ends = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < ends:
            statuses.append(http_call("GET", port, "/api/v1/users", token=known)[0])
            if len(statuses) % 20 == 0:
                started = time.monotonic()
                refused = http_call("GET", port, "/api/v1/users", token=unknown)[0]
                unknown_seconds.append(time.monotonic() - started)
                assert refused == 401

        issuer.start()
        picked_up = _seconds_until_accepted(port, unknown, timeout=4 * REFRESH_SECONDS)
        assert web.terminate() == 0
    finally:
        web.kill()
        issuer.stop()

    report.append(
        Row(
            f"issuer down {OUTAGE_SECONDS} s (worst unknown-kid 401 {max(unknown_seconds):.2f} s;"
            f" rotated key accepted {picked_up:.1f} s after the issuer returned)",
            sent=len(statuses) + len(unknown_seconds),
            succeeded=statuses.count(200) + len(unknown_seconds),
            failed=len(statuses) - statuses.count(200),
        )
    )
    assert set(statuses) == {200}, (
        f"{len(statuses) - statuses.count(200)} known-key requests failed"
    )
    assert max(unknown_seconds) < 1.0, unknown_seconds


def _rotated_token(issuer: DevIssuer) -> str:
    """A token signed by a key the service has never seen (the issuer rotated)."""
    issuer.rotate()
    return issuer.token(["users:read"])


def _seconds_until_accepted(port: int, token: str, timeout: float) -> float:
    started = time.monotonic()
    while http_call("GET", port, "/api/v1/users", token=token)[0] != 200:
        assert time.monotonic() - started < timeout, "the rotated key was never picked up"
        time.sleep(0.5)
    return time.monotonic() - started
