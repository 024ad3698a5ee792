"""`make k8s-image`: the overlay's image entry is rewritten, its comments kept."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from devtools.k8s_image import set_image, split_image
from devtools.processes import PROJECT_ROOT

OVERLAY = PROJECT_ROOT / "deploy/overlays/example/kustomization.yaml"


def test_a_registry_with_a_port_keeps_its_colon() -> None:
    assert split_image("localhost:5000/team/users-service:1.4.0") == (
        "localhost:5000/team/users-service",
        "1.4.0",
    )
    with pytest.raises(ValueError, match="NAME:TAG"):
        split_image("localhost:5000/team/users-service")


def test_the_overlay_gets_the_image_and_keeps_its_comments(tmp_path: Path) -> None:
    copy = tmp_path / "kustomization.yaml"
    shutil.copy(OVERLAY, copy)
    set_image(copy, "registry.example.com/team/users-service:2.0.1")
    [entry] = yaml.safe_load(copy.read_text())["images"]
    assert entry == {
        "name": "users-service",
        "newName": "registry.example.com/team/users-service",
        "newTag": "2.0.1",
    }
    assert copy.read_text().startswith("# An overlay for a real cluster")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl (kustomize built in)")
def test_the_overlay_renders_with_the_image_and_a_hashed_configmap() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(OVERLAY.parent)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    resources = list(yaml.safe_load_all(rendered))
    [config] = [r for r in resources if r["metadata"]["name"].startswith("users-service-config-")]
    for kind_name in (
        "Deployment/users-api",
        "Deployment/users-worker",
        "Job/users-service-migrate",
    ):
        kind, name = kind_name.split("/")
        [workload] = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
        pod = workload["spec"]["template"]["spec"]
        [app] = [c for c in pod["containers"] if c["image"].endswith(":0.1.0")]
        assert app["image"] == "registry.example.com/users-service:0.1.0"
        assert {"configMapRef": {"name": config["metadata"]["name"]}} in app["envFrom"]
    [job] = [r for r in resources if r["kind"] == "Job"]
    assert "ttlSecondsAfterFinished" not in job["spec"], "a second release would hit it"
