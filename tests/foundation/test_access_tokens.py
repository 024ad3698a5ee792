"""The key set survives the issuer: the last good keys are kept in memory across a failed
refresh, and on disk for a process that starts while the issuer is down."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.foundation.access_tokens import KeySet, TokenRejected, TokenVerifier
from devtools.issuer import AUDIENCE, DevIssuer
from devtools.processes import free_port


def _verifier(issuer: DevIssuer, cache: Path) -> TokenVerifier:
    keys = KeySet(
        issuer=issuer.url, jwks_url=None, refresh_seconds=0, timeout_seconds=1, cache_file=cache
    )
    return TokenVerifier(
        keys, issuer=issuer.url, audience=AUDIENCE, leeway_seconds=0, max_token_bytes=8192
    )


def test_a_process_started_during_an_issuer_outage_uses_the_last_good_keys(
    tmp_path: Path,
) -> None:
    issuer = DevIssuer(tmp_path / "key.pem", port=free_port()).start()
    cache = tmp_path / "jwks.json"
    before = _verifier(issuer, cache)
    assert before.verify(issuer.token(["users:read"])).scopes == {"users:read"}
    issuer.stop()

    started_later = _verifier(issuer, cache)  # a recycled worker: nothing in memory

    assert started_later.verify(issuer.token(["users:write"])).scopes == {"users:write"}
    assert before.verify(issuer.token(subject="other")).subject == "other"


def test_a_key_cache_others_may_write_is_ignored(tmp_path: Path) -> None:
    issuer = DevIssuer(tmp_path / "key.pem", port=free_port()).start()
    cache = tmp_path / "jwks.json"
    _verifier(issuer, cache).verify(issuer.token())
    issuer.stop()
    cache.chmod(0o666)  # as a file planted in a shared /tmp would be

    with pytest.raises(TokenRejected):
        _verifier(issuer, cache).verify(issuer.token())
