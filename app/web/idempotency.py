"""Idempotency-Key for POST: a retried request gets the original response, once.

The key is recorded in the same transaction as the work it guards (a `before_commit`
hook on the request's session), so a key exists exactly when its effect does. The
response is stored right after; a retry with the same key and body replays it (status,
body, Location), the same key with another body is a 422, and a retry that arrives
while the first is still running gets a 409 with Retry-After.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
from flask import Response, request
from sqlalchemy import event, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.exceptions import BadRequest

from app.foundation.idempotency_keys import IdempotencyKey
from app.web.errors import problem
from app.web.jsonio import request_body
from app.web.services import request_session, settings

HEADER = "Idempotency-Key"
_WELL_FORMED = re.compile(r"[\x21-\x7e]{1,255}")


def idempotent(view: Callable[..., Response]) -> Callable[..., Response]:
    """Make a POST view replay its first response for a repeated Idempotency-Key."""

    @functools.wraps(view)
    def wrapper(*args: object, **kwargs: object) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not _WELL_FORMED.fullmatch(key):
            raise BadRequest(f"{HEADER} must be 1-255 printable ASCII characters.")
        scope = f"{request.method} {request.path}"
        fingerprint = _fingerprint(request_body())
        session = request_session()
        earlier = _find(session, scope, key)
        if earlier is not None:
            return _replay(earlier, fingerprint)
        _record_key_on_commit(session, scope, key, fingerprint)
        try:
            response = view(*args, **kwargs)
        except IntegrityError:
            # Another request with this key committed first.
            session.rollback()
            earlier = _find(session, scope, key)
            if earlier is None:
                raise
            return _replay(earlier, fingerprint)
        _store_response(session, scope, key, response)
        return response

    return wrapper


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


def _find(session: Session, scope: str, key: str) -> IdempotencyKey | None:
    record = session.get(IdempotencyKey, (scope, key), populate_existing=True)
    if record is None or record.expires_at <= datetime.now(UTC):
        return None
    return record


def _record_key_on_commit(session: Session, scope: str, key: str, fingerprint: str) -> None:
    expires_at = datetime.now(UTC) + _ttl()

    def record(session: Session) -> None:
        statement = insert(IdempotencyKey).values(
            scope=scope, key=key, fingerprint=fingerprint, expires_at=expires_at
        )
        # The key goes in before the work is flushed (no autoflush): a concurrent request
        # with the same key then waits on this row, not on the user's unique email, and
        # finds the key in use instead of "email already registered". An expired key may
        # be reused; a live one (another request's) aborts this transaction, so the work
        # is not done twice.
        with session.no_autoflush:
            inserted = session.execute(
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
        if inserted is None:
            raise IntegrityError("idempotency key in use", None, Exception(key))

    event.listen(session, "before_commit", record, once=True)


def _store_response(session: Session, scope: str, key: str, response: Response) -> None:
    if response.status_code >= 500:
        return
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
    session.commit()


def _replay(record: IdempotencyKey, fingerprint: str) -> Response:
    if record.fingerprint != fingerprint:
        return problem(
            422,
            "Idempotency-Key reused",
            "This Idempotency-Key was used with a different request body.",
            type_="/problems/idempotency-key-reused",
        )
    if record.status is None:
        return problem(
            409,
            "Request in progress",
            "A request with this Idempotency-Key is still being processed. Retry shortly.",
            type_="/problems/idempotency-key-in-progress",
            headers={"Retry-After": "1"},
        )
    response = Response(record.body, status=record.status, mimetype="application/json")
    if record.location:
        response.headers["Location"] = record.location
    if record.etag:
        response.headers["ETag"] = record.etag
    response.headers["Idempotent-Replayed"] = "true"
    return response
