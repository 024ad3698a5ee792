"""Bearer access tokens (RFC 6750) as an OAuth 2.0 resource server sees them: JWTs signed
by an OpenID Connect issuer, verified with the issuer's published keys (PyJWT does the
cryptography). No Flask here: app/web/bearer_auth.py asks, this module answers.

Keys survive the issuer: the key set is cached per process, an unknown `kid` refreshes
it at most once per `refresh_seconds`, a failed refresh keeps the last good set, and
every fetch has a short timeout, so a dead issuer never holds a sync worker and tokens
signed by a known key keep working. A verified token's claims are cached until its
`exp`: a repeated token costs a dictionary lookup, not a signature check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK, PyJWKSet

logger = logging.getLogger(__name__)

# Asymmetric only: never `none`, never HMAC (an HS256 token "signed" with the public key).
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


class TokenRejected(Exception):
    """The token cannot be trusted; the message is safe to show (RFC 6750 invalid_token)."""


@dataclass(frozen=True)
class Principal:
    """Who a verified token speaks for."""

    subject: str
    client_id: str | None
    scopes: frozenset[str]
    expires_at: float


class KeySet:
    """The issuer's signing keys, fetched from its JWKS URL (or found through its
    discovery document), kept when a refresh fails."""

    def __init__(
        self,
        *,
        issuer: str,
        jwks_url: str | None,
        refresh_seconds: float,
        timeout_seconds: float,
        cache_file: Path | None = None,
    ) -> None:
        self._issuer = issuer.rstrip("/")
        self._jwks_url = jwks_url
        self._refresh_seconds = refresh_seconds
        self._timeout = timeout_seconds
        # The last good key set on disk, for the processes of this host or pod: a worker
        # that starts (or recycles) while the issuer is down begins with it.
        self._cache_file = cache_file
        self._keys: dict[str, PyJWK] = {}
        self._last_attempt = float("-inf")
        self._lock = threading.Lock()

    def key(self, kid: str) -> PyJWK:
        """The key with this id; refreshes (at most once per interval) if unknown."""
        found = self._keys.get(kid)
        if found is not None:
            return found
        with self._lock:
            if kid not in self._keys and self._refresh_due():
                self._refresh()
        found = self._keys.get(kid)
        if found is None:
            raise TokenRejected("The token's signing key is not known.")
        return found

    def _refresh_due(self) -> bool:
        return time.monotonic() - self._last_attempt >= self._refresh_seconds

    def _refresh(self) -> None:
        self._last_attempt = time.monotonic()
        try:
            url = self._jwks_url or self._discover()
            document = self._fetch(url)
            keys = PyJWKSet.from_dict(document).keys
        except (OSError, ValueError, jwt.PyJWTError) as exc:
            # The last good set stays: an issuer outage must not become an auth outage.
            if not self._keys:
                self._keys = self._load_cached()
            logger.warning(
                "issuer keys not refreshed; keeping the last good set",
                extra={"error": type(exc).__name__, "keys_kept": len(self._keys)},
            )
            return
        self._keys = {key.key_id: key for key in keys if key.key_id}
        self._store_cached(document)
        logger.info("issuer keys refreshed", extra={"keys": len(self._keys)})

    def _load_cached(self) -> dict[str, PyJWK]:
        if self._cache_file is None:
            return {}
        try:
            # Trusted only if this user wrote it and nobody else may: in a shared /tmp a
            # planted key set would let its author sign tokens.
            status = self._cache_file.lstat()
            if (
                status.st_uid != os.getuid()
                or status.st_mode & 0o077
                or not self._cache_file.is_file()
            ):
                logger.warning(
                    "issuer key cache ignored: not ours alone",
                    extra={"file": str(self._cache_file)},
                )
                return {}
            keys = PyJWKSet.from_dict(json.loads(self._cache_file.read_text())).keys
        except (OSError, ValueError, jwt.PyJWTError):
            return {}
        return {key.key_id: key for key in keys if key.key_id}

    def _store_cached(self, document: dict[str, Any]) -> None:
        if self._cache_file is None:
            return
        # Public keys only, written whole then renamed: a reader never sees half a file.
        partial = self._cache_file.with_name(f"{self._cache_file.name}.{os.getpid()}")
        try:
            partial.unlink(missing_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            with os.fdopen(os.open(partial, flags, 0o600), "w") as file:
                file.write(json.dumps(document))
            partial.replace(self._cache_file)
        except OSError as exc:
            logger.info("issuer keys not cached on disk", extra={"error": type(exc).__name__})

    def _discover(self) -> str:
        document = self._fetch(f"{self._issuer}/.well-known/openid-configuration")
        url = document.get("jwks_uri")
        if not isinstance(url, str):
            raise ValueError("discovery document without jwks_uri")
        self._jwks_url = url
        return url

    def _fetch(self, url: str) -> dict[str, Any]:
        if not url.startswith(("https://", "http://")):
            raise ValueError("the issuer's URLs must be http(s)")
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
            body = json.loads(response.read(1_000_000))
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        return body


class TokenVerifier:
    """Verifies access tokens for one audience of one issuer."""

    CACHE_SIZE = 10_000

    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str,
        audience: str,
        leeway_seconds: int,
        max_token_bytes: int,
        algorithms: tuple[str, ...] = ASYMMETRIC,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._max_bytes = max_token_bytes
        self._algorithms = [alg for alg in algorithms if alg in ASYMMETRIC]
        self._verified: OrderedDict[bytes, Principal] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, token: str) -> Principal:
        if len(token) > self._max_bytes:
            raise TokenRejected("The token is too large.")
        # Keyed by a digest: the cache never holds a usable token.
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._cached(digest)
        if cached is not None:
            return cached
        principal = self._check(token)
        with self._lock:
            self._verified[digest] = principal
            if len(self._verified) > self.CACHE_SIZE:
                self._verified.popitem(last=False)
        return principal

    def _cached(self, digest: bytes) -> Principal | None:
        principal = self._verified.get(digest)
        if principal is None:
            return None
        if principal.expires_at + self._leeway <= time.time():
            with self._lock:
                self._verified.pop(digest, None)
            raise TokenRejected("The token has expired.")
        return principal

    def _check(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("The token is not a JWT.") from None
        kid, alg = header.get("kid"), header.get("alg")
        if alg not in self._algorithms:
            raise TokenRejected("The token's algorithm is not accepted.")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("The token names no signing key.")
        try:
            claims = jwt.decode(
                token,
                self._keys.key(kid),
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("The token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("The token is not valid yet.") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected("The token is for another audience.") from None
        except jwt.InvalidIssuerError:
            raise TokenRejected("The token is from another issuer.") from None
        except jwt.PyJWTError:
            raise TokenRejected("The token is invalid.") from None
        return _principal(claims)


def _principal(claims: dict[str, Any]) -> Principal:
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise TokenRejected("The token's scope claim is not a string.")
    client_id = claims.get("client_id") or claims.get("azp")
    return Principal(
        subject=str(claims["sub"]),
        client_id=str(client_id) if client_id else None,
        scopes=frozenset(scope.split()),
        expires_at=float(claims["exp"]),
    )
