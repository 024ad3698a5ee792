"""One transaction per POST, replayable with an Idempotency-Key.

A POST view adds its writes to the request's session and returns its response without
committing; `@idempotent` commits once. With an Idempotency-Key, the key is claimed
first in that same transaction, and the response is stored in it before the commit: the
key, the work and the response are committed together or not at all. So a request that
dies (crash, timeout, lost connection) leaves no key behind and its retry runs afresh,
and a key never stays "in progress" past the request that holds it.

A retry with the same key and body replays the stored response (status, body, Location,
ETag); the same key with another body is a 409 (a conflict with the key's state, like
a concurrent retry; the IETF draft suggests 422, which clients and contract tests read as
"your request is malformed", and it is not). A retry that arrives while the first
is still running waits on the key's row (bounded by the statement timeout), then
replays the committed response.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
from flask import Response, request
from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from werkzeug.exceptions import BadRequest

from app.foundation.idempotency_keys import IdempotencyKey
from app.web.errors import problem
from app.web.jsonio import request_body
from app.web.services import request_session, settings

HEADER = "Idempotency-Key"
_WELL_FORMED = re.compile(r"[\x21-\x7e]{1,255}")


def idempotent(view: Callable[..., Response]) -> Callable[..., Response]:
    """Commit a POST view's writes once, with its Idempotency-Key and response if sent."""

    @functools.wraps(view)
    def wrapper(*args: object, **kwargs: object) -> Response:
        session = request_session()
        key = request.headers.get(HEADER)
        if key is None:
            return _commit_unless_failed(session, view(*args, **kwargs))
        if not _WELL_FORMED.fullmatch(key):
            raise BadRequest(f"{HEADER} must be 1-255 printable ASCII characters.")
        scope = f"{request.method} {request.path}"
        fingerprint = _fingerprint(request_body())
        if not _claim(session, scope, key, fingerprint):
            earlier = session.get(IdempotencyKey, (scope, key), populate_existing=True)
            assert earlier is not None  # the claim conflicted with this live row
            replay = _replay(earlier, fingerprint)
            session.rollback()  # releases the row the claim locked
            return replay
        response = view(*args, **kwargs)
        if response.status_code < 500:
            _store_response(session, scope, key, response)
        return _commit_unless_failed(session, response)

    return wrapper


def _commit_unless_failed(session: Session, response: Response) -> Response:
    if response.status_code >= 500:
        session.rollback()
    else:
        session.commit()
    return response


def _fingerprint(body: bytes) -> str:
    """The same JSON document, however it is spaced or its keys ordered, is the same
    request; a body that is not JSON is compared byte for byte."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


def _ttl() -> timedelta:
    return timedelta(seconds=settings().idempotency_key_ttl_seconds)


def _claim(session: Session, scope: str, key: str, fingerprint: str) -> bool:
    """Insert the key (or take over an expired one); False if a live one exists.

    A concurrent request with the same key waits here, on this row, until the first
    commits or rolls back, before any work: it then replays, never trips over the
    work's own constraints (such as a unique email)."""
    expires_at = datetime.now(UTC) + _ttl()
    statement = insert(IdempotencyKey).values(
        scope=scope, key=key, fingerprint=fingerprint, expires_at=expires_at
    )
    claimed = session.execute(
        statement.on_conflict_do_update(
            index_elements=["scope", "key"],
            set_={
                "fingerprint": fingerprint,
                "status": None,
                "body": None,
                "location": None,
                "etag": None,
                "created_at": func.now(),
                "expires_at": expires_at,
            },
            where=IdempotencyKey.expires_at <= func.now(),
        ).returning(IdempotencyKey.key)
    ).first()
    return claimed is not None


def _store_response(session: Session, scope: str, key: str, response: Response) -> None:
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
        .values(
            status=response.status_code,
            body=response.get_data(),
            location=response.headers.get("Location"),
            etag=response.headers.get("ETag"),
        )
    )


def _replay(record: IdempotencyKey, fingerprint: str) -> Response:
    if record.fingerprint != fingerprint:
        return problem(
            409,
            "Idempotency-Key reused",
            "This Idempotency-Key was used with a different request body.",
            type_="/problems/idempotency-key-reused",
        )
    response = Response(record.body, status=record.status, mimetype="application/json")
    if record.location:
        response.headers["Location"] = record.location
    if record.etag:
        response.headers["ETag"] = record.etag
    response.headers["Idempotent-Replayed"] = "true"
    return response
