"""Typed, validated 12-factor settings.

Every setting is an environment variable (and, in development, a line of `.env`, or of
`var/stack.env`, which `make run` writes while it runs, so that operator commands on a
laptop find the servers it started);
processes that take flags pass them to `load_settings()` as overrides. A bad setting
becomes a `ConfigError` with one line per problem, naming the variable, never its value.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from typing import Annotated, Any, Literal, NoReturn
from urllib.parse import urlsplit, urlunsplit

import limits
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.foundation.secret_urls import mask_database_url, mask_url

Environment = Literal["development", "test", "production"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
Seconds = Annotated[float, Field(gt=0)]

_POSTGRES_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg"}
_REDIS_SCHEMES = {"redis", "rediss", "unix"}
_SMTP_SCHEMES = {"smtp", "smtps"}


class ConfigError(Exception):
    """The settings are invalid; `problems` holds one human-readable line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _default_workers() -> int:
    # Sync workers serve one request each: 2 per core plus one is Gunicorn's advice.
    # sched_getaffinity honours a container's cpuset; os.cpu_count() would not.
    return 2 * len(os.sched_getaffinity(0)) + 1


# Written by `make run` (devtools/stack.py) and removed when it stops; never in an image.
STACK_ENV_FILE = "var/stack.env"


def _networks(value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    """Comma-separated addresses and CIDR networks, as Gunicorn's forwarded_allow_ips."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if "*" in entries:
        return None
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError("must be IP addresses or networks separated by commas, or *") from None
    return networks


class Settings(BaseSettings):
    """Everything the web app, Gunicorn and the worker can be told from outside."""

    model_config = SettingsConfigDict(
        # Later files win; the environment wins over both.
        env_file=(".env", STACK_ENV_FILE),
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
        hide_input_in_errors=True,
        # VAR= (empty) means unset, as most shells and orchestrators intend it.
        env_ignore_empty=True,
        frozen=True,
    )

    app_env: Environment = "production"
    service_name: str = "users-api"
    app_version: str = "dev"
    git_revision: str = "unknown"

    host: str = "0.0.0.0"  # noqa: S104 - a container must listen on every interface
    port: int = Field(8000, ge=1, le=65535)
    web_concurrency: int = Field(default_factory=_default_workers, ge=1, le=64)
    gunicorn_timeout: int = Field(30, ge=1)
    gunicorn_graceful_timeout: int = Field(25, ge=1)
    gunicorn_keepalive: int = Field(5, ge=0)
    gunicorn_max_requests: int = Field(10_000, ge=0)
    gunicorn_max_requests_jitter: int = Field(1000, ge=0)
    gunicorn_preload_app: bool = False
    shutdown_drain_seconds: float = Field(5.0, ge=0, le=120)
    drain_flag_file: str | None = None
    # Peers whose X-Forwarded-* headers Gunicorn and the app believe: the reverse proxy.
    forwarded_allow_ips: str = "127.0.0.1,::1"

    metrics_enabled: bool = True
    metrics_port: int = Field(9100, ge=1, le=65535)
    worker_metrics_port: int = Field(9101, ge=0, le=65535)

    otel_exporter_otlp_endpoint: str | None = None
    otel_traces_sampler_ratio: float | None = Field(None, ge=0, le=1)

    log_level: LogLevel = "info"
    max_content_length: int = Field(1024 * 1024, ge=1024)

    database_url: SecretStr | None = None
    # Per pool: a web process has two (reads, writes), each serving one request at a time.
    db_pool_size: int = Field(1, ge=1, le=100)
    db_max_overflow: int = Field(1, ge=0, le=100)
    db_pool_timeout: Seconds = 3.0
    db_pool_recycle: int = Field(1800, ge=-1)
    db_pool_pre_ping: bool = True
    db_connect_timeout: int = Field(3, ge=1)
    db_statement_timeout_ms: int = Field(5000, ge=0)

    redis_url: SecretStr | None = None
    redis_socket_timeout: Seconds = 2.0
    redis_connect_timeout: Seconds = 2.0

    readiness_timeout: Seconds = 1.0
    # A request's view, whatever it waits on (app/foundation/deadline.py); 0 is no bound.
    request_timeout: Seconds = 10.0
    admin_token: SecretStr | None = None

    # Bearer tokens from an OpenID Connect issuer (app/foundation/access_tokens.py).
    auth_issuer: str | None = None
    auth_audience: str | None = None
    # Default: the jwks_uri of the issuer's discovery document.
    auth_jwks_url: str | None = None
    auth_leeway_seconds: int = Field(30, ge=0, le=300)
    auth_max_token_bytes: int = Field(8192, ge=512, le=65536)
    # At most one key fetch per this many seconds, however many unknown kids arrive.
    auth_jwks_refresh_seconds: Seconds = 30.0
    auth_jwks_timeout: Seconds = 1.0
    # Where the last good key set is kept for this server's processes; gunicorn.conf.py
    # sets a private directory of the master's. Unset: memory only.
    auth_jwks_cache_file: str | None = None

    # Abuse limits (app/web/rate_limits.py), "N/second|minute|hour|day"; unset: no limit.
    rate_limits_enabled: bool = True
    rate_limit_writes: str | None = "120/minute"
    rate_limit_exports: str | None = "10/hour"
    rate_limit_failed_auth: str | None = "60/minute"

    smtp_url: SecretStr | None = None
    smtp_timeout: Seconds = 10.0
    mail_from: str = "Users API <no-reply@example.com>"

    job_timeout: int = Field(120, ge=1)
    job_retry_max: int = Field(5, ge=0, le=25)
    job_retry_base_seconds: int = Field(2, ge=1)
    job_retry_cap_seconds: int = Field(300, ge=1)
    outbox_relay_interval: int = Field(2, ge=1)
    outbox_relay_age_seconds: int = Field(5, ge=0)
    outbox_lease_seconds: int = Field(300, ge=1)
    outbox_retention_hours: int = Field(24, ge=1)
    export_ttl_seconds: int = Field(24 * 3600, ge=60)
    idempotency_key_ttl_seconds: int = Field(24 * 3600, ge=60)
    export_batch_size: int = Field(5000, ge=100, le=100_000)

    worker_queues: str = "default,exports"
    worker_processes: int = Field(1, ge=1, le=64)
    worker_job_monitoring_interval: int = Field(10, ge=1)
    worker_maintenance_interval: int = Field(60, ge=1)
    worker_heartbeat_file: str = "/tmp/worker.heartbeat"  # noqa: S108 - private per container
    worker_liveness_seconds: int = Field(60, ge=5)

    @field_validator("rate_limit_writes", "rate_limit_exports", "rate_limit_failed_auth")
    @classmethod
    def _rate_limit(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                limits.parse(value)
            except ValueError:
                raise ValueError("must read like 120/minute") from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lowercase_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in _POSTGRES_SCHEMES:
            raise ValueError("must be a postgresql+psycopg:// URL")
        # One driver for the whole service: psycopg 3, whatever scheme spelling was given.
        return SecretStr(urlunsplit(parts._replace(scheme="postgresql+psycopg")))

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and urlsplit(value.get_secret_value()).scheme not in _REDIS_SCHEMES:
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and urlsplit(value.get_secret_value()).scheme not in _SMTP_SCHEMES:
            raise ValueError("must be an smtp:// or smtps:// URL")
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _address_list(cls, value: str) -> str:
        _networks(value)  # raises ValueError on a bad entry
        return value

    @field_validator("admin_token")
    @classmethod
    def _strong_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def traces_sampler_ratio(self) -> float:
        """OTEL_TRACES_SAMPLER_RATIO, else 1% in production and every trace elsewhere."""
        if self.otel_traces_sampler_ratio is not None:
            return self.otel_traces_sampler_ratio
        return 0.01 if self.is_production else 1.0

    @property
    def queue_names(self) -> list[str]:
        return [name.strip() for name in self.worker_queues.split(",") if name.strip()]

    @property
    def trusted_proxies(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
        """FORWARDED_ALLOW_IPS as networks; None for `*`, which trusts every peer."""
        return _networks(self.forwarded_allow_ips)

    def retry_intervals(self) -> list[int]:
        """Seconds before each retry: exponential from the base, capped."""
        base, cap = self.job_retry_base_seconds, self.job_retry_cap_seconds
        return [min(cap, base * 2**attempt) for attempt in range(self.job_retry_max)]

    def environment_problems(self) -> list[str]:
        """Rules that depend on more than one setting, one line per problem."""
        problems = []
        if self.is_production:
            for name in ("database_url", "redis_url", "smtp_url"):
                if getattr(self, name) is None:
                    problems.append(
                        f"{name.upper()}: is required when APP_ENV=production "
                        "(embedded servers and the console mailer are for development only)"
                    )
            for name in ("auth_issuer", "auth_audience"):
                if getattr(self, name) is None:
                    problems.append(
                        f"{name.upper()}: is required when APP_ENV=production "
                        "(the API takes bearer tokens from an OpenID Connect issuer)"
                    )
        if self.gunicorn_graceful_timeout > self.gunicorn_timeout:
            problems.append("GUNICORN_GRACEFUL_TIMEOUT: must not exceed GUNICORN_TIMEOUT")
        if self.request_timeout >= self.gunicorn_timeout:
            # Gunicorn would kill the worker first and the client get no answer at all.
            problems.append("REQUEST_TIMEOUT: must be less than GUNICORN_TIMEOUT")
        if self.outbox_lease_seconds <= self.job_timeout:
            # Otherwise a job still running legitimately would be dispatched again.
            problems.append("OUTBOX_LEASE_SECONDS: must exceed JOB_TIMEOUT")
        return problems

    def redacted(self) -> dict[str, Any]:
        """The effective settings, safe to print: secrets masked, and every URL (the
        database's, Redis's, SMTP's, the OTLP endpoint, the issuer's) with its password
        and secret query parameters masked."""
        shown: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            if name == "database_url" and text is not None:
                value = mask_database_url(text)
            elif isinstance(text, str) and "://" in text:
                value = mask_url(text)
            elif isinstance(value, SecretStr):
                value = "**********"
            shown[name.upper()] = value
        # Unset means a default that depends on APP_ENV: show the ratio in effect.
        shown["OTEL_TRACES_SAMPLER_RATIO"] = self.traces_sampler_ratio
        return shown


def _describe(error: Any) -> str:
    name = ".".join(str(part) for part in error["loc"]).upper() or "SETTINGS"
    message = error["msg"].removeprefix("Value error, ")
    return f"{name}: {message}"


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment; `overrides` (command-line flags) win."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        raise ConfigError([_describe(error) for error in exc.errors(include_input=False)]) from None
    problems = settings.environment_problems()
    if problems:
        raise ConfigError(problems)
    return settings


def exit_on_config_error(error: ConfigError) -> NoReturn:
    """Report every problem on stderr, one line each, and exit with status 2 (usage error)."""
    for problem in error.problems:
        print(f"config error: {problem}", file=sys.stderr)
    raise SystemExit(2)


def load_settings_or_exit(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except ConfigError as error:
        exit_on_config_error(error)
