"""The README and docs/ agree with the code: settings, metric names, links, make targets.

Pure and fast: these tests read files (and import Settings); they start no server.

What counts as what, in README.md and docs/*.md:
- a *setting row* is a table row in the `## Settings` section of docs/configuration.md
  (up to the next `## ` heading); each must read "| `NAME` | …", one setting per row;
- a *metric mention* is an inline code span that is a bare lower-case identifier with a
  metric prefix (`http_`, `db_pool_`, …) or suffix (`_total`, `_seconds`, …), except the
  few listed in NOT_METRICS;
- a *relative link* is a markdown link `[text](target)` whose target has no scheme;
- a *make call* is `make <target>` inside inline code or a fenced code block.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client import CollectorRegistry

from app.foundation.config import Settings
from app.web.http_metrics import init_http_metrics
from tests.support.promql import service_metrics

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CONFIGURATION = ROOT / "docs/configuration.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
SETTING_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \|")
METRIC_PREFIXES = ("http_", "db_pool_", "rq_", "gunicorn_", "outbox_", "users_", "app_info")
METRIC_SUFFIXES = ("_total", "_seconds", "_bytes", "_bucket", "_sum", "_count", "_info")
# Identifiers that look like metrics and are not: an export's progress field (docs/api.md).
NOT_METRICS = frozenset({"rows_total"})
METRIC_DEFINITION = re.compile(
    r"\b(Counter|Gauge|Histogram|Summary|Info|Enum)(?:MetricFamily)?\(\s*\"([a-zA-Z_:][\w:]*)\""
)
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
MAKE_CALL = re.compile(r"(?<![\w-])make ([a-z][a-z0-9-]*)")
MAKEFILE_TARGET = re.compile(r"^([a-z][a-z0-9-]*):", re.MULTILINE)


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def prose(page: Path) -> str:
    """The page without its fenced code blocks."""
    return FENCE.sub("", page.read_text())


def code(page: Path) -> list[str]:
    """The page's fenced code blocks and inline code spans."""
    text = page.read_text()
    return FENCE.findall(text) + INLINE_CODE.findall(FENCE.sub("", text))


def section(text: str, heading: str) -> str:
    """A `## heading` section, up to the next `## ` heading."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : None if end == -1 else end]


def settings_rows() -> list[str]:
    """The body rows (not header or separator) of the tables under `## Settings`."""
    lines = section(CONFIGURATION.read_text(), "Settings").splitlines()
    rows = [line for line in lines if line.startswith("|")]
    return [row for row in rows if not row.startswith(("| variable ", "| ---"))]


def exposed_names(kind: str, name: str) -> set[str]:
    """The names prometheus_client exposes for a metric defined as `kind(name, …)`."""
    if kind == "Counter":
        return {name.removesuffix("_total") + "_total"}
    if kind in ("Histogram", "Summary"):
        series = {f"{name}_sum", f"{name}_count"}
        return {name, *series, f"{name}_bucket"} if kind == "Histogram" else {name, *series}
    if kind == "Info":
        return {f"{name}_info"}
    return {name}


@functools.cache
def code_metrics() -> set[str]:
    """Every metric name defined in app/ and worker/ (first string argument of the
    constructor), and the request metrics prometheus-flask-exporter defines for the app
    (read from a registry it filled), with the series names Prometheus sees."""
    sources = [*ROOT.glob("app/**/*.py"), *ROOT.glob("worker/**/*.py")]
    defined = {
        exposed
        for path in sources
        for kind, name in METRIC_DEFINITION.findall(path.read_text())
        for exposed in exposed_names(kind, name)
    }
    registry = CollectorRegistry()
    init_http_metrics(Flask("docs"), registry, version="v", revision="r")
    kinds = {"counter": "Counter", "histogram": "Histogram", "gauge": "Gauge"}
    exporter = {
        exposed
        for family in registry.collect()
        for exposed in exposed_names(kinds[family.type], family.name)
    }
    return defined | exporter


def mentioned_metrics(page: Path) -> set[str]:
    spans = INLINE_CODE.findall(prose(page))
    identifiers = (span for span in spans if re.fullmatch(r"[a-z][a-z0-9_]*", span))
    return {
        name
        for name in identifiers
        if (name.startswith(METRIC_PREFIXES) or name.endswith(METRIC_SUFFIXES))
        and name not in NOT_METRICS
    }


def anchors(page: Path) -> set[str]:
    """GitHub's ids for the page's headings."""
    headings = re.findall(r"^#+ (.+)$", prose(page), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def link_resolves(page: Path, target: str) -> bool:
    """The linked file exists and, for a `#fragment` into markdown, so does the heading."""
    path, _, fragment = target.partition("#")
    linked = (page.parent / path).resolve() if path else page
    if not linked.exists():
        return False
    return not fragment or linked.suffix != ".md" or fragment in anchors(linked)


def test_readme_has_at_most_200_lines() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= 200, f"README.md has {lines} lines: move detail to docs/"


def test_every_settings_row_names_one_setting() -> None:
    malformed = [row for row in settings_rows() if not SETTING_ROW.match(row)]
    assert not malformed, f"rows that do not read '| `NAME` | …': {malformed}"


def test_settings_rows_are_exactly_the_settings_fields() -> None:
    documented = [m.group(1) for row in settings_rows() if (m := SETTING_ROW.match(row))]
    fields = {name.upper() for name in Settings.model_fields}
    assert len(documented) == len(set(documented)), "a setting has two rows"
    assert not fields - set(documented), f"undocumented settings: {fields - set(documented)}"
    assert not set(documented) - fields, f"rows that are no setting: {set(documented) - fields}"


def test_metric_definitions_are_found_in_the_code() -> None:
    found = code_metrics()
    assert {"http_request_duration_seconds", "gunicorn_process_cpu_seconds_total"} <= found
    assert {"rq_job_duration_seconds_bucket", "db_pool_overflow"} <= found
    assert len(found) >= 20


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_metric_named_in_the_docs_exists_in_the_code(page: Path) -> None:
    unknown = mentioned_metrics(page) - code_metrics()
    assert not unknown, f"{page_id(page)} names metrics the code does not define: {unknown}"


def test_every_metric_the_code_defines_is_documented() -> None:
    documented = mentioned_metrics(ROOT / "docs/observability.md")
    families = {name for name in code_metrics() if not name.endswith(("_bucket", "_sum", "_count"))}
    assert not families - documented, f"missing from docs/observability.md: {families - documented}"


def test_every_metric_in_the_dashboard_and_alerts_exists_in_the_code() -> None:
    used = service_metrics()
    assert used, "no metric found in the dashboard and alerts"
    assert not used - code_metrics(), f"not defined in app/ or worker/: {used - code_metrics()}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_relative_link_points_to_an_existing_file(page: Path) -> None:
    targets = MARKDOWN_LINK.findall(prose(page))
    relative = [target for target in targets if not re.match(r"[a-z][a-z0-9+.-]*:", target)]
    broken = [target for target in relative if not link_resolves(page, target)]
    assert not broken, f"{page_id(page)}: broken links {broken}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_make_target_mentioned_is_in_the_makefile(page: Path) -> None:
    targets = set(MAKEFILE_TARGET.findall((ROOT / "Makefile").read_text()))
    mentioned = {target for snippet in code(page) for target in MAKE_CALL.findall(snippet)}
    assert not mentioned - targets, f"{page_id(page)}: not Makefile targets: {mentioned - targets}"
