"""The process's Redis client, with every wait bounded."""

from __future__ import annotations

from redis import Redis
from redis.backoff import ConstantBackoff, NoBackoff
from redis.retry import Retry

from app.foundation.config import Settings


def create_redis(settings: Settings) -> Redis:
    """The client for real work: one quick retry (a dropped idle connection), no more.

    redis-py's default retries three times with up to seconds of backoff; a request
    must not wait that long on Redis, whose work the outbox can always do later.
    """
    # redis-py's pool checks the pid on every checkout, so it is safe across fork.
    assert settings.redis_url is not None, "REDIS_URL is resolved before the client"
    return Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_connect_timeout,
        health_check_interval=30,
        retry=Retry(ConstantBackoff(0.05), retries=1),
    )


def create_probe_redis(settings: Settings) -> Redis:
    """The client for health checks: one try within the readiness timeout, no retries,
    so a Redis outage is reported at once instead of after a backoff loop."""
    assert settings.redis_url is not None, "REDIS_URL is resolved before the client"
    return Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=settings.readiness_timeout,
        socket_connect_timeout=settings.readiness_timeout,
        retry=Retry(NoBackoff(), retries=0),
    )
