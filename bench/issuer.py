"""Every benchmarked service trusts a local issuer, and every client sends its token, as
in production: set once in this process's environment, which the servers inherit."""

from __future__ import annotations

import os
from pathlib import Path

from devtools.issuer import AUDIENCE, DevIssuer
from devtools.processes import TOKEN_VARIABLE


def trust_a_local_issuer(work: Path) -> DevIssuer:
    issuer = DevIssuer(work / "issuer.pem").start()
    os.environ |= {
        "AUTH_ISSUER": issuer.url,
        "AUTH_AUDIENCE": AUDIENCE,
        TOKEN_VARIABLE: issuer.token(ttl_seconds=6 * 3600),
        # One client writes hundreds a second here: the limiter is on, its limit out of reach.
        "RATE_LIMIT_WRITES": "10000000/minute",
    }
    return issuer
