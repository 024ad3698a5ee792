"""Who may do what: hostile tokens get a 401 problem (never a 500), a valid token
without the scope a 403 naming it, and every guarded route declares its scope."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient

from app.web.bearer_auth import GUARDED_PREFIXES, required_scope
from devtools.issuer import DevIssuer
from tests.support.tokens import bearer, session_issuer


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, object], claims: dict[str, object], signature: bytes) -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signature)}"


def _claims(**overrides: object) -> dict[str, object]:
    issuer = session_issuer()
    now = int(time.time())
    claims = {"iss": issuer.url, "aud": "users-service", "sub": "mallory", "iat": now}
    claims |= {"exp": now + 600, "scope": "users:read users:write"}
    return claims | overrides


def _hs256_with_the_public_key() -> str:
    issuer = session_issuer()
    public_pem = json.dumps(issuer.kid).encode()  # placeholder replaced below
    key_file = issuer._key_file
    private = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.kid}
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(_claims()).encode())
    signature = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def _hostile() -> list[tuple[str, dict[str, str]]]:
    issuer = session_issuer()
    stranger = DevIssuer.__new__(DevIssuer)  # a key nobody published
    stranger._keys = [ec.generate_private_key(ec.SECP256R1())]
    stranger._port = int(issuer.url.rsplit(":", 1)[1])
    path_kid = issuer.token(kid="../../../../etc/passwd")
    return [
        ("no header", {"Authorization": ""}),
        ("wrong scheme", {"Authorization": "Basic dXNlcjpwYXNz"}),
        ("garbage", bearer("not-a-jwt")),
        ("alg none", bearer(_unsigned({"alg": "none", "kid": issuer.kid}, _claims(), b""))),
        ("HS256 signed with the public key", bearer(_hs256_with_the_public_key())),
        ("expired", bearer(issuer.token(ttl_seconds=-120))),
        ("not yet valid", bearer(issuer.token(nbf=int(time.time()) + 600))),
        ("wrong issuer", bearer(issuer.token(iss="https://evil.example.com"))),
        ("wrong audience", bearer(issuer.token(audience="another-api"))),
        ("unknown kid", bearer(stranger.token())),
        ("kid with path characters", bearer(_rekid(path_kid))),
        ("16 KiB token", bearer(issuer.token(padding="x" * 16384))),
        ("valid token for another audience", bearer(issuer.token(audience="billing"))),
    ]


def _rekid(token: str) -> str:
    """The issuer's token with its header's kid replaced (signature left as it was)."""
    head, body, signature = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=="))
    header["kid"] = "../../../../etc/passwd"
    return f"{_b64(json.dumps(header).encode())}.{body}.{signature}"


@pytest.mark.parametrize(("name", "headers"), _hostile(), ids=[name for name, _ in _hostile()])
def test_a_hostile_token_gets_a_401_problem_never_a_500(
    client: FlaskClient, name: str, headers: dict[str, str]
) -> None:
    response = client.get("/api/v1/users", headers=headers)

    assert response.status_code == 401, (name, response.json)
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == 401  # type: ignore[index]
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="users-service"')
    if name == "no header":
        assert "error=" not in challenge  # RFC 6750 §3.1: no credentials, no error code
    else:
        assert 'error="invalid_' in challenge
    token = headers["Authorization"].partition(" ")[2]
    assert not token or token not in response.get_data(as_text=True)


def test_a_valid_token_without_the_scope_gets_a_403_naming_it(client: FlaskClient) -> None:
    reader = bearer(session_issuer().token(["users:read"]))

    assert client.get("/api/v1/users", headers=reader).status_code == 200
    refused = client.post("/api/v1/users", json={"email": "a@b.co", "name": "A"}, headers=reader)

    assert refused.status_code == 403
    assert refused.mimetype == "application/problem+json"
    assert "users:write" in refused.json["detail"]  # type: ignore[index]
    assert refused.headers["WWW-Authenticate"] == (
        'Bearer realm="users-service", error="insufficient_scope", scope="users:write"'
    )


def test_probes_and_the_contract_need_no_token(client: FlaskClient) -> None:
    for path in ("/healthz", "/readyz", "/startupz", "/openapi.json"):
        assert client.get(path, headers={"Authorization": ""}).status_code in (200, 503), path


def test_every_guarded_route_declares_a_scope(app: Flask) -> None:
    undeclared = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(GUARDED_PREFIXES)
        and required_scope(app.view_functions[rule.endpoint]) is None
    ]
    assert undeclared == []
