"""X-Forwarded-For names the client only when the peer is a trusted proxy."""

from __future__ import annotations

import pytest
from flask import Flask, request

from app.foundation.config import ConfigError, Settings, load_settings
from app.web.forwarded import ForwardedClient


def client_address(trusted: str, peer: str, forwarded_for: str | None) -> str:
    app = Flask(__name__)
    app.add_url_rule("/", "who", lambda: request.remote_addr or "")
    proxies = Settings(_env_file=None, forwarded_allow_ips=trusted).trusted_proxies
    app.wsgi_app = ForwardedClient(app.wsgi_app, proxies)  # type: ignore[method-assign]
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    response = app.test_client().get("/", headers=headers, environ_base={"REMOTE_ADDR": peer})
    return response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded_for", "seen"),
    [
        # From the proxy: the entry it appended, never what the client put before it.
        ("127.0.0.1,::1", "127.0.0.1", "203.0.113.9, 198.51.100.4", "198.51.100.4"),
        ("10.0.0.0/8", "10.1.2.3", "198.51.100.4", "198.51.100.4"),
        ("*", "192.0.2.1", "198.51.100.4", "198.51.100.4"),
        # From anyone else the header is ignored.
        ("127.0.0.1", "192.0.2.1", "203.0.113.9", "192.0.2.1"),
        ("10.0.0.0/8", "11.0.0.1", "203.0.113.9", "11.0.0.1"),
        # A trusted peer without the header is the client itself.
        ("127.0.0.1", "127.0.0.1", None, "127.0.0.1"),
    ],
)
def test_client_address(trusted: str, peer: str, forwarded_for: str | None, seen: str) -> None:
    assert client_address(trusted, peer, forwarded_for) == seen


def test_a_bad_allow_list_is_a_config_error_without_its_value() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(forwarded_allow_ips="127.0.0.1,proxy.internal")
    assert "FORWARDED_ALLOW_IPS" in str(raised.value)
    assert "proxy.internal" not in str(raised.value)
