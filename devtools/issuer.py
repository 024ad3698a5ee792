"""A local OpenID Connect issuer for development and tests: a signing key kept in a file,
its discovery document and key set served over HTTP, and tokens minted on demand.

Development only (never in the image): production points AUTH_ISSUER at a real issuer.
`make run` starts one beside the stack and `make token` asks it for a token.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

AUDIENCE = "users-service"
# Under the stack's --var-dir: the development signing key (never a production secret).
ISSUER_KEY_FILE = "issuer/signing-key.pem"
ALL_SCOPES = ("users:read", "users:write", "exports:read", "exports:write", "admin")


class DevIssuer:
    """Serves `/.well-known/openid-configuration` and `/jwks.json` on 127.0.0.1."""

    @classmethod
    def of_running_stack(cls, key_file: Path, issuer_url: str) -> DevIssuer:
        """The issuer `make run` started (its URL from var/stack.env), to sign with."""
        return cls(key_file, port=int(issuer_url.rsplit(":", 1)[1]))

    def __init__(self, key_file: Path, port: int = 0) -> None:
        self._key_file = key_file
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._keys = [_load_or_create(key_file)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def key_file(self) -> Path:
        return self._key_file

    @property
    def kid(self) -> str:
        return _kid(self._keys[-1])

    def start(self) -> DevIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                documents = {
                    "/.well-known/openid-configuration": {
                        "issuer": issuer.url,
                        "jwks_uri": f"{issuer.url}/jwks.json",
                        "id_token_signing_alg_values_supported": ["ES256"],
                    },
                    "/jwks.json": {"keys": [_public_jwk(key) for key in issuer._keys]},
                }
                document = documents.get(self.path)
                body = json.dumps(document or {"error": "not found"}).encode()
                self.send_response(200 if document else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass  # quiet: the stack's own log lines are the ones that matter

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving (an issuer outage); `start` serves again on the same port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def rotate(self) -> str:
        """A new signing key, published beside the old one; returns its kid."""
        self._keys.append(ec.generate_private_key(ec.SECP256R1()))
        return self.kid

    def token(
        self,
        scopes: tuple[str, ...] | list[str] = ALL_SCOPES,
        *,
        subject: str = "dev-user",
        ttl_seconds: int = 3600,
        audience: str = AUDIENCE,
        **claims: Any,
    ) -> str:
        """A signed access token (RFC 9068 profile) with these scopes."""
        now = int(time.time())
        payload = {
            "iss": self.url,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
            "client_id": "dev-cli",
            "scope": " ".join(scopes),
            **claims,
        }
        key = self._keys[-1]
        headers = {"kid": _kid(key), "typ": "at+jwt"}
        return jwt.encode(payload, key, algorithm="ES256", headers=headers)


def _load_or_create(key_file: Path) -> ec.EllipticCurvePrivateKey:
    if key_file.exists():
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    key_file.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_file.touch(mode=0o600)
    key_file.write_bytes(pem)
    return key


def _kid(key: ec.EllipticCurvePrivateKey) -> str:
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(public).hexdigest()[:16]


def _public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return jwk | {"kid": _kid(key), "use": "sig", "alg": "ES256"}
