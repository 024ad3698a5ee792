"""Prometheus' promtool, for checking the alert rules offline and linting expositions.

Debian's `prometheus` package ships it (no PyPI wheel does). Installing that package also
installs a Prometheus server service: where no `policy-rc.d` already forbids services to
start (a Docker image has one), a temporary one does for the length of the install, so no
server is left running on a developer's machine or in CI."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Debian's documented switch (invoke-rc.d): exit 101 means "do not start anything".
POLICY = Path("/usr/sbin/policy-rc.d")
DENY_ALL = "#!/bin/sh\n# Written by tests/support/promtool.py during apt-get install.\nexit 101\n"


def _find() -> str | None:
    return shutil.which("promtool")


def _apt_install(package: str) -> None:
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": False}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], timeout=300, **quiet)  # type: ignore[call-overload]
    subprocess.run(  # type: ignore[call-overload]
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
        timeout=600,
        env=env,
        **quiet,
    )


def _install_without_starting_services() -> None:
    ours = not POLICY.exists()
    if ours:
        POLICY.write_text(DENY_ALL)
        POLICY.chmod(0o755)
    try:
        _apt_install("prometheus")
    finally:
        if ours:
            POLICY.unlink(missing_ok=True)


@functools.cache  # one install attempt per test session, not one per test
def promtool_binary() -> str | None:
    """promtool, installed from Debian when missing and we are root (CI is); else None."""
    found = _find()
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        _install_without_starting_services()
        found = _find()
    return found


def require_promtool() -> str:
    """promtool, or skip the calling test saying why it cannot run."""
    found = promtool_binary()
    if found is None:
        pytest.skip("promtool is not installed and cannot be (needs root and apt-get)")
    return found


def run(*args: str, stdin: str | None = None, cwd: Path | None = None) -> tuple[int, str]:
    """promtool's exit code and everything it printed, for assertion messages."""
    result = subprocess.run(
        [require_promtool(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr
