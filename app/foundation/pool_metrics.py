"""Prometheus gauges of a process's database pools (web workers and RQ workers alike)."""

from __future__ import annotations

from prometheus_client import Gauge
from sqlalchemy import Engine, event

DB_POOL_IN_USE = Gauge(
    "db_pool_connections_in_use",
    "Pooled connections checked out.",
    ["pool"],
    multiprocess_mode="livesum",
)
DB_POOL_OVERFLOW = Gauge(
    "db_pool_overflow",
    "Connections open beyond DB_POOL_SIZE.",
    ["pool"],
    multiprocess_mode="livesum",
)


def instrument_pool(engine: Engine, *, pool: str) -> None:
    """Track checked-out and overflow connections of one of this process's pools."""
    connections = engine.pool
    in_use = DB_POOL_IN_USE.labels(pool)
    overflow = DB_POOL_OVERFLOW.labels(pool)

    last_overflow = 0

    def checked_out(*_args: object) -> None:
        nonlocal last_overflow
        in_use.inc()
        # Written only when it changes: each write is a locked write to a shared file.
        current = max(0, connections.overflow())  # type: ignore[attr-defined]
        if current != last_overflow:
            overflow.set(current)
            last_overflow = current

    def checked_in(*_args: object) -> None:
        in_use.dec()

    event.listen(connections, "checkout", checked_out)
    event.listen(connections, "checkin", checked_in)
