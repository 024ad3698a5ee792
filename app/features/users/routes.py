"""HTTP for /api/v1/users: parse, call the service, shape the response. No rules here."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, request, url_for
from werkzeug.exceptions import NotFound, PreconditionFailed

from app.features.users.metrics import USERS_CREATED
from app.features.users.models import User
from app.features.users.queries import UserNotFound, UserQueries, UserRow
from app.features.users.schemas import (
    ListQuery,
    UserCreate,
    UserOut,
    UserPageOut,
    UserPatch,
    encode_cursor,
)
from app.features.users.service import ConcurrentUpdate, EmailAlreadyRegistered, UserService
from app.web.bearer_auth import requires_scope
from app.web.errors import http_problem, problem
from app.web.idempotency import idempotent
from app.web.jsonio import json_response, parse_body, parse_query
from app.web.rate_limits import rate_limited
from app.web.services import request_session, services

bp = Blueprint("users", __name__, url_prefix="/api/v1/users")


def _service() -> UserService:
    return UserService(request_session(), services().outbox)


def _queries() -> UserQueries:
    return UserQueries(services().database.read_engine)


def _etag(user: User | UserRow) -> str:
    return f'"{user.version}"'


def _user_response(user: User | UserRow, status: int = 200) -> Response:
    response = json_response(UserOut.model_validate(user, from_attributes=True), status)
    response.headers["ETag"] = _etag(user)
    return response


def _require_if_match(user: User) -> None:
    # If-Match is optional; when sent it must name the current version (strong comparison).
    if request.if_match and not request.if_match.contains(str(user.version)):
        raise PreconditionFailed(
            "The user was changed since you read it: GET it again and retry with its ETag."
        )


@bp.post("")
@requires_scope("users:write")
@rate_limited("writes")
@idempotent
def create_user() -> Response:
    body = parse_body(UserCreate)
    user = _service().create(email=body.email, name=body.name)
    USERS_CREATED.inc()
    response = _user_response(user, 201)
    response.headers["Location"] = url_for("users.get_user", user_id=user.id)
    return response


@bp.get("")
@requires_scope("users:read")
def list_users() -> Response:
    query = parse_query(ListQuery)
    page = _queries().list_page(limit=query.limit, after=query.position())
    next_url = None
    if page.next_position is not None:
        cursor = encode_cursor(page.next_position)
        next_url = url_for("users.list_users", limit=query.limit, cursor=cursor)
    items = [UserOut.model_validate(user, from_attributes=True) for user in page.users]
    response = json_response(UserPageOut(items=items, next=next_url))
    if next_url is not None:
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return response


@bp.get("/<uuid:user_id>")
@requires_scope("users:read")
def get_user(user_id: uuid.UUID) -> Response:
    user = _queries().get(user_id)
    # If-None-Match (weak comparison, RFC 9110) by hand: werkzeug's make_conditional also
    # handles ranges and dates, and cost more than building the response (make bench).
    if request.if_none_match.contains_weak(str(user.version)):
        return Response(status=304, headers={"ETag": _etag(user)})
    return _user_response(user)


@bp.patch("/<uuid:user_id>")
@requires_scope("users:write")
@rate_limited("writes")
def update_user(user_id: uuid.UUID) -> Response:
    patch = parse_body(UserPatch)
    service = _service()
    user = service.get(user_id)
    _require_if_match(user)
    return _user_response(service.update(user, patch.changes()))


@bp.delete("/<uuid:user_id>")
@requires_scope("users:write")
@rate_limited("writes")
def delete_user(user_id: uuid.UUID) -> Response:
    service = _service()
    user = service.get(user_id)
    _require_if_match(user)
    service.delete(user)
    return Response(status=204)


@bp.errorhandler(UserNotFound)
def _not_found(_error: UserNotFound) -> Response:
    return http_problem(NotFound("No user has this id."))


@bp.errorhandler(EmailAlreadyRegistered)
def _email_taken(_error: EmailAlreadyRegistered) -> Response:
    return problem(
        409,
        "Email already registered",
        "Another user already has this email address.",
        type_="/problems/email-already-registered",
    )


@bp.errorhandler(ConcurrentUpdate)
def _concurrent_update(_error: ConcurrentUpdate) -> Response:
    return http_problem(
        PreconditionFailed("The user was changed by another request: GET it again and retry.")
    )
