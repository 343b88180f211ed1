"""Data recipes: one YAML per corpus naming its input files, field mapping, chain-of-thought source,
splits and licence, validated before anything is read. Shipped recipes live in ``data_recipes/``
(installed as ``affectreason.data_recipes``); any YAML path works too, and ``key=value`` overrides
change any key (``inputs.labels.path=my.csv``, ``limit=200``, ``teacher.endpoint=URL``).

Input paths may use ``{anchors}`` (the public anchor data: ``--anchors DIR``, else
``$AFFECTREASON_ANCHORS``, else ``../shared/anchors`` from the working folder) and ``{data}``
(``--data-dir``, default the working folder); other relative paths are relative to ``{data}``.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from affectreason.config import load_validated
from affectreason.data.record import CotKind
from affectreason.errors import RecipeError

ANCHORS_ENV = "AFFECTREASON_ANCHORS"
DEFAULT_ANCHORS = Path("..") / "shared" / "anchors"
FieldRef = str | list[str] | None


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(Section):
    """One input file (or folder of clips)."""

    path: str | None = Field(description="file or folder; {anchors} and {data} are substituted")
    format: Literal["auto", "csv", "jsonl", "json", "folder"] = "auto"
    id: str = Field(default="name", description="the id column; '@key' for a JSON object keyed by id; folders: "
                                                "the file stem")
    optional: bool = Field(default=False, description="a missing file is noted, not an error")
    about: str = ""


class FieldMap(Section):
    """Where each record field comes from: ``input.column``, or a list of them (the first non-empty wins)."""

    labels: FieldRef = None
    reasoning: FieldRef = None
    transcript: FieldRef = None
    sentiment: FieldRef = None
    valence: FieldRef = None
    face: FieldRef = Field(default=None, description="facial descriptors (words), e.g. MERR visual_prior_list")
    aus: FieldRef = Field(default=None, description="active AUs: a list, an AU -> intensity object or 'AU1, AU12'")
    voice: FieldRef = Field(default=None, description="voice descriptors, e.g. MERR audio_prior_list")
    question: FieldRef = None
    media: FieldRef = Field(default=None, description="path of the clip or image, relative to its input file")

    def refs(self) -> dict[str, list[str]]:
        """Field -> its ``input.column`` references, for the fields that are mapped."""
        out = {}
        for name, value in self:
            if value:
                out[name] = [value] if isinstance(value, str) else list(value)
        return out


class CueSpec(Section):
    """Cue extraction from the records' media (``affectreason.cues.pipeline``)."""

    extract: bool = False
    fps: float = Field(default=5.0, gt=0)
    asr: bool = True
    workers: int = Field(default=1, ge=1)


class TeacherSpec(Section):
    """A teacher LLM behind an OpenAI-compatible endpoint that writes the chains of thought."""

    endpoint: str | None = None
    model: str | None = None
    api_key: str | None = Field(default=None, description="default: $AFFECTREASON_API_KEY or $OPENAI_API_KEY")
    min_ew_fs: float = Field(default=0.5, ge=0, le=1, description="keep a record when the emotion-wheel F-score "
                                                                  "of its labels against gold reaches this")
    wheel_dir: str | None = Field(default="{anchors}/emotion_wheel",
                                  description="emotion wheel (else $AFFECTREASON_WHEEL_DIR)")
    min_grounding: float | None = Field(default=None, ge=0, le=1,
                                        description="drop answers whose observations' grounding score against the "
                                                    "cues (or transcript) is below this")
    workers: int = Field(default=4, ge=1)
    max_tokens: int = Field(default=768, ge=16)
    temperature: float = Field(default=0.0, ge=0)


class DataRecipe(Section):
    """One corpus -> instruction records."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str
    licence: str = Field(min_length=1, description="terms of the source data, stated in every output manifest")
    inputs: dict[str, InputSpec] = Field(min_length=1)
    primary: str | None = Field(default=None, description="the input whose rows become records (default: first)")
    fields: FieldMap
    hook: str | None = Field(default=None, description="'file.py:function' beside the recipe: fields -> fields")
    cot: CotKind = "reference"
    cues: CueSpec = Field(default_factory=CueSpec)
    teacher: TeacherSpec = Field(default_factory=TeacherSpec)
    splits: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1})
    group: str | None = Field(default=None, description="regex on the id whose first group names the split unit")
    split_salt: str = "affectreason-data-1"
    prompt: str = "reason/explain"
    limit: int | None = Field(default=None, ge=1, description="keep only the first N records (before the CoT)")
    _origin: Path | None = PrivateAttr(default=None)

    @field_validator("splits")
    @classmethod
    def _fractions(cls, splits: dict[str, float]) -> dict[str, float]:
        bad = [k for k in splits if not re.fullmatch(r"[a-z][a-z0-9_]*", k)]
        if bad:
            raise ValueError(f"split names must be lower-case words, not {bad}")
        if not splits or any(v <= 0 for v in splits.values()) or abs(sum(splits.values()) - 1) > 1e-6:
            raise ValueError(f"fractions must be positive and sum to 1, got {splits}")
        return splits

    @field_validator("group")
    @classmethod
    def _group(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a regular expression ({exc})") from None
            if compiled.groups < 1:
                raise ValueError("needs a capturing group that names the split unit")
        return pattern

    @model_validator(mode="after")
    def _references(self) -> DataRecipe:
        if self.primary is not None and self.primary not in self.inputs:
            raise ValueError(f"primary: {self.primary!r} is not one of the inputs {sorted(self.inputs)}")
        for field, refs in self.fields.refs().items():
            for ref in refs:
                source = ref.split(".", 1)[0]
                if "." not in ref or source not in self.inputs:
                    raise ValueError(f"fields.{field}: {ref!r} is not 'input.column' with an input of "
                                     f"{sorted(self.inputs)}")
        if self.hook is not None and not re.fullmatch(r"[\w./-]+\.py:\w+", self.hook):
            raise ValueError(f"hook: {self.hook!r} is not 'file.py:function'")
        return self

    @property
    def primary_input(self) -> str:
        """The input whose rows become records."""
        return self.primary or next(iter(self.inputs))

    @property
    def origin(self) -> Path | None:
        """The YAML file the recipe was read from."""
        return self._origin


def recipes_dir() -> Path:
    """The folder of shipped data recipes (``data_recipes/``, installed as ``affectreason.data_recipes``)."""
    return Path(str(resources.files("affectreason.data_recipes")))


def recipe_names() -> list[str]:
    """Names of the shipped data recipes."""
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def load_data_recipe(source: str | Path, overrides: list[str] | None = None) -> DataRecipe:
    """A validated data recipe from a YAML path or a shipped recipe name, plus ``key=value`` overrides."""
    path = Path(source)
    if not path.is_file():
        path = recipes_dir() / f"{source}.yaml"
        if not path.is_file():
            raise RecipeError(f"data recipe {str(source)!r} not found (a YAML path, or one of {recipe_names()})")
    recipe = load_validated(path, DataRecipe, overrides or [], RecipeError)
    recipe._origin = path.resolve()
    return recipe


def anchors_dir(given: str | Path | None = None) -> Path | None:
    """The anchor data folder: the argument, else $AFFECTREASON_ANCHORS, else ../shared/anchors if it exists."""
    chosen = given or os.environ.get(ANCHORS_ENV)
    if chosen:
        return Path(chosen).expanduser()
    return DEFAULT_ANCHORS.resolve() if DEFAULT_ANCHORS.is_dir() else None


def resolve_path(raw: str, key: str, anchors: Path | None, data_dir: Path) -> Path:
    """An input path with ``{anchors}``/``{data}`` substituted; relative paths are under ``data_dir``."""
    if "{anchors}" in raw and anchors is None:
        raise RecipeError(f"{key}: {raw} needs the anchor data folder: pass --anchors DIR or set {ANCHORS_ENV}")
    text = raw.replace("{anchors}", str(anchors)).replace("{data}", str(data_dir))
    path = Path(text).expanduser()
    return path if path.is_absolute() else data_dir / path


def resolve_inputs(recipe: DataRecipe, anchors: Path | None, data_dir: Path) -> dict[str, Path | None]:
    """Input name -> existing path (None for an optional input that is absent); a missing file is an error."""
    out: dict[str, Path | None] = {}
    for name, spec in recipe.inputs.items():
        key = f"{recipe.name}: inputs.{name}.path"
        if spec.path is None:
            if not spec.optional:
                raise RecipeError(f"{key}: no path given; set inputs.{name}.path=FILE")
            out[name] = None
            continue
        path = resolve_path(spec.path, key, anchors, data_dir)
        if not path.exists():
            if spec.optional:
                out[name] = None
                continue
            hint = ("the anchor data folder is --anchors DIR or $AFFECTREASON_ANCHORS" if "{anchors}" in spec.path
                    else f"set inputs.{name}.path=FILE or --data-dir DIR")
            raise RecipeError(f"{key}: {path} does not exist ({hint})")
        out[name] = path
    return out
