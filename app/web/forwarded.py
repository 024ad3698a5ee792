"""The client's address behind the reverse proxy, believed from the proxy alone.

Gunicorn's `forwarded_allow_ips` decides whose X-Forwarded-Proto sets the scheme, but it
leaves REMOTE_ADDR the peer's: behind nginx every request would seem to come from the
proxy, in the access log and the admin audit alike. This applies the same allow list
(FORWARDED_ALLOW_IPS) to the address. From a trusted peer, REMOTE_ADDR becomes the last
X-Forwarded-For entry, the one the proxy appended (what it saw); the entries before it
are whatever the client claimed and are never believed. From any other peer the header
is ignored, so a client reaching Gunicorn directly cannot pose as someone else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING

from werkzeug.middleware.proxy_fix import ProxyFix

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ForwardedClient:
    """WSGI middleware: X-Forwarded-For names the client only when the peer is trusted.

    `trusted` None trusts every peer (FORWARDED_ALLOW_IPS=*), as Gunicorn does.
    """

    def __init__(self, app: WSGIApplication, trusted: list[Network] | None) -> None:
        self._direct = app
        # One proxy hop: the last X-Forwarded-For entry; scheme and host are left to
        # Gunicorn (secure_scheme_headers) and the Host header nginx passes on.
        self._proxied = ProxyFix(app, x_for=1, x_proto=0, x_host=0, x_port=0, x_prefix=0)
        self._trusted = trusted

    def _trusts(self, peer: str) -> bool:
        if self._trusted is None:
            return True
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:  # a Unix socket's peer: only a local process reaches it
            return True
        return any(address in network for network in self._trusted)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self._trusts(environ.get("REMOTE_ADDR", "")):
            return self._proxied(environ, start_response)
        return self._direct(environ, start_response)
