"""The layer contracts in pyproject.toml hold, and `make lint` fails when one is broken."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.foundation.migrations import PROJECT_ROOT

PACKAGES = ("app", "worker", "devtools", "bench", "tests")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tree_keeps_every_layer_contract() -> None:
    result = lint_imports(PROJECT_ROOT)
    assert result.returncode == 0, result.stdout
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "source", "broken"),
    [
        ("app/foundation/violation.py", "import flask\n", "know nothing of Flask"),
        ("worker/violation.py", "import app.web.errors\n", "never imports the web layer"),
        ("app/jobs/violation.py", "import app.features.users.jobs\n", "Layers"),
        ("bench/violation.py", "import tests.conftest\n", "Nothing imports the tests"),
    ],
)
def test_an_import_against_the_grain_breaks_the_lint(
    tmp_path: Path, module: str, source: str, broken: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(
            PROJECT_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path)
    (tmp_path / module).write_text(source)
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    assert "1 broken" in result.stdout
    broken_line = next(line for line in result.stdout.splitlines() if line.endswith("BROKEN"))
    assert broken in broken_line
    assert module.removesuffix(".py").replace("/", ".") in result.stdout
