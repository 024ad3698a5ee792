"""The users resource over HTTP (Flask's test client, real PostgreSQL)."""

from __future__ import annotations

import uuid

import pytest
from flask.testing import FlaskClient

from tests.support.factories import create_user, user_payload


def test_create_returns_201_with_location_etag_and_normalised_fields(client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/users", json={"email": "  Ann.Lee@Example.COM", "name": "  Ann Lee  "}
    )

    assert response.status_code == 201
    body = response.json
    assert body is not None
    assert body["email"] == "ann.lee@example.com"
    assert body["name"] == "Ann Lee"
    assert uuid.UUID(body["id"]).version == 4
    assert response.headers["Location"] == f"/api/v1/users/{body['id']}"
    assert response.headers["ETag"] == '"1"'
    assert client.get(response.headers["Location"]).json == body


def test_duplicate_email_in_any_case_is_409(client: FlaskClient) -> None:
    create_user(client, email="dup@example.com")

    response = client.post("/api/v1/users", json=user_payload(email="DUP@example.com"))

    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "/problems/email-already-registered"  # type: ignore[index]


def test_get_unknown_and_malformed_ids_are_404(client: FlaskClient) -> None:
    for path in (f"/api/v1/users/{uuid.uuid4()}", "/api/v1/users/42"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.mimetype == "application/problem+json"


def test_get_honours_if_none_match(client: FlaskClient) -> None:
    user = create_user(client)

    path = f"/api/v1/users/{user['id']}"

    for matching in ('"1"', 'W/"1"', '"7", "1"', "*"):
        response = client.get(path, headers={"If-None-Match": matching})
        assert response.status_code == 304, matching
        assert response.headers["ETag"] == '"1"'
        assert response.get_data() == b""
    assert client.get(path, headers={"If-None-Match": '"2"'}).status_code == 200


def test_patch_changes_fields_and_bumps_etag(client: FlaskClient) -> None:
    user = create_user(client)

    response = client.patch(
        f"/api/v1/users/{user['id']}", json={"name": "Renamed"}, headers={"If-Match": '"1"'}
    )

    assert response.status_code == 200
    assert response.json["name"] == "Renamed"  # type: ignore[index]
    assert response.json["email"] == user["email"]  # type: ignore[index]
    assert response.headers["ETag"] == '"2"'
    assert response.json["updated_at"] > user["updated_at"]  # type: ignore[index]


def test_patch_with_stale_if_match_is_412_and_changes_nothing(client: FlaskClient) -> None:
    user = create_user(client)
    path = f"/api/v1/users/{user['id']}"
    client.patch(path, json={"name": "First"}, headers={"If-Match": '"1"'})

    response = client.patch(path, json={"name": "Second"}, headers={"If-Match": '"1"'})

    assert response.status_code == 412
    assert response.mimetype == "application/problem+json"
    assert client.get(path).json["name"] == "First"  # type: ignore[index]


def test_patch_accepts_merge_patch_and_wildcard_if_match(client: FlaskClient) -> None:
    user = create_user(client)

    response = client.patch(
        f"/api/v1/users/{user['id']}",
        data='{"email": "New@Example.com"}',
        headers={"Content-Type": "application/merge-patch+json", "If-Match": "*"},
    )

    assert response.status_code == 200
    assert response.json["email"] == "new@example.com"  # type: ignore[index]


def test_patch_to_a_taken_email_is_409(client: FlaskClient) -> None:
    create_user(client, email="taken@example.com")
    user = create_user(client)

    response = client.patch(f"/api/v1/users/{user['id']}", json={"email": "taken@example.com"})

    assert response.status_code == 409


def test_patch_rejects_empty_and_null_changes(client: FlaskClient) -> None:
    user = create_user(client)
    path = f"/api/v1/users/{user['id']}"

    for body in ({}, {"name": None}):
        response = client.patch(path, json=body)
        assert response.status_code == 422, body


def test_delete_is_204_then_404(client: FlaskClient) -> None:
    user = create_user(client)
    path = f"/api/v1/users/{user['id']}"

    assert client.delete(path, headers={"If-Match": '"9"'}).status_code == 412
    assert client.delete(path).status_code == 204
    assert client.get(path).status_code == 404
    assert client.delete(path).status_code == 404


def test_list_pages_through_every_user_once_in_creation_order(client: FlaskClient) -> None:
    created = [create_user(client)["id"] for _ in range(7)]

    seen: list[str] = []
    url: str | None = "/api/v1/users?limit=3"
    pages = 0
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200
        body = response.json
        assert body is not None
        seen.extend(item["id"] for item in body["items"])
        url = body["next"]
        if url is not None:
            assert response.headers["Link"] == f'<{url}>; rel="next"'
        pages += 1

    assert seen == created
    assert pages == 3


def test_list_cursor_is_stable_when_earlier_users_are_deleted(client: FlaskClient) -> None:
    ids = [create_user(client)["id"] for _ in range(4)]
    first = client.get("/api/v1/users?limit=2").json
    assert first is not None
    client.delete(f"/api/v1/users/{ids[0]}")

    second = client.get(first["next"]).json

    assert second is not None
    assert [item["id"] for item in second["items"]] == ids[2:]
    assert second["next"] is None


def test_list_rejects_bad_limits_and_forged_cursors(client: FlaskClient) -> None:
    for query in ("limit=0", "limit=101", "limit=abc", "cursor=bm90LWEtY3Vyc29y", "cursor=%%%"):
        response = client.get(f"/api/v1/users?{query}")
        assert response.status_code == 422, query
        assert response.json["errors"][0]["location"] == "query"  # type: ignore[index]


@pytest.mark.parametrize(
    "forged",
    [
        "",
        # base64 of ["2020-01-01T00:00:00+00:00", 5], once a 500 (uuid.UUID(5))
        "WyIyMDIwLTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgNV0",
        "12.not-hex",
        "12345678901234567.00000000000000000000000000000000",  # 17 digits: past the year 2286
        "12.000000000000000000000000000000000",  # 33 hex digits
    ],
)
def test_a_cursor_outside_the_contract_is_422(client: FlaskClient, forged: str) -> None:
    response = client.get("/api/v1/users", query_string={"cursor": forged})

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


def test_any_cursor_the_contract_admits_is_a_position(client: FlaskClient) -> None:
    """The pattern in the contract is all the server checks (schemathesis relies on it)."""
    ids = [create_user(client)["id"] for _ in range(2)]
    for made_up in ("0.00000000000000000000000000000000", "9999999999999999." + "f" * 32):
        response = client.get("/api/v1/users", query_string={"cursor": made_up})
        assert response.status_code == 200, made_up
    page = client.get("/api/v1/users", query_string={"cursor": "0." + "0" * 32}).json
    assert page is not None
    assert [user["id"] for user in page["items"]] == ids


def test_an_address_the_service_could_never_mail_is_refused_and_idna_is_kept_ascii(
    client: FlaskClient,
) -> None:
    refused = client.post("/api/v1/users", json={"email": "josé@example.com", "name": "José"})
    assert refused.status_code == 422
    assert refused.json["errors"][0]["field"] == "email"  # type: ignore[index]

    created = client.post("/api/v1/users", json={"email": "Ann@Bücher.example", "name": "Ann"})
    assert created.status_code == 201
    assert created.json["email"] == "ann@xn--bcher-kva.example"  # type: ignore[index]


def test_a_name_with_a_control_character_is_refused_in_words_not_a_regex(
    client: FlaskClient,
) -> None:
    response = client.post("/api/v1/users", json={"email": "nl@example.com", "name": "a\nb"})

    assert response.status_code == 422
    [error] = response.json["errors"]  # type: ignore[index]
    assert error["field"] == "name"
    assert "control characters" in error["message"]
    assert "\\x00" not in error["message"]


def test_a_name_is_accepted_exactly_when_the_contract_says(client: FlaskClient) -> None:
    """Spaces around a name are trimmed; a tab or newline around it is refused, as the
    contract's pattern says (stripping all whitespace once accepted what it refuses)."""
    trimmed = client.post("/api/v1/users", json={"email": "sp@example.com", "name": "  Ann "})
    tabbed = client.post("/api/v1/users", json={"email": "tab@example.com", "name": "\tAnn"})

    assert trimmed.status_code == 201
    assert trimmed.json["name"] == "Ann"  # type: ignore[index]
    assert tabbed.status_code == 422


@pytest.mark.parametrize(
    "name",
    ["\u200b", "\u200b\u200b\u200b", "\u00ad", " \ufeff ", "invoice\u202efdp.exe", "a\u2066b"],
    ids=["zero-width space", "three of them", "soft hyphen", "BOM", "RLO", "LRI"],
)
def test_a_name_nobody_can_see_or_that_turns_text_around_is_refused(
    client: FlaskClient, name: str
) -> None:
    """Issue 20: names of only U+200B, or holding U+202E, were stored and later rendered
    into welcome emails and CSV exports."""
    response = client.post("/api/v1/users", json={"email": "inv@example.com", "name": name})

    assert response.status_code == 422
    [error] = response.json["errors"]  # type: ignore[index]
    assert error["field"] == "name"
    assert "visible character" in error["message"]


def test_a_name_with_a_visible_character_and_a_zero_width_joiner_is_kept(
    client: FlaskClient,
) -> None:
    """Zero-width joiners and spaces inside a name are part of many scripts and emoji."""
    name = "Zoë \u200d李"
    response = client.post("/api/v1/users", json={"email": "zwj@example.com", "name": name})

    assert response.status_code == 201
    assert response.json["name"] == name  # type: ignore[index]
