"""The layer order of DESIGN.md is a contract (pyproject's [tool.importlinter]): the tree keeps it, and an upward
import, even one inside a function, breaks it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT), "--config", str(cwd / "pyproject.toml"), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_package_keeps_its_layers():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_function_local_import_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "affectreason", tmp_path / "affectreason", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    rules = tmp_path / "affectreason" / "reason" / "rules.py"
    rules.write_text(rules.read_text() + "\n\ndef _sneaky():\n    from affectreason.batch import run  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode == 1
    assert "Layers: cli" in result.stdout and "BROKEN" in result.stdout
    assert "affectreason.reason.rules -> affectreason.batch" in result.stdout
