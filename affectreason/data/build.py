"""Recipe -> instruction dataset on disk: read and join the inputs, map fields, deduplicate, write the
chains of thought, split by group hash, and write every output with a report and a manifest.

Output folder:
- ``{split}.jsonl``: records (``affectreason.data.record.Record``), what ``affectreason train`` reads;
- ``dataset/``: the same as a ``datasets`` DatasetDict (``save_to_disk``);
- ``sharegpt/``: LLaMA-Factory files and ``dataset_info.json``;
- ``stats.json``: labels, token lengths, modality coverage; ``issues.jsonl``: every skipped row or field;
- ``manifest.json``: resolved recipe, licence, prompt version, input checksums, counts;
- ``cues.jsonl`` (cue extraction) and ``teacher.jsonl`` + ``teacher_cache.sqlite`` (distillation): per-item
  results written as they come, so a re-run resumes instead of starting over.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

import affectreason
from affectreason import jsonl
from affectreason.data import cot
from affectreason.data.clips import extract_cues, media_kind
from affectreason.data.cue_text import described_cues, measured_cues, transcript_cues
from affectreason.data.export import write_dataset_dict, write_jsonl, write_sharegpt
from affectreason.data.mapping import (
    Draft,
    is_empty,
    join_rows,
    load_hook,
    missing_required,
    normalize_fields,
)
from affectreason.data.recipe import DataRecipe, RecipeError, resolve_inputs, resolve_path
from affectreason.data.record import DataError, Issue, Media, Message, Record
from affectreason.data.splits import assign_split, group_of
from affectreason.data.stats import dataset_stats, token_counter
from affectreason.data.tables import read_table
from affectreason.labels import parse_labels
from affectreason.reason.prompts import load_prompt
from affectreason.schema import Cues, Explanation
from affectreason.textfile import sha256_file, write_atomic

Stage = Callable[[str, int], None]  # a stage starts: name, number of items
Step = Callable[[], None]  # one item of the current stage is done


@dataclass
class BuildResult:
    """What a build wrote and found."""

    out: Path
    records: list[Record]
    stats: dict
    issues: list[Issue] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)


@dataclass
class Prepared:
    """A draft with its cues, cue block and prompt, ready for its chain of thought."""

    draft: Draft
    cue_text: str
    modalities: list[str]
    prompt: list[dict[str, str]]
    cues: Cues | None = None


def _sha256(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


def _drafts(recipe: DataRecipe, tables: dict, issues: list[Issue]) -> tuple[list[Draft], dict]:
    joined = join_rows(recipe, tables)
    issues += joined.issues
    hook = load_hook(recipe)
    kept: dict[str, Draft] = {}
    counts = {"rows": len(joined.drafts), "duplicates": 0, "incomplete": 0, "unmatched_rows": joined.unmatched}
    for draft in joined.drafts:
        issues += normalize_fields(draft)
        if hook is not None:
            try:
                draft.fields = hook(dict(draft.fields))
            except Exception as exc:  # a hook is recipe code: its failure names the row it failed on
                raise DataError(f"{recipe.name}: hook {recipe.hook} failed at {draft.where}: "
                                f"{type(exc).__name__}: {exc}") from exc
            if not is_empty(draft.fields.get("labels")):
                draft.fields["labels"] = parse_labels(draft.fields["labels"])
        missing = missing_required(draft, recipe)
        if missing:
            issues += missing
            counts["incomplete"] += 1
            continue
        if draft.id in kept:
            issues.append(Issue(draft.where, "id", f"duplicate id {draft.id!r} (first at {kept[draft.id].where}); "
                                                   "kept the first"))
            counts["duplicates"] += 1
            continue
        kept[draft.id] = draft
    drafts = list(kept.values())
    if recipe.limit is not None:
        drafts = drafts[: recipe.limit]
    return drafts, counts


def _prepare(recipe: DataRecipe, drafts: list[Draft], cues: dict[str, Cues], issues: list[Issue]) -> list[Prepared]:
    template = load_prompt(recipe.prompt)
    prepared = []
    for draft in drafts:
        measured = cues.get(draft.id)
        if measured is not None:
            cue_text, modalities = measured_cues(measured)
        else:
            cue_text, modalities, bad = described_cues(draft.fields)
            if bad:
                issues.append(Issue(draft.where, "aus", f"not Action Units, ignored: {bad}"))
            if recipe.cot == "rules" or draft.fields.get("transcript"):  # what the CoT and grounding rest on
                measured = transcript_cues(draft.id, draft.fields.get("transcript"))
        prompt = template.render(clip_id=draft.id, cues=cue_text)
        prepared.append(Prepared(draft, cue_text, modalities, prompt, measured))
    return prepared


def _teacher_explanations(recipe: DataRecipe, prepared: list[Prepared], out: Path, anchors: Path | None,
                          data_dir: Path, stage: Stage | None, step: Step | None) -> tuple[dict, dict]:
    from affectreason.data.teacher import distill, drop_ungrounded, teacher_summary, write_verdicts
    from affectreason.endpoint import ChatClient, ResponseCache
    from affectreason.eval.wheel import EmotionWheel

    spec = recipe.teacher
    if not spec.endpoint or not spec.model:
        raise RecipeError(f"{recipe.name}: cot=teacher needs teacher.endpoint=URL and teacher.model=NAME "
                          "(any OpenAI-compatible server, e.g. a local vLLM)")
    wheel_dir = None
    if spec.wheel_dir and not ("{anchors}" in spec.wheel_dir and anchors is None):
        wheel_dir = resolve_path(spec.wheel_dir, f"{recipe.name}: teacher.wheel_dir", anchors, data_dir)
    wheel = EmotionWheel.load(wheel_dir)
    client = ChatClient(spec.endpoint, spec.model, api_key=spec.api_key,
                        cache=ResponseCache(out / "teacher_cache.sqlite"))
    if stage:
        stage("teacher", len(prepared))
    items = [(p.draft.id, p.prompt, p.draft.fields["labels"]) for p in prepared]
    try:
        verdicts = distill(items, client, wheel, spec.min_ew_fs, spec.workers, spec.max_tokens, spec.temperature,
                           on_done=(lambda _: step()) if step else None)
    finally:
        client.close()
    if spec.min_grounding is not None:
        drop_ungrounded(verdicts, {p.draft.id: p.cues for p in prepared}, spec.min_grounding)
    write_verdicts(verdicts, out / "teacher.jsonl")
    summary = {"endpoint": spec.endpoint, "model": spec.model, **teacher_summary(verdicts),
               "min_ew_fs": spec.min_ew_fs, "min_grounding": spec.min_grounding, "requests_sent": client.requests_sent}
    if verdicts and summary["outcomes"].get("failed", 0) == len(verdicts):
        raise DataError(f"{recipe.name}: the teacher at {spec.endpoint} answered none of {len(verdicts)} requests; "
                        f"last error: {verdicts[-1].error}")
    return {v.id: v.explanation for v in verdicts if v.kept}, summary


def _explanation(recipe: DataRecipe, item: Prepared) -> Explanation:
    fields = item.draft.fields
    labels, valence = fields["labels"], fields.get("valence")
    if recipe.cot == "reference":
        return cot.reference_explanation(fields["reasoning"], labels, valence)
    return cot.gold_explanation(item.cues, labels, valence)


def _record(recipe: DataRecipe, item: Prepared, explanation: Explanation) -> Record:
    fields = item.draft.fields
    media = Media()
    if fields.get("media"):
        getattr(media, media_kind(fields["media"])).append(fields["media"])
    reasoning = fields["reasoning"] if recipe.cot == "reference" else explanation.reasoning_text()
    messages = [Message(**m) for m in item.prompt] + [Message(role="assistant", content=cot.target_json(explanation))]
    return Record(id=item.draft.id, source=recipe.name, group=group_of(item.draft.id, recipe.group),
                  labels=fields["labels"], reasoning=reasoning, transcript=fields.get("transcript"),
                  sentiment=fields.get("sentiment"), cue_text=item.cue_text, modalities=item.modalities,
                  media=media, cot=recipe.cot, messages=messages)


def _records(recipe: DataRecipe, prepared: list[Prepared], explanations: dict[str, Explanation],
             issues: list[Issue]) -> list[Record]:
    records = []
    for item in prepared:
        explanation = explanations.get(item.draft.id)
        if explanation is None:
            continue
        if not explanation.observations:
            issues.append(Issue(item.draft.where, "cues", "nothing to reason over (no transcript, cues or "
                                                          "reference observations); record skipped"))
            continue
        media = item.draft.fields.get("media")
        if media and not Path(media).is_file():  # LLaMA-Factory stops at a missing media file: leave it out
            issues.append(Issue(item.draft.where, "media", f"{media} does not exist; record kept without it"))
            del item.draft.fields["media"]
        try:
            record = _record(recipe, item, explanation)
        except ValidationError as exc:
            error = exc.errors()[0]
            issues.append(Issue(item.draft.where, ".".join(map(str, error["loc"])), f"{error['msg']}; skipped"))
            continue
        record.split = assign_split(record.group, recipe.splits, recipe.split_salt)
        records.append(record)
    return records


def _manifest(recipe: DataRecipe, paths: dict, tables: dict, counts: dict, by_split: dict, issues: list[Issue],
              teacher: dict | None, sharegpt: dict) -> dict:
    template = load_prompt(recipe.prompt)
    return {
        "recipe": recipe.model_dump(exclude={"teacher": {"api_key"}}),
        "recipe_file": str(recipe.origin) if recipe.origin else None, "licence": recipe.licence,
        "prompt": {"name": template.name, "version": template.version},
        "affectreason_version": affectreason.__version__,
        "inputs": {name: {"path": str(path) if path else None, "sha256": _sha256(path) if path else None,
                          "rows": len(tables[name].rows) if tables[name] else 0,
                          "skipped_rows": len(tables[name].issues) if tables[name] else 0}
                   for name, path in paths.items()},
        "absent_optional_inputs": [name for name, path in paths.items() if path is None],
        "counts": {**counts, "records": sum(len(v) for v in by_split.values()),
                   "splits": {k: len(v) for k, v in by_split.items()}, "issues": len(issues)},
        "teacher": teacher, "sharegpt_datasets": sorted(sharegpt),
    }


def build_dataset(recipe: DataRecipe, out: str | Path, anchors: Path | None = None, data_dir: str | Path = ".",
                  strict: bool = False, tokenizer: str | None = None, stage: Stage | None = None,
                  step: Step | None = None) -> BuildResult:
    """Build the recipe's dataset into ``out``; with ``strict`` any issue is an error before the dataset is written."""
    out, data_dir = Path(out), Path(data_dir).resolve()
    paths = resolve_inputs(recipe, anchors, data_dir)
    if paths[recipe.primary_input] is None:
        raise RecipeError(f"{recipe.name}: the primary input {recipe.primary_input!r} is optional and absent")
    issues: list[Issue] = []
    tables = {}
    for name, path in paths.items():
        spec = recipe.inputs[name]
        tables[name] = read_table(name, path, spec.format, spec.id) if path is not None else None
        issues += tables[name].issues if tables[name] else []
    drafts, counts = _drafts(recipe, tables, issues)
    out.mkdir(parents=True, exist_ok=True)
    cues: dict[str, Cues] = {}
    if recipe.cues.extract:
        if stage:
            stage("cues", sum(1 for d in drafts if d.fields.get("media")))
        cues, cue_issues = extract_cues(drafts, out / "cues.jsonl", recipe.cues,
                                        on_done=(lambda _: step()) if step else None)
        issues += cue_issues
        drafts = [d for d in drafts if d.id in cues]
    prepared = _prepare(recipe, drafts, cues, issues)
    teacher = None
    if recipe.cot == "teacher":
        explanations, teacher = _teacher_explanations(recipe, prepared, out, anchors, data_dir, stage, step)
    else:
        explanations = {}
        for item in prepared:
            try:
                explanations[item.draft.id] = _explanation(recipe, item)
            except ValidationError as exc:
                error = exc.errors()[0]
                issues.append(Issue(item.draft.where, ".".join(map(str, error["loc"])) or "explanation",
                                    f"{error['msg']}; record skipped"))
    records = _records(recipe, prepared, explanations, issues)
    if strict and issues:
        shown = "\n".join(f"  {issue}" for issue in issues[:10])
        raise DataError(f"{recipe.name}: {len(issues)} issue(s) with --strict:\n{shown}")
    if not records:
        raise DataError(f"{recipe.name}: no records were built ({len(issues)} issues; first: "
                        f"{issues[0] if issues else 'none'})")
    by_split = {name: [r for r in records if r.split == name] for name in recipe.splits}
    for name, split_records in by_split.items():
        write_jsonl(split_records, out / f"{name}.jsonl")
    write_dataset_dict(by_split, out / "dataset")
    sharegpt = write_sharegpt(by_split, out / "sharegpt", recipe.name)
    stats = dataset_stats(records, *token_counter(tokenizer))
    if teacher is not None:
        stats["teacher"] = teacher
    write_atomic(out / "stats.json", json.dumps(stats, indent=2, ensure_ascii=False))
    jsonl.write_jsonl(out / "issues.jsonl",
                      ({"where": issue.where, "field": issue.field, "message": issue.message} for issue in issues))
    manifest = _manifest(recipe, paths, tables, counts, by_split, issues, teacher, sharegpt)
    write_atomic(out / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
    return BuildResult(out, records, stats, issues, manifest)
