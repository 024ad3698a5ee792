"""The buffering reverse proxy's template and its wiring: it renders from its two
variables only, nginx accepts it, its limits are Gunicorn's and the settings', and
Compose and Kubernetes put it, not Gunicorn, in front of clients."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.foundation.config import Settings
from devtools.processes import PROJECT_ROOT
from tests.support.nginx import REFERENCE, TEMPLATE, VARIABLES, command, nginx_binary, write_config

TEXT = TEMPLATE.read_text()


def directive(name: str) -> list[str]:
    """The arguments of a directive the template sets once."""
    found = re.findall(rf"^\s*{name}\s+([^;]+);", TEXT, flags=re.MULTILINE)
    assert len(found) == 1, f"{name}: {found}"
    return str(found[0]).split()


def gunicorn_setting(name: str) -> Any:
    tree = ast.parse((PROJECT_ROOT / "gunicorn.conf.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f"gunicorn.conf.py sets no {name}")


def size(value: str) -> int:
    units = {"": 1, "k": 1024, "m": 1024 * 1024}
    number, unit = re.fullmatch(r"(\d+)([km]?)", value.lower()).groups()  # type: ignore[union-attr]
    return int(number) * units[unit]


def test_the_template_uses_its_two_variables_and_nginx_variables_only() -> None:
    # envsubst would replace any $NAME its environment defines; nginx's own are lower case.
    names = set(REFERENCE.findall(TEXT))
    assert {name for name in names if name != name.lower()} == set(VARIABLES)
    braced = set(re.findall(r"\$\{(\w+)\}", TEXT))
    assert braced == set(VARIABLES)


def test_the_rendered_template_passes_nginx_t(tmp_path: Path) -> None:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed and cannot be (not root, or no apt-get)")
    config = write_config(tmp_path, "127.0.0.1:8080", "127.0.0.1:8000")
    assert "${" not in (tmp_path / "default.conf").read_text()
    result = subprocess.run(
        command(binary, tmp_path, config, "-t"), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_the_limits_are_gunicorns_and_the_settings() -> None:
    assert (
        size(directive("client_max_body_size")[0])
        == Settings.model_fields["max_content_length"].default
    )
    # The longest header line nginx passes on is one buffer, CRLF included: Gunicorn's
    # field limit. A longer request line or too many fields reach Gunicorn, whose 414 and
    # 431 the location intercepts.
    count, buffer = directive("large_client_header_buffers")
    assert size(buffer) == gunicorn_setting("limit_request_field_size") + 2
    assert int(count) >= 2
    intercepted = re.search(r"location / \{(.*?)\n    \}", TEXT, flags=re.DOTALL)
    assert intercepted is not None
    body = intercepted.group(1)
    assert "proxy_intercept_errors on;" in body
    pages = {int(code) for code in re.findall(r"error_page (\d+)", body)}
    assert {414, 431, 500, 502, 504} <= pages
    # The app's own 400 and 503 carry details (and Retry-After) a page would lose.
    assert not pages & {400, 503}
    assert str(gunicorn_setting("limit_request_line")) in TEXT
    assert str(gunicorn_setting("limit_request_fields")) in TEXT


def test_every_error_page_is_problem_json_with_its_own_status() -> None:
    codes = {int(code) for code in re.findall(r"error_page (?:\d+ )*?(?:=)?(\d+) ", TEXT)}
    pages = dict(re.findall(r"location = /_problem/(\d+) \{(.*?)\n    \}", TEXT, flags=re.DOTALL))
    assert {400, 408, 413, 414, 431, 500, 502, 503, 504} <= {int(code) for code in pages}
    assert codes <= {int(code) for code in pages} | {494}
    for code, page in pages.items():
        assert "internal;" in page
        assert "default_type application/problem+json;" in page
        assert f"return {code} '{{" in page
        assert f'"status":{code},' in page


def test_the_request_body_and_the_response_are_buffered() -> None:
    assert directive("proxy_request_buffering") == ["on"]
    assert directive("proxy_buffering") == ["on"]
    assert directive("proxy_next_upstream") == ["off"]
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-ID"):
        assert re.search(rf"proxy_set_header {header} \$\w+;", TEXT), header


def test_the_kubernetes_configmap_holds_the_template_verbatim() -> None:
    configmap = yaml.safe_load((PROJECT_ROOT / "deploy/k8s/nginx-configmap.yaml").read_text())
    assert configmap["data"]["default.conf.template"] == TEXT, (
        "deploy/k8s/nginx-configmap.yaml differs from deploy/nginx/default.conf.template: "
        "copy the template into it"
    )


def load(path: str) -> Any:
    return yaml.safe_load((PROJECT_ROOT / path).read_text())


def test_compose_exposes_the_api_through_nginx_only() -> None:
    services = load("docker-compose.yml")["services"]
    api, nginx = services["api"], services["nginx"]
    port = Settings.model_fields["port"].default
    assert "ports" not in api
    assert nginx["image"].startswith("nginx:")
    assert "./deploy/nginx/default.conf.template:/etc/nginx/templates/" in nginx["volumes"][0]
    environment = nginx["environment"]
    assert environment["UPSTREAM"] == f"api:{port}"
    listen = environment["NGINX_LISTEN_PORT"]
    assert [published.rsplit(":", 1)[1] for published in nginx["ports"]] == [listen]
    # Gunicorn believes the edge network alone, on which only nginx and the API sit.
    subnet = load("docker-compose.yml")["networks"]["edge"]["ipam"]["config"][0]["subnet"]
    assert api["environment"]["FORWARDED_ALLOW_IPS"] == subnet
    assert nginx["networks"] == ["edge"]
    on_edge = {name for name, spec in services.items() if "edge" in spec.get("networks", [])}
    assert on_edge == {"api", "nginx"}


def test_kubernetes_serves_clients_through_the_nginx_sidecar() -> None:
    deployment = load("deploy/k8s/api-deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (sidecar,) = pod["initContainers"]
    assert sidecar["restartPolicy"] == "Always"
    env = {entry["name"]: entry["value"] for entry in sidecar["env"]}
    api = pod["containers"][0]
    gunicorn_port = {entry["name"]: entry["containerPort"] for entry in api["ports"]}
    assert env["UPSTREAM"] == f"127.0.0.1:{gunicorn_port['gunicorn']}"
    nginx_ports = {entry["name"]: entry["containerPort"] for entry in sidecar["ports"]}
    assert nginx_ports["http"] == int(env["NGINX_LISTEN_PORT"])
    service = load("deploy/k8s/api-service.yaml")
    assert [entry["targetPort"] for entry in service["spec"]["ports"]] == ["http"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert api[probe]["httpGet"]["port"] == "gunicorn"
    # Gunicorn trusts the sidecar: the FORWARDED_ALLOW_IPS default is loopback.
    assert "127.0.0.1" in Settings.model_fields["forwarded_allow_ips"].default
    security = sidecar["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in sidecar["volumeMounts"]}
    assert volumes[mounts["/etc/nginx/templates"]]["configMap"]["name"] == "users-api-nginx"
    for writable in ("/etc/nginx/conf.d", "/tmp", "/var/cache/nginx"):
        assert "emptyDir" in volumes[mounts[writable]]
    assert sidecar["resources"]["limits"]["memory"]
