"""The master's metric files survive Gunicorn re-reading its config on SIGHUP."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from app.foundation.migrations import PROJECT_ROOT


def test_a_reread_config_shares_the_scrape_collectors_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_ENV", "development")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    monkeypatch.setenv("DRAIN_FLAG_FILE", str(tmp_path / "drain"))
    config = str(PROJECT_ROOT / "gunicorn.conf.py")

    first = runpy.run_path(config)["metric_files"]
    reread = runpy.run_path(config)["metric_files"]  # what SIGHUP does

    assert reread is first
    assert reread.lock is first.lock
