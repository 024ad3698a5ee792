"""Where a request's time goes: pyinstrument over GET /api/v1/users/{id} in one process,
with everything on as in production (JSON logs, multiprocess metrics, tracing at 1 % with
an exporter). The WSGI app is called directly, so the profile holds the app and its
libraries, not Gunicorn or the network. Written to bench/results/profile-get-user.txt.

Run in a process of its own (`python -m bench.profile DATABASE_URL REDIS_URL USER_ID
OUTPUT`): instrumenting Flask, psycopg and Redis is process-wide and would skew every
measurement made after it in the same process."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

from pyinstrument import Profiler
from pyinstrument.renderers import ConsoleRenderer

from devtools.otlp_receiver import OtlpReceiver

REQUESTS = 3000


def profile_get_user(database_url: str, redis_url: str, user_id: str, output: Path) -> None:
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="bench-metrics-"))
    from app.factory import create_app
    from app.foundation.config import Settings
    from app.foundation.logs import configure_logging
    from app.foundation.tracing import create_tracer_provider
    from app.web.services import services

    receiver = OtlpReceiver().start()
    settings = Settings(
        app_env="production",
        database_url=database_url,
        redis_url=redis_url,
        smtp_url="smtp://127.0.0.1:1",
        otel_exporter_otlp_endpoint=receiver.endpoint,
        otel_traces_sampler_ratio=0.01,
    )
    configure_logging("info")
    with open(os.devnull, "w") as devnull:  # the lines are formatted, then dropped
        for handler in logging.getLogger().handlers:
            handler.setStream(devnull)  # type: ignore[attr-defined]
        provider = create_tracer_provider(settings, role="web")
        app = create_app(settings)
        client = app.test_client()
        for _ in range(300):  # warm caches, pools and compiled statements
            client.get(f"/api/v1/users/{user_id}", buffered=True)
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for _ in range(REQUESTS):
            client.get(f"/api/v1/users/{user_id}", buffered=True)
        profiler.stop()
        services(app).close()
        if provider is not None:
            provider.shutdown()
    receiver.stop()
    # Library frames stay visible where the overhead lives: tracing, ORM, driver, metrics.
    renderer = ConsoleRenderer(
        unicode=False,
        color=False,
        processor_options={"show_regex": r".*(opentelemetry|sqlalchemy/orm|prometheus|json).*"},
    )
    text = profiler.output(renderer)
    output.write_text(f"{REQUESTS} x GET /api/v1/users/{{id}}, in process\n\n{text}")


if __name__ == "__main__":
    database, redis, user, path = sys.argv[1:]
    profile_get_user(database, redis, user, Path(path))
