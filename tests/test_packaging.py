"""The package metadata lists every sub-package and installs the prompts as package data."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "affectreason").rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_console_script_points_at_the_cli():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["affectreason"] == "affectreason.cli:app"
    assert set(project["optional-dependencies"]) >= {"cues", "train", "serve", "dev"}


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```bash\n")[1:]]
    install, test = blocks[0], blocks[1]
    assert "pip install -e '.[dev]'" in install and "affectreason explain examples/" in install
    assert test in (ROOT / ".ci" / "run").read_text().splitlines()
