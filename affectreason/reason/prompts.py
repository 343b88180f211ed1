"""Prompt templates: YAML files under ``prompts/`` with a version and Jinja ``system``/``user`` parts.

Each file carries ``name``, ``version`` (bumped on any wording change; reports record it), an optional
``description``, a ``system`` text, a ``user`` Jinja template and an optional worked ``example`` answer (JSON text),
which the template shows as ``{{ example }}``: kept apart so that grounding can tell an observation copied from it
(``messages.example_observations``). Rendering is strict: a variable the template uses but the caller did not give
is an error, not an empty string.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import jinja2
import yaml

from affectreason.errors import AffectReasonError

PROMPTS_DIR_ENV = "AFFECTREASON_PROMPTS_DIR"
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


class PromptError(AffectReasonError, ValueError):
    """A prompt file is missing or malformed."""


def prompts_dir() -> Path:
    """The prompts folder: ``AFFECTREASON_PROMPTS_DIR`` or the one installed with the package."""
    configured = os.environ.get(PROMPTS_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(str(resources.files("affectreason.prompts")))


@cache
def _compiled(source: str) -> jinja2.Template:
    # compiling costs ~2 ms; data recipes render one prompt per record
    return _ENV.from_string(source)


@dataclass(frozen=True)
class PromptTemplate:
    """A versioned chat prompt."""

    name: str
    version: int
    system: str
    user: str
    description: str = ""
    example: str = ""

    def render(self, **variables: object) -> list[dict[str, str]]:
        """Chat messages with the variables filled in (``example`` is the prompt's own unless given)."""
        try:
            user = _compiled(self.user).render(**{"example": self.example.strip(), **variables}).strip()
        except jinja2.UndefinedError as exc:
            raise PromptError(f"prompt {self.name!r}: {exc}") from None
        messages = [{"role": "system", "content": self.system.strip()}] if self.system.strip() else []
        return messages + [{"role": "user", "content": user}]


@cache
def load_prompt(name: str) -> PromptTemplate:
    """Load ``prompts/<name>.yaml`` (``name`` may contain a sub-folder, e.g. ``judges/emer_clue_overlap``)."""
    path = prompts_dir() / f"{name}.yaml"
    if not path.is_file():
        raise PromptError(f"prompt {name!r} not found at {path}; set {PROMPTS_DIR_ENV} to a prompts folder")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    missing = {"name", "version", "user"} - set(data or {})
    if missing:
        raise PromptError(f"{path}: missing keys {sorted(missing)}")
    unknown = set(data) - {"name", "version", "user", "system", "description", "example"}
    if unknown:
        raise PromptError(f"{path}: unknown keys {sorted(unknown)}")
    try:
        _ENV.parse(data["user"])
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(f"{path}:{exc.lineno}: template error: {exc.message}") from None
    return PromptTemplate(name=data["name"], version=int(data["version"]), system=data.get("system", ""),
                          user=data["user"], description=data.get("description", ""), example=data.get("example", ""))
