"""The users feature's own business metric."""

from __future__ import annotations

from prometheus_client import Counter

USERS_CREATED = Counter("users_created_total", "Users created.")
