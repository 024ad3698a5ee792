"""What the users API accepts and returns, and its pagination cursor."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Self

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from app.features.users.models import Position

# A keyset position, microseconds since the epoch (16 digits reach the year 2286) and the
# id: every string this pattern admits decodes, so a schema-valid cursor is never refused.
CURSOR_PATTERN = r"^[0-9]{1,16}\.[0-9a-f]{32}$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _normalise_email(value: str) -> str:
    # ASCII local parts only, as `format: email` promises: a UTF-8 local part needs
    # SMTPUTF8 from every relay on the way, and an address the service could accept but
    # never mail would fail its welcome job forever. International domains are kept, in
    # their ASCII (IDNA) form, which every mail system can carry.
    try:
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    # Addresses are unique without regard to case: nobody expects Ann@x and ann@x to differ.
    return str(checked.ascii_email).lower()


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


# What the contract promises about an email, in terms a client (or fuzzer) can check.
EMAIL_SCHEMA = {
    "type": "string",
    "format": "email",
    "maxLength": 254,
    "description": "Compared and stored in lower case, international domains in their "
    "ASCII (IDNA) form. The local part is ASCII (no SMTPUTF8). Reserved domains (.test, "
    ".invalid, .localhost, ...) cannot receive email and are refused.",
    "not": {"pattern": f"[@.]({'|'.join(map(_any_case, SPECIAL_USE_DOMAIN_NAMES))})$"},
}
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254),
    AfterValidator(_normalise_email),
    WithJsonSchema(EMAIL_SCHEMA),
]
# Printable text with at least one visible character. Refused anywhere: control
# characters (NUL, which PostgreSQL cannot store; newlines that forge log lines in other
# systems) and bidirectional controls (U+202E turns "txt.exe" around in an email or a
# CSV cell). Not enough on their own: spaces and the invisible format characters
# (U+200B zero-width space, U+00AD soft hyphen, U+FEFF, ...), which render as nothing.
# One pattern, for this check and the contract alike (schemathesis keeps them in step).
_BIDI = "\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069"
_INVISIBLE = f"\\u00ad\\u180e\\u200b-\\u200f\\u2060-\\u2064\\ufeff{_BIDI}"
_ALLOWED = f"[^\\x00-\\x1f\\x7f{_BIDI}]"
NAME_PATTERN = f"^{_ALLOWED}*[^\\s\\x00-\\x1f\\x7f{_INVISIBLE}]{_ALLOWED}*$"
_PRINTABLE = re.compile(NAME_PATTERN)


def _printable(value: str) -> str:
    # Checked here rather than as a pattern constraint: pydantic's message for a pattern
    # is the raw regular expression, which tells a client nothing.
    if not _PRINTABLE.match(value):
        raise ValueError(
            "must hold a visible character, and no control characters (no newlines) or "
            "bidirectional controls"
        )
    return value


def _trim_spaces(value: str) -> str:
    # Spaces only: they are all the pattern lets around a name. Stripping every kind of
    # whitespace would accept a leading tab or newline that the contract refuses.
    return value.strip(" ")


Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(_printable),
    AfterValidator(_trim_spaces),
    Field(json_schema_extra={"pattern": NAME_PATTERN}),
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class UserCreate(_Input):
    email: Email
    name: Name


def _absent() -> Any:
    """The value of a patch field that was not sent. Defaults are not validated, so the
    field's type can stay non-nullable and an explicit null is refused."""
    return None


class UserPatch(_Input):
    """A JSON merge patch of a user: the fields present are changed (null is refused:
    neither field can be removed)."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    email: Email = Field(default_factory=_absent)
    name: Name = Field(default_factory=_absent)

    @model_validator(mode="after")
    def _has_changes(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("at least one of email, name is required")
        return self

    def changes(self) -> dict[str, Any]:
        return self.model_dump(include=self.model_fields_set)


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, pattern=CURSOR_PATTERN)

    def position(self) -> Position | None:
        return decode_cursor(self.cursor) if self.cursor else None


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    created_at: datetime
    updated_at: datetime


class UserPageOut(BaseModel):
    items: list[UserOut]
    next: str | None = Field(description="URL of the next page; null on the last page")


def encode_cursor(position: Position) -> str:
    created_at, user_id = position
    return f"{(created_at - _EPOCH) // _MICROSECOND}.{user_id.hex}"


def decode_cursor(cursor: str) -> Position:
    """Any string of CURSOR_PATTERN is a position: the contract says all the server checks."""
    micros, _, hex_id = cursor.partition(".")
    return _EPOCH + int(micros) * _MICROSECOND, uuid.UUID(hex=hex_id)
