"""The deployment files are valid, and they agree with the code on ports, probe paths and
timeouts: the settings' defaults, gunicorn.conf.py, the Dockerfile, docker-compose.yml,
Prometheus' targets and the Kubernetes manifests. Fast and offline: the linters and
schemas are the project's dev dependencies."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from flask import Flask

from app.features.health.routes import bp as health_blueprint
from app.foundation.config import Settings
from devtools.processes import PROJECT_ROOT

BIN = Path(sys.executable).parent
K8S = PROJECT_ROOT / "deploy/k8s"
MANIFESTS = sorted(path for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")
EXAMPLE_SECRET = K8S / "secret.example.yaml"
# The oldest Kubernetes the manifests target (the preStop sleep action needs 1.30).
K8S_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
PROBES = {"startupProbe": "/startupz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
# Not settings of the service, but read from the same environment.
NOT_SETTINGS = {"PROMETHEUS_MULTIPROC_DIR"}


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def load(path: str) -> Any:
    return yaml.safe_load((PROJECT_ROOT / path).read_text())


def default(name: str) -> Any:
    """A setting's default as declared, untouched by this process's environment."""
    return Settings.model_fields[name].default


def seconds(duration: str) -> float:
    """A Compose duration ("35s", "2m30s", "1h") in seconds."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", duration)
    assert duration, "an empty duration"
    assert parts, f"not a duration: {duration!r}"
    hours, minutes, secs = (float(part or 0) for part in parts.groups())
    return hours * 3600 + minutes * 60 + secs


def manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes resource of the base, by "Kind/name", with the ConfigMap that
    kustomization.yaml generates from config.env (under its name before the hash)."""
    resources = {}
    for path in MANIFESTS:
        for resource in yaml.safe_load_all(path.read_text()):
            resources[f"{resource['kind']}/{resource['metadata']['name']}"] = resource
    lines = (K8S / "config.env").read_text().splitlines()
    data = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    resources["ConfigMap/users-service-config"] = {"kind": "ConfigMap", "data": data}
    return resources


def pod_spec(kind_and_name: str) -> dict[str, Any]:
    spec: dict[str, Any] = manifests()[kind_and_name]["spec"]["template"]["spec"]
    return spec


def configured(name: str) -> float:
    """A setting as the Kubernetes ConfigMap sets it, else its default."""
    data = manifests()["ConfigMap/users-service-config"]["data"]
    return float(data.get(name.upper(), default(name)))


# --- every file is valid ---------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    result = run_tool("hadolint", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_ignored_hadolint_rule_is_explained() -> None:
    lines = (PROJECT_ROOT / "Dockerfile").read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore" not in line:
            continue
        # The reason stands in the comment lines just above the pragma, naming the rule.
        explanation = "\n".join(lines[max(0, number - 4) : number])
        for rule in re.findall(r"DL\d{4}|SC\d{4}", line):
            assert rule in explanation, f"line {number + 1}: ignored {rule} without a reason"


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        ("docker-compose.yml", "vendor.compose-spec"),
        (".github/workflows/ci.yml", "vendor.github-workflows"),
    ],
)
def test_file_matches_its_schema(path: str, schema: str) -> None:
    result = run_tool("check-jsonschema", "--builtin-schema", schema, path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_kubernetes_manifest_is_valid(path: Path, version: str) -> None:
    for resource in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(resource, version, strict=True)


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    listed = set(load("deploy/k8s/kustomization.yaml")["resources"])
    assert listed == {path.name for path in MANIFESTS} - {EXAMPLE_SECRET.name}
    assert "namespace" not in load("deploy/k8s/kustomization.yaml")


def test_workflow_pins_every_action_by_commit() -> None:
    text = (PROJECT_ROOT / ".github/workflows/ci.yml").read_text()
    uses = re.findall(r"uses:\s*(\S+)(.*)", text)
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.search(r"#\s*v\d", comment), f"{action}: name the version in a comment"


def test_workflow_runs_the_make_targets_of_ci_run() -> None:
    def targets(path: str) -> set[str]:
        return set(re.findall(r"make ([a-z-]+)", (PROJECT_ROOT / path).read_text()))

    assert targets(".ci/run") <= targets(".github/workflows/ci.yml")


# --- the settings every file relies on ---------------------------------------------------


def test_env_example_lists_every_setting() -> None:
    text = (PROJECT_ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    missing = {name.upper() for name in Settings.model_fields} - listed
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_the_app_serves_the_probe_paths() -> None:
    app = Flask(__name__)
    app.register_blueprint(health_blueprint)
    assert set(PROBES.values()) <= {rule.rule for rule in app.url_map.iter_rules()}


def test_gunicorn_conf_takes_ports_and_timeouts_from_the_settings() -> None:
    tree = ast.parse((PROJECT_ROOT / "gunicorn.conf.py").read_text())
    assigned = {
        node.targets[0].id: ast.unparse(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    assert assigned["timeout"] == "settings.gunicorn_timeout"
    assert assigned["graceful_timeout"] == "settings.gunicorn_graceful_timeout"
    assert "settings.port" in assigned["bind"]
    source = ast.unparse(tree)
    assert "seconds=settings.shutdown_drain_seconds" in source
    assert "drain.install(server)" in source
    drain = ast.unparse(ast.parse((PROJECT_ROOT / "app/master/drain.py").read_text()))
    assert "time.sleep(self._seconds)" in drain
    assert "port=settings.metrics_port" in source


def test_dockerfile_exposes_the_ports_and_runs_as_a_numeric_user() -> None:
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    exposed = {
        int(port) for ports in re.findall(r"^EXPOSE (.+)$", text, re.M) for port in ports.split()
    }
    ports = {default("port"), default("metrics_port"), default("worker_metrics_port")}
    assert exposed == ports
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["tini", "--"\]$', text, re.M)
    assert re.search(r'^CMD \["gunicorn", "-c", "gunicorn.conf.py"\]$', text, re.M)


def test_configmap_holds_valid_settings_only() -> None:
    data = manifests()["ConfigMap/users-service-config"]["data"]
    assert set(data) <= {name.upper() for name in Settings.model_fields}
    settings = Settings(_env_file=None, **{key.lower(): value for key, value in data.items()})
    assert settings.port == default("port")
    assert settings.metrics_port == default("metrics_port")
    assert settings.worker_metrics_port == default("worker_metrics_port")
    assert settings.gunicorn_graceful_timeout <= settings.gunicorn_timeout


# --- docker-compose.yml -----------------------------------------------------------------


def compose_service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = load("docker-compose.yml")["services"][name]
    return service


def compose_setting(service: str, name: str) -> float:
    return float(compose_service(service)["environment"].get(name.upper(), default(name)))


def test_compose_wires_the_default_ports() -> None:
    api, worker = compose_service("api"), compose_service("worker")
    for service in (api, worker):
        environment = service["environment"]
        assert set(environment) - NOT_SETTINGS <= {name.upper() for name in Settings.model_fields}
        assert int(environment["PORT"]) == default("port")
        assert int(environment["METRICS_PORT"]) == default("metrics_port")
        assert int(environment["WORKER_METRICS_PORT"]) == default("worker_metrics_port")
    # Clients reach Gunicorn through nginx only (tests/deploy/test_nginx.py).
    assert "ports" not in api
    assert api["expose"] == [str(default("metrics_port"))]
    assert worker["expose"] == [str(default("worker_metrics_port"))]
    assert f":{default('port')}/readyz" in " ".join(api["healthcheck"]["test"])
    assert worker["healthcheck"]["test"] == ["CMD", "python", "-m", "worker", "check"]


def test_compose_stop_grace_periods_cover_drain_and_jobs() -> None:
    drain_and_graceful = compose_setting("api", "shutdown_drain_seconds") + compose_setting(
        "api", "gunicorn_graceful_timeout"
    )
    assert seconds(compose_service("api")["stop_grace_period"]) > drain_and_graceful
    job = compose_setting("worker", "job_timeout")
    assert seconds(compose_service("worker")["stop_grace_period"]) > job


def test_compose_worker_scales_and_waits_for_migrations() -> None:
    worker = compose_service("worker")
    assert "container_name" not in worker
    assert "ports" not in worker
    assert compose_service("migrate")["command"] == ["alembic", "upgrade", "head"]
    for name in ("api", "worker"):
        service = compose_service(name)
        condition = service["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"
        assert service["read_only"] is True
        assert any(mount.startswith("/tmp") for mount in service["tmpfs"])


def test_prometheus_scrapes_the_metrics_ports_with_the_alert_rules() -> None:
    config = load("deploy/prometheus/prometheus.yml")
    ports = {
        job["job_name"]: [sd["port"] for sd in job.get("dns_sd_configs", [])]
        for job in config["scrape_configs"]
    }
    assert ports["users-api"] == [default("metrics_port")]
    assert ports["users-worker"] == [default("worker_metrics_port")]
    mounted = " ".join(compose_service("prometheus")["volumes"])
    for rule_file in config["rule_files"]:
        assert f"deploy/prometheus/{Path(rule_file).name}:{rule_file}" in mounted


def test_grafana_provisions_the_dashboard() -> None:
    provider = load("deploy/grafana/provisioning/dashboards/users-service.yaml")["providers"][0]
    mounts = dict(
        volume.removesuffix(":ro").split(":", 1) for volume in compose_service("grafana")["volumes"]
    )
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert (PROJECT_ROOT / "deploy/grafana/dashboards/users-service.json").is_file()


# --- Kubernetes -----------------------------------------------------------------------


def container(kind_and_name: str) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod_spec(kind_and_name)["containers"]
    assert len(containers) == 1
    return containers[0]


def port_number(spec: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    numbers = {entry["name"]: entry["containerPort"] for entry in spec["ports"]}
    return int(numbers[port])


def test_api_probes_and_ports_match_the_app() -> None:
    spec = container("Deployment/users-api")
    for probe, path in PROBES.items():
        http_get = spec[probe]["httpGet"]
        assert http_get["path"] == path
        assert port_number(spec, http_get["port"]) == default("port")
    ports = {entry["containerPort"] for entry in spec["ports"]}
    assert ports == {default("port"), default("metrics_port")}


def test_worker_liveness_is_its_heartbeat_check() -> None:
    spec = container("Deployment/users-worker")
    assert spec["livenessProbe"]["exec"]["command"] == ["python", "-m", "worker", "check"]
    assert [entry["containerPort"] for entry in spec["ports"]] == [default("worker_metrics_port")]


@pytest.mark.parametrize(
    ("deployment", "port"),
    [("Deployment/users-api", "metrics_port"), ("Deployment/users-worker", "worker_metrics_port")],
)
def test_pods_are_annotated_for_prometheus(deployment: str, port: str) -> None:
    annotations = manifests()[deployment]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == default(port)


def test_api_grace_period_covers_prestop_drain_and_graceful_timeout() -> None:
    spec = pod_spec("Deployment/users-api")
    pre_stop = container("Deployment/users-api")["lifecycle"]["preStop"]["sleep"]["seconds"]
    needed = pre_stop + configured("shutdown_drain_seconds")
    needed += configured("gunicorn_graceful_timeout")
    assert spec["terminationGracePeriodSeconds"] > needed


def test_worker_grace_period_covers_the_longest_job() -> None:
    grace = pod_spec("Deployment/users-worker")["terminationGracePeriodSeconds"]
    assert grace > configured("job_timeout")


@pytest.mark.parametrize(
    "workload", ["Deployment/users-api", "Deployment/users-worker", "Job/users-service-migrate"]
)
def test_workloads_run_locked_down_on_a_read_only_root(workload: str) -> None:
    spec, main = pod_spec(workload), container(workload)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    security = main["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    tmp = {mount["name"] for mount in main["volumeMounts"] if mount["mountPath"] == "/tmp"}
    assert {volume["name"] for volume in spec["volumes"] if "emptyDir" in volume} >= tmp != set()
    # `command` would replace the image's ENTRYPOINT (tini), which forwards the signals.
    assert "command" not in main
    secrets = {
        entry["valueFrom"]["secretKeyRef"]["key"]
        for entry in main["env"]
        if "secretKeyRef" in entry.get("valueFrom", {})
    }
    assert {"DATABASE_URL", "REDIS_URL", "SMTP_URL"} <= secrets


def test_migration_job_runs_alembic() -> None:
    assert container("Job/users-service-migrate")["args"] == ["alembic", "upgrade", "head"]
