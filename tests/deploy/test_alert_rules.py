"""The alert rules checked by Prometheus' own tool: they load, the compose Prometheus
config that loads them is valid, and every alert fires and stays silent as its unit
tests (deploy/prometheus/alerts.test.yml) say, `for:` durations included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from devtools.processes import PROJECT_ROOT
from tests.support import promtool
from tests.support.promql import ALERTS, alert_rules

CONFIG = PROJECT_ROOT / "deploy/prometheus/prometheus.yml"
UNIT_TESTS = PROJECT_ROOT / "deploy/prometheus/alerts.test.yml"
COMPOSE = PROJECT_ROOT / "docker-compose.yml"


def assert_promtool_succeeds(*args: str) -> str:
    code, output = promtool.run(*args, cwd=PROJECT_ROOT)
    assert code == 0, f"promtool {' '.join(args)} exited {code}:\n{output}"
    return output


def test_the_alert_rules_load() -> None:
    output = assert_promtool_succeeds("check", "rules", str(ALERTS.relative_to(PROJECT_ROOT)))
    assert f"SUCCESS: {len(alert_rules())} rules found" in output


def compose_mounts() -> dict[str, Path]:
    """Container path -> file of this repo, for the compose Prometheus' bind mounts."""
    service = yaml.safe_load(COMPOSE.read_text())["services"]["prometheus"]
    mounts = {}
    for volume in service["volumes"]:
        source, target, *_mode = volume.split(":")
        if source.startswith("./"):
            mounts[target] = PROJECT_ROOT / source
    return mounts


def test_the_prometheus_config_is_valid_with_the_rule_files_compose_mounts(
    tmp_path: Path,
) -> None:
    """prometheus.yml names its rule files by their path inside the container; the copy
    checked here names, instead, the repo files that compose mounts at those paths, so
    promtool reads the very rules Prometheus would (and fails if a mount is missing)."""
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    mounts = compose_mounts()
    assert set(config["rule_files"]) <= set(mounts), "a rule file compose does not mount"
    config["rule_files"] = [str(mounts[path]) for path in config["rule_files"]]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config, sort_keys=False))
    output = assert_promtool_succeeds("check", "config", str(copy))
    assert f"SUCCESS: {len(alert_rules())} rules found" in output


def test_every_alert_passes_its_unit_tests() -> None:
    output = assert_promtool_succeeds("test", "rules", str(UNIT_TESTS.relative_to(PROJECT_ROOT)))
    assert "SUCCESS" in output


def cases_by_alert() -> dict[str, list[list[Any]]]:
    """alertname -> the expected alerts of each evaluation the unit tests make of it."""
    found: dict[str, list[list[Any]]] = {}
    for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            found.setdefault(case["alertname"], []).append(case.get("exp_alerts") or [])
    return found


def test_every_alert_has_unit_tests_that_see_it_fire_and_stay_silent() -> None:
    """A new alert in alerts.yml fails here until alerts.test.yml shows it firing and
    shows it silent: a rule that can never fire, or always does, passes no test."""
    tested = cases_by_alert()
    alerts = {rule["alert"] for rule in alert_rules()}
    assert sorted(alerts - tested.keys()) == [], "alerts without unit tests"
    assert sorted(tested.keys() - alerts) == [], "unit tests of alerts that do not exist"
    for alert in sorted(alerts):
        assert any(expected for expected in tested[alert]), f"{alert} is never seen firing"
        assert any(not expected for expected in tested[alert]), f"{alert} is never silent"
