"""Connection URLs made safe to print: every password, and every query parameter whose
name says it is a secret, replaced by ***.

Parsed the way the clients parse them, and where a client would misparse, masked more,
never less: a password may hold a raw `#`, `/`, `?` (SQLAlchemy connects with
`postgresql://u:RawHash#Pw@host/db`) or `@` (an SMTP user name such as
`mailer@example.org`, which the SMTP client takes from before the last `@`), so the user
information is everything before the *last* `@`, whatever a generic URL parser says.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"
_SECRET_WORDS = ("password", "secret", "token")


def is_secret_name(name: str) -> bool:
    return any(word in name.lower() for word in _SECRET_WORDS)


def mask_url(url: str) -> str:
    """Any URL: the password in its user information and secret query values masked."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    userinfo, at, location = rest.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        userinfo = f"{user}:{MASK}" if colon else userinfo
    return f"{scheme}://{userinfo}{at}{_mask_query(location)}"


def mask_database_url(url: str) -> str:
    """DATABASE_URL as SQLAlchemy reads it, with SQLAlchemy's own password hiding."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return mask_url(url)
    # The authority as SQLAlchemy reads and hides it; the query as written (SQLAlchemy
    # would render it escaped, host=%2Ftmp), its secret values masked.
    shown = parsed.set(query={}).render_as_string(hide_password=True)
    _, question, query = url.rpartition("@")[2].partition("?")
    return shown + _mask_query(f"{question}{query}") if question else shown


def _mask_query(location: str) -> str:
    path, question, query = location.partition("?")
    if not question:
        return location
    query, hash_sign, fragment = query.partition("#")
    parameters = []
    for parameter in query.split("&"):
        name, equals, _value = parameter.partition("=")
        parameters.append(f"{name}={MASK}" if equals and is_secret_name(name) else parameter)
    return f"{path}?{'&'.join(parameters)}{hash_sign}{fragment}"
