"""What `make run` prints once /readyz answers 200: where everything is.

The same text goes to var/banner.txt while the stack runs. URLs are masked (a password
given in DATABASE_URL or REDIS_URL is shown as ***; the embedded servers have none).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from app.foundation.config import Settings
from app.foundation.secret_urls import mask_url

BANNER_FILE_NAME = "banner.txt"


def client_host(host: str) -> str:
    # A wildcard bind is reached on loopback; an explicit address as given.
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104


def shown(url: str) -> str:
    """A password, when there is one, as ***; an empty one (`postgres:@`) is not a secret
    and masking it would suggest there is one to look for."""
    return mask_url(url) if urlsplit(url).password else url


@dataclass(frozen=True)
class StackFacts:
    settings: Settings
    urls: dict[str, str]
    inbox: Path | None
    smtp_url: str | None
    started_seconds: float

    @property
    def api_url(self) -> str:
        return f"http://{client_host(self.settings.host)}:{self.settings.port}"

    def lines(self) -> list[tuple[str, str]]:
        host = client_host(self.settings.host)
        rows = [
            ("API", f"{self.api_url}  (/readyz, /openapi.json, /api/v1/users)"),
            ("metrics", f"http://{host}:{self.settings.metrics_port}/metrics  (Gunicorn)"),
        ]
        if self.settings.worker_metrics_port:
            worker = f"http://{host}:{self.settings.worker_metrics_port}/metrics  (worker)"
            rows.append(("", worker))
        if self.inbox is not None:
            rows.append(("inbox", f"{self.inbox}/  (make mail; SMTP {self.smtp_url})"))
        elif self.smtp_url:
            rows.append(("mail", shown(self.smtp_url)))
        if "AUTH_ISSUER" in self.urls:
            rows.append(("token", f"make token  (issuer {self.urls['AUTH_ISSUER']})"))
        rows += [
            ("DATABASE_URL", shown(self.urls["DATABASE_URL"]) + "  (make psql)"),
            ("REDIS_URL", shown(self.urls["REDIS_URL"]) + "  (make redis-cli)"),
        ]
        return rows


def render(facts: StackFacts) -> str:
    title = f"users-service ready in {facts.started_seconds:.1f} s ({facts.settings.app_env})"
    width = max(len(name) for name, _ in facts.lines())
    body = [f"  {name:<{width}}  {value}" for name, value in facts.lines()]
    return "\n".join([title, *body, "  Ctrl-C stops everything."]) + "\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
