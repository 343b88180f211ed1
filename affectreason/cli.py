"""The ``affectreason`` command line: each verb parses its options and makes one library call.

Verbs are listed in lifecycle order (cues, explain, merge, data, train, export, serve, query, score). A problem the user
can fix (an ``AffectReasonError``) is printed as one line with exit status 2; any other exception is a bug and is
said to be one, with a short traceback, exit status 1.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

import affectreason
from affectreason.errors import AffectReasonError
from affectreason.eval.bootstrap import bootstrap_ci, paired_comparison
from affectreason.eval.registry import METRICS, OPTIONS, Metric, MetricSpec, ScoreOptions, score
from affectreason.eval.report import aggregate, render_comparison, render_table, write_json, write_per_sample
from affectreason.eval.result import MetricResult
from affectreason.media import DEFAULT_MAX_DURATION_S
from affectreason.reason.messages import MAX_CHARS, MAX_ITEMS

err = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False)
    raise typer.Exit(2)


def _bug(exc: Exception) -> None:
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    err.print("".join(traceback.format_list(frames)).rstrip(), markup=False, highlight=False)
    err.print(f"[bold red]bug:[/bold red] {escape(f'{type(exc).__name__}: {exc}')}", highlight=False)
    err.print(f"this is a bug in affectreason {affectreason.__version__}, not a problem with your input; please "
              "report it with the command you ran", highlight=False)
    raise typer.Exit(1)


class _Verbs(TyperGroup):
    """Verbs in the order they are defined; user errors as one line, anything else reported as a bug."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AffectReasonError as exc:
            _fail(str(exc))
        except (typer.Exit, typer.Abort, typer.TyperException, click.exceptions.Exit, click.ClickException,
                click.exceptions.Abort):
            raise  # usage errors (typer's vendored click raises its own classes) print themselves
        except Exception as exc:  # noqa: BLE001 (the one place that turns a bug into a message)
            _bug(exc)


app = typer.Typer(help="Explainable multimodal emotion reasoning: cues, explanations, scoring.", cls=_Verbs,
                  no_args_is_help=True, pretty_exceptions_enable=False)
score_app = typer.Typer(help="Score open-vocabulary labels and explanations against gold records.",
                        no_args_is_help=True)


def _flag(name: str):
    """The typer option of a registry option: ``--wheel-dir`` for ``wheel_dir``, with its type and help."""
    spec = OPTIONS[name]
    return Annotated[spec.type, typer.Option(spec.flag, help=spec.help)]


Gold = Annotated[Path, typer.Option("--gold", help="gold records (.csv or .jsonl)")]
Pred = Annotated[Path, typer.Option("--pred", help="predictions (.csv, .jsonl or Explanation .jsonl)")]
AsJson = Annotated[bool, typer.Option("--json", help="print the aggregate as JSON only")]
PerSample = Annotated[Path | None, typer.Option("--per-sample", help="write one JSON line per clip here")]
Out = Annotated[Path | None, typer.Option("--out", help="write the aggregate report (JSON) here")]
Resamples = Annotated[int, typer.Option("--bootstrap", help="bootstrap resamples for 95% CIs (0: none)")]
Endpoint = _flag("endpoint")
ApiKey = _flag("api_key")


def _param(name: str, annotation, default=inspect.Parameter.empty) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


def _options(names) -> list[inspect.Parameter]:
    return [_param(name, _flag(name), OPTIONS[name].default) for name in names]


def _signed(func: Callable, params: list[inspect.Parameter], doc: str) -> Callable:
    """``func(**kwargs)`` with the typer signature ``params`` (typer reads options from the signature)."""
    func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    func.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    func.__doc__ = doc
    return func


def _emit(result: MetricResult, as_json: bool, per_sample: Path | None, out: Path | None, resamples: int) -> None:
    ci = bootstrap_ci(result, resamples) if resamples > 0 and result.n else None
    report = aggregate(result, ci)
    if "per_wheel" in result.info:
        report["per_wheel"] = report["info"]["per_wheel"]
    if per_sample:
        write_per_sample(result, per_sample)
    if out:
        write_json(report, out)
    if as_json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
    else:
        render_table(result, ci)


def _score_command(spec: MetricSpec) -> Callable:
    """``affectreason score NAME``: --gold, --pred, the metric's options (registry order), then output options."""

    def command(gold: Path, pred: Path, as_json: bool, per_sample: Path | None, out: Path | None, resamples: int,
                **options) -> None:
        _emit(score(spec.name, gold, pred, **options), as_json, per_sample, out, resamples)

    command.__name__ = command.__qualname__ = f"score_{spec.name}_cmd"
    return _signed(command, [_param("gold", Gold), _param("pred", Pred), *_options(spec.options),
                             _param("as_json", AsJson, False), _param("per_sample", PerSample, None),
                             _param("out", Out, None), _param("resamples", Resamples, 1000)], spec.help)


for _spec in METRICS.values():
    score_app.command(_spec.name)(_score_command(_spec))


def score_compare_cmd(gold: Path, pred_a: Path, pred_b: Path, metric: Metric, as_json: bool, out: Path | None,
                      resamples: int, **options) -> None:
    opts = ScoreOptions(**options)
    spec = METRICS[metric]  # one set of flags serves every metric: options it does not take are ignored
    a = spec.score(gold, pred_a, opts)
    b = spec.score(gold, pred_b, opts)
    comparison = paired_comparison(a, b, max(resamples, 1))
    report = {"metric": metric.value, "n": a.n, "comparison": comparison,
              "affectreason_version": affectreason.__version__}
    if out:
        write_json(report, out)
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        render_comparison(metric.value, comparison)


score_app.command("compare")(_signed(score_compare_cmd, [
    _param("gold", Gold),
    _param("pred_a", Annotated[Path, typer.Option("--pred-a", help="predictions of system A")]),
    _param("pred_b", Annotated[Path, typer.Option("--pred-b", help="predictions of system B")]),
    _param("metric", Annotated[Metric, typer.Option("--metric", help="which metric to compare")], Metric.ew),
    *_options(OPTIONS), _param("as_json", AsJson, False), _param("out", Out, None),
    _param("resamples", Resamples, 1000),
], "Paired bootstrap comparison of two prediction files on one metric (B - A)."))


FpsOpt = Annotated[float, typer.Option("--fps", help="frames per second sampled for faces")]
WorkersOpt = Annotated[int, typer.Option("--workers", help="worker processes for a folder")]
FaceModel = Annotated[str | None, typer.Option("--face-model", help="face_landmarker.task path")]
AsrModel = Annotated[str | None, typer.Option("--asr-model", help="faster-whisper model folder")]
NoAsr = Annotated[bool, typer.Option("--no-asr", help="skip speech recognition")]
NoExpression = Annotated[bool, typer.Option("--no-expression", help="skip the facial-expression classifier")]
TranscriptOpt = Annotated[str | None, typer.Option("--transcript", help="what is said (skips ASR)")]
SubtitlesOpt = Annotated[Path | None, typer.Option("--subtitles", help=".srt/.vtt/.txt (skips ASR)")]
LabelEndpoint = Annotated[str | None, typer.Option(
    "--label-endpoint", help="OpenAI-compatible server that extracts labels from free-text answers")]
LabelModel = Annotated[str | None, typer.Option("--label-model", help="model at --label-endpoint")]
EgemapsOpt = Annotated[bool, typer.Option("--egemaps", help="add openSMILE eGeMAPSv02 functionals")]
MaxDuration = Annotated[float, typer.Option("--max-duration", help="seconds of a clip that are read; a longer "
                                            "clip is cut there, with a warning (memory stays bounded)")]
OpenFaceOpt = Annotated[Path | None, typer.Option("--openface", help="OpenFace 2.0 CSV: AUs instead of MediaPipe")]
BatchOut = Annotated[Path | None, typer.Option("--out", help="JSONL output for a folder (resumable)")]
MaxChars = Annotated[int, typer.Option("--max-chars", help="length limit of each text field of the answer")]
MaxItems = Annotated[int, typer.Option("--max-items", help="length limit of each list of the answer")]
ClipPath = Annotated[Path, typer.Argument(help="a clip (video, image or audio file) or a folder of clips")]
RayOpt = Annotated[str | None, typer.Option(
    "--ray", help="run the workers on a Ray cluster (the cluster extra): local (start one on this machine for the "
    "run), auto (the cluster this machine is in) or HOST:PORT / ray://HOST:PORT of its head")]
ShardOpt = Annotated[str | None, typer.Option(
    "--shard", help="K/N: only the clips of shard K of N, split by clip id (a Slurm array runs 1/N .. N/N; "
    "`affectreason merge` joins their outputs)")]


def _pool(ray: str | None):
    """A Ray pool for ``--ray`` (connected on entry, a local cluster stopped on exit), or nothing."""
    from contextlib import nullcontext

    if ray is None:
        return nullcontext()
    from affectreason.cluster import RayPool

    return RayPool(ray)


MediaFrames = Annotated[int, typer.Option("--frames", help="openai / vllm / query: key frames sent as images "
                                          "(vision models)")]
MediaAudio = Annotated[bool, typer.Option("--audio", help="openai / vllm / query: send the clip's audio (audio "
                                          "models)")]
MediaVideo = Annotated[bool, typer.Option("--video", help="openai / vllm / query: send --frames evenly spaced "
                                          "frames as one video (Qwen-VL models) instead of images")]


def _bounds(max_chars: int, max_items: int, frames: int = 0, audio: bool = False, video: bool = False):
    """The answer's bounds, the same for every model backend (hf and vllm decode under them, a server is sent
    them), and the media a served model or the vLLM engine is sent."""
    from affectreason.backends.server import QueryConfig

    if video and not frames:
        _fail("--video sends --frames N frames as one video: give --frames too")
    return QueryConfig(max_chars=max_chars, max_items=max_items, frames=frames, audio=audio, video=video)


def _is_batch(path: Path, out: Path | None) -> bool:
    return path.is_dir() or out is not None or path.suffix.lower() == ".jsonl"


def _one(path: Path, config, reasoner, transcript=None, subtitles=None, openface=None):
    """One clip through the batch runner's path (errors raised, printed as one line)."""
    from affectreason.batch import explain_one, items_in

    return explain_one(items_in(path, transcript, subtitles, openface)[0], config, reasoner)


def _batch(path: Path, out: Path | None, config, workers: int, spec, reasoner=None, done: str = "done",
           ray: str | None = None, shard: str | None = None) -> None:
    """A folder or cues JSONL through the batch runner, with progress and a one-line summary; exit 1 on failures."""
    from rich.progress import Progress

    from affectreason.batch import items_in, run
    from affectreason.shard import parse_shard

    if out is None:
        _fail(f"a folder{' or cues JSONL' if spec is not None else ''} needs --out FILE.jsonl for its results")
    part = parse_shard(shard) if shard is not None else None
    items = [item for item in items_in(path) if part is None or part.holds(item.clip.id)]
    cue_first = spec is not None and spec.batching() != "processes"
    with _pool(ray) as pool, Progress(console=err) as progress:
        cue_task = progress.add_task("cues", total=len(items), visible=cue_first)
        task = progress.add_task(f"{'explain' if spec is not None else 'cues'} -> {out}", total=len(items))
        result = run(items, out, config, spec, reasoner, workers, on_done=lambda r: progress.advance(task),
                     on_cue=lambda r: progress.advance(cue_task), source=path, pool=pool, shard=part)
        progress.update(task, completed=len(items))
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    err.print(f"{result.ok} clips {done}, {len(result.failed)} failed, {result.skipped} already done before")
    if result.failed:
        for clip_id, error in sorted(result.failed.items()):
            err.print(f"  failed {clip_id}: {error[:200]}", highlight=False, markup=False)
        err.print(f"error records in {out}; run the same command again to retry the {len(result.failed)} failed "
                  "clips only", highlight=False)
        raise typer.Exit(1)


def _show(result, as_json: bool) -> None:
    """Print one clip's {cues, explanation} as JSON, or render it."""
    if as_json:
        sys.stdout.write(json.dumps({"cues": result.cues.model_dump(mode="json"),
                                     "explanation": result.explanation.model_dump(mode="json")},
                                    ensure_ascii=False) + "\n")
    else:
        from affectreason.reason.render import render_explanation

        render_explanation(result.cues, result.explanation, Console())


@app.command("cues")
def cues_cmd(path: ClipPath, out: BatchOut = None,
             as_json: Annotated[bool, typer.Option("--json", help="print the Cues JSON of one clip")] = False,
             plot: Annotated[Path | None, typer.Option("--plot", help="write a PNG of the cues of one clip")] = None,
             fps: FpsOpt = 5.0, workers: WorkersOpt = 2, face_model: FaceModel = None, asr_model: AsrModel = None,
             no_asr: NoAsr = False, transcript: TranscriptOpt = None, subtitles: SubtitlesOpt = None,
             openface: OpenFaceOpt = None, with_egemaps: EgemapsOpt = False, no_expression: NoExpression = False,
             max_duration: MaxDuration = DEFAULT_MAX_DURATION_S, ray: RayOpt = None, shard: ShardOpt = None) -> None:
    """Extract facial AUs, prosody and a transcript from a clip (or every clip of a folder).

    One clip prints the textualized cue block (or --json); a folder writes one JSONL line per clip.
    """
    from affectreason.cues.pipeline import CueConfig

    config = CueConfig(fps=fps, face_model=face_model, asr_model=asr_model, asr=not no_asr, egemaps=with_egemaps,
                       expression=not no_expression, max_duration_s=max_duration)
    if path.is_dir() or out is not None or ray or shard:
        _batch(path, out, config, workers, None, ray=ray, shard=shard)
        return
    result = _one(path, config, None, transcript, subtitles, openface)
    if plot:
        from affectreason.cues.plot import plot_cues

        plot_cues(result.clip, result.cues, plot)
        err.print(f"plot written to {plot}")
    if as_json:
        sys.stdout.write(result.cues.model_dump_json() + "\n")
    else:
        from affectreason.cues.textualize import textualize

        Console().print(textualize(result.cues), highlight=False)


@app.command("explain")
def explain_cmd(path: ClipPath, out: BatchOut = None,
                backend: Annotated[str, typer.Option("--backend", help="auto, rules, hf, openai or vllm")] = "auto",
                model: Annotated[str | None, typer.Option(
                    "--model", help="hf / vllm: model folder or hub id")] = None,
                adapter: Annotated[str | None, typer.Option("--adapter", help="hf: LoRA adapter folder")] = None,
                endpoint: Endpoint = None,
                server_model: Annotated[str | None, typer.Option("--server-model", help="openai: model name")] = None,
                api_key: ApiKey = None,
                max_new_tokens: Annotated[int, typer.Option(
                    "--max-new-tokens", help="hf, vllm: reply length")] = 384,
                max_chars: MaxChars = MAX_CHARS, max_items: MaxItems = MAX_ITEMS,
                no_constrain: Annotated[bool, typer.Option(
                    "--no-constrain", help="hf: decode freely instead of under the bounded Explanation JSON "
                    "schema (to compare)")] = False,
                label_endpoint: LabelEndpoint = None, label_model: LabelModel = None,
                as_json: Annotated[bool, typer.Option("--json", help="print {cues, explanation} as JSON")] = False,
                fps: FpsOpt = 5.0, workers: WorkersOpt = 2, face_model: FaceModel = None,
                asr_model: AsrModel = None, no_asr: NoAsr = False, transcript: TranscriptOpt = None,
                subtitles: SubtitlesOpt = None, openface: OpenFaceOpt = None, no_expression: NoExpression = False,
                max_duration: MaxDuration = DEFAULT_MAX_DURATION_S, ray: RayOpt = None,
                shard: ShardOpt = None, frames: MediaFrames = 0, audio: MediaAudio = False,
                video: MediaVideo = False) -> None:
    """Explain the emotion of a clip: cues, a chain of thought, open-vocabulary labels, grounding."""
    from affectreason.backends.load import BackendSpec, load_reasoner
    from affectreason.cues.pipeline import CueConfig

    spec = BackendSpec(backend, model, adapter, endpoint, server_model, api_key, max_new_tokens, label_endpoint,
                       label_model, server=_bounds(max_chars, max_items, frames, audio, video),
                       constrain=not no_constrain)
    config = CueConfig(fps=fps, face_model=face_model, asr_model=asr_model, asr=not no_asr,
                       expression=not no_expression, max_duration_s=max_duration)
    note = lambda line: err.print(f"[dim]{line}[/dim]")  # noqa: E731
    if _is_batch(path, out) or ray or shard:
        # local models load in each worker; a server or an engine once, here, before any clip is decoded
        reasoner = load_reasoner(spec, note) if spec.batching() != "processes" else None
        engine = spec.batching() == "engine"
        _batch(path, out, config, workers, spec, reasoner, "explained in one vLLM batch" if engine else "done",
               ray, shard)
        return
    _show(_one(path, config, load_reasoner(spec, note), transcript, subtitles, openface), as_json)


@app.command("merge")
def merge_cmd(
    outputs: Annotated[list[Path], typer.Argument(help="the outputs of --shard 1/N .. N/N (each with its manifest)")],
    out: Annotated[Path, typer.Option("--out", help="the merged JSONL (a manifest is written beside it)")],
    source: Annotated[Path | None, typer.Option(
        "--input", help="the folder or cues JSONL the shards ran over (default: the one their manifests name)")]
    = None,
) -> None:
    """Join the outputs of --shard 1/N .. N/N into one, checking that every clip is there exactly once."""
    from affectreason.merge import merge

    result = merge(outputs, out, source)
    err.print(f"{result.records} clips merged into {out} ({len(result.failed)} error records among them)",
              highlight=False, markup=False)


@app.command("data")
def data_cmd(
    recipe: Annotated[str, typer.Argument(help="data recipe: a name from data_recipes/ or a YAML path")],
    out: Annotated[Path, typer.Option("--out", help="output folder (JSONL per split, dataset/, sharegpt/, reports)")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides, e.g. limit=200")] = None,
    anchors: Annotated[Path | None, typer.Option(
        "--anchors", help="anchor data folder, {anchors} in recipes (or env AFFECTREASON_ANCHORS)")] = None,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="corpus folder, {data} in recipes")] = Path("."),
    strict: Annotated[bool, typer.Option("--strict", help="a skipped row or field is an error")] = False,
    tokenizer: Annotated[str | None, typer.Option("--tokenizer", help="local tokenizer folder for token counts "
                                                                      "(default: characters / 4)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the counts and stats.json as JSON")] = False,
) -> None:
    """Build instruction data from a recipe: JSONL per split, a DatasetDict, a LLaMA-Factory export, a report."""
    from rich.progress import Progress

    from affectreason.data.build import build_dataset
    from affectreason.data.recipe import anchors_dir, load_data_recipe
    from affectreason.data.summary import summary_lines

    spec = load_data_recipe(recipe, overrides)
    with Progress(console=err, transient=True) as progress:
        current: list = []
        result = build_dataset(spec, out, anchors_dir(anchors), data_dir, strict, tokenizer,
                               stage=lambda name, total: current.append(progress.add_task(name, total=total)),
                               step=lambda: progress.advance(current[-1]))
    if as_json:
        sys.stdout.write(json.dumps({"out": str(out), "counts": result.manifest["counts"], "stats": result.stats},
                                    ensure_ascii=False) + "\n")
        return
    for line in summary_lines(spec.name, result, out):
        err.print(line, highlight=False, markup=False)


@app.command("train")
def train_cmd(
    recipe: Annotated[str, typer.Argument(help="recipe YAML path (or the name of a packaged recipe)")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides, e.g. optim.lr=1e-4")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue from the latest checkpoint")] = False,
    launch: Annotated[str | None, typer.Option(
        "--launch", help="run under `accelerate launch` with a shipped config (cpu-ddp, ddp, fsdp, "
        "deepspeed-zero2, deepspeed-zero3) or an accelerate config file")] = None,
    num_processes: Annotated[int | None, typer.Option("--num-processes", help="with --launch: processes")] = None,
) -> None:
    """LoRA / QLoRA fine-tuning of a chat LM on instruction data (loss on the assistant reply only)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from affectreason.train.recipe import load_recipe
    from affectreason.train.run import train

    spec = load_recipe(recipe, overrides)
    if launch:
        import subprocess

        from affectreason.train.launch import launch_command

        command = launch_command(launch, [recipe, *(overrides or []), *(["--resume"] if resume else [])],
                                 num_processes)
        raise typer.Exit(subprocess.call(command))
    columns = [TextColumn("step {task.completed}/{task.total}"), BarColumn(), TextColumn("{task.fields[status]}"),
               TimeRemainingColumn()]
    main_process = os.environ.get("RANK", "0") == "0"
    with Progress(*columns, console=err, disable=not main_process) as progress:
        task = progress.add_task("train", total=spec.schedule.max_steps, status="")

        def on_step(record: dict) -> None:
            status = f"loss {record['loss']:.4f}  {record['tokens_per_s']:.0f} tok/s"
            progress.update(task, completed=record["step"], status=status)

        result = train(spec, resume=resume, on_step=on_step,
                       on_plan=lambda plan: progress.console.print(plan.line()) if main_process else None)
    if main_process:
        err.print(f"{result.steps} steps; final loss {result.losses[-1][1]:.4f}; {result.data}; eval {result.eval}; "
                  f"adapter in {result.adapter_dir}")


@app.command("export")
def export_cmd(
    adapter: Annotated[Path, typer.Argument(help="LoRA adapter folder (peft format)")],
    base: Annotated[Path, typer.Option("--base", help="the base model folder the adapter was trained on")],
    out: Annotated[Path, typer.Option("--out", help="where to write the merged model")],
    merge: Annotated[bool, typer.Option("--merge", help="merge the adapter into the base weights")] = False,
) -> None:
    """Export a trained adapter: --merge writes base + adapter as one plain model folder."""
    from affectreason.train.export import merge_adapter

    if not merge:
        _fail("nothing to do: the adapter folder is already in peft format (vLLM --lora-modules reads it); "
              "pass --merge to write a merged model")
    err.print(f"merged model written to {merge_adapter(base, adapter, out)}")


ServerUrl = Annotated[str, typer.Option("--server", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")]


@app.command("serve")
def serve_cmd(
    model: Annotated[str, typer.Option("--model", help="model folder (HF format) or hub id (org/name[@revision])")],
    adapter: Annotated[list[str] | None, typer.Option(
        "--adapter", help="NAME=DIR: a peft LoRA adapter, served as model NAME (repeatable)")] = None,
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port (0: any free one)")] = 8000,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", help="require this key on every request (or env AFFECTREASON_API_KEY)")] = None,
    media_dir: Annotated[Path | None, typer.Option(
        "--media-dir", help="the one folder whose files requests may reference (default: none)")] = None,
    served_name: Annotated[str | None, typer.Option("--served-name", help="base model name (default: folder)")] = None,
    max_model_len: Annotated[int | None, typer.Option("--max-model-len", help="context length limit")] = None,
    kv_cache_gib: Annotated[float, typer.Option("--kv-cache-gib", help="KV cache on CPU (GiB)")] = 2.0,
    python: Annotated[str, typer.Option("--python", help="interpreter that has vLLM installed")] = sys.executable,
    ready_timeout: Annotated[float, typer.Option("--ready-timeout", help="seconds to wait for health")] = 600.0,
) -> None:
    """Serve a model and its LoRA adapters through vLLM's OpenAI-compatible server, until Ctrl-C."""
    from affectreason.serve import launch

    config = launch.ServerConfig(str(model), launch.parse_adapters(adapter or []), host, port,
                                 api_key or os.environ.get("AFFECTREASON_API_KEY"),
                                 str(media_dir) if media_dir else None, served_name, max_model_len,
                                 kv_cache_gib=kv_cache_gib, python=python)
    server = launch.VLLMServer(config)
    err.print(f"starting vLLM ({server.flavour}) for {config.name}"
              f"{' + ' + ', '.join(config.adapters) if config.adapters else ''}; waiting for it to be healthy",
              markup=False)
    names = ", ".join([config.name, *config.adapters])
    code = launch.serve_forever(server, lambda url: typer.echo(f"serving {names} at {url}"), ready_timeout)
    raise typer.Exit(code)


@app.command("query")
def query_cmd(
    path: Annotated[Path, typer.Argument(help="a clip, a folder of clips, or a cues JSONL (affectreason cues --out)")],
    server: ServerUrl,
    model: Annotated[str | None, typer.Option("--model", help="served model or adapter name (default: the first)")]
    = None,
    api_key: ApiKey = None, out: BatchOut = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="requests in flight")] = 8,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds per request")] = 300.0,
    retries: Annotated[int, typer.Option("--retries", help="retries after connection errors, 429, 5xx")] = 3,
    backoff: Annotated[float, typer.Option("--backoff", help="first retry delay (s), doubling")] = 1.0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="answer length limit")] = 768,
    max_chars: MaxChars = MAX_CHARS, max_items: MaxItems = MAX_ITEMS,
    frames: MediaFrames = 0, audio: MediaAudio = False, video: MediaVideo = False,
    prompt: Annotated[str, typer.Option("--prompt", help="prompt to render: the adapter's own (its "
                                        "affectreason_adapter.json names it), e.g. reason/explain_tuned")]
    = "reason/explain",
    as_json: Annotated[bool, typer.Option("--json", help="print {cues, explanation} as JSON")] = False,
    fps: FpsOpt = 5.0, workers: WorkersOpt = 2, face_model: FaceModel = None, asr_model: AsrModel = None,
    no_asr: NoAsr = False, transcript: TranscriptOpt = None, subtitles: SubtitlesOpt = None,
    max_duration: MaxDuration = DEFAULT_MAX_DURATION_S,
) -> None:
    """Explain clips with a served model: cues extracted here, a JSON-schema answer parsed into an Explanation."""
    from affectreason.backends.load import BackendSpec, load_reasoner
    from affectreason.backends.server import QueryConfig
    from affectreason.cues.pipeline import CueConfig

    if video and not frames:
        _fail("--video sends --frames N frames as one video: give --frames too")
    qconfig = QueryConfig(concurrency, timeout, retries, backoff, max_tokens, max_chars, max_items, frames, audio,
                          prompt, video)
    spec = BackendSpec("server", endpoint=server, server_model=model, api_key=api_key, server=qconfig)
    config = CueConfig(fps=fps, face_model=face_model, asr_model=asr_model, asr=not no_asr,
                       max_duration_s=max_duration)
    reasoner = load_reasoner(spec)
    if _is_batch(path, out):
        _batch(path, out, config, workers, spec, reasoner, "explained")
        return
    _show(_one(path, config, reasoner, transcript, subtitles), as_json)


app.add_typer(score_app, name="score")  # verbs appear in lifecycle order


@app.command("eval")
def eval_cmd(
    target: Annotated[list[str], typer.Argument(help="a suite or task (name or YAML), or `compare DIR_A DIR_B`")],
    out: Annotated[Path | None, typer.Option("--out", help="results folder (results.json, results.md, per task)")]
    = None,
    backend: Annotated[str, typer.Option("--backend", help="auto, rules, hf, openai or vllm")] = "rules",
    model: Annotated[str | None, typer.Option("--model", help="hf / vllm: model folder")] = None,
    adapter: Annotated[str | None, typer.Option("--adapter", help="hf / vllm: LoRA adapter folder")] = None,
    endpoint: Endpoint = None,
    server_model: Annotated[str | None, typer.Option("--server-model", help="openai: model name")] = None,
    api_key: ApiKey = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="hf, vllm: reply length")] = 384,
    max_chars: MaxChars = MAX_CHARS, max_items: MaxItems = MAX_ITEMS,
    limit: Annotated[int | None, typer.Option("--limit", help="records per task")] = None,
    anchors: Annotated[Path | None, typer.Option(
        "--anchors", help="anchor data folder (or env AFFECTREASON_ANCHORS)")] = None,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="your copy of the clips, {data} in recipes")]
    = Path("."),
    wheel_dir: Annotated[Path | None, typer.Option("--wheel-dir", help="emotion wheel (default: ANCHORS/"
                                                                       "emotion_wheel)")] = None,
    resamples: Annotated[int, typer.Option("--bootstrap", help="bootstrap resamples for 95% CIs (0: none)")]
    = 1000,
    judge_endpoint: Annotated[str | None, typer.Option(
        "--judge-endpoint", help="an LLM judge for EMER (OpenAI-compatible) instead of the embedding judge")] = None,
    judge_model: Annotated[str | None, typer.Option("--judge-model", help="model at --judge-endpoint")] = None,
    workers: WorkersOpt = 2, ray: RayOpt = None,
) -> None:
    """Evaluate a backend on benchmark tasks: a MER-UniBench-style results table (or compare two runs)."""
    from affectreason.backends.load import BackendSpec, load_reasoner
    from affectreason.data.recipe import anchors_dir
    from affectreason.suites import report
    from affectreason.suites.run import EvalSettings, run_task
    from affectreason.suites.task import resolve

    if target[0] == "compare":
        if len(target) != 3:
            _fail("usage: affectreason eval compare DIR_A DIR_B")
        found = anchors_dir(anchors)
        rows = report.compare(Path(target[1]), Path(target[2]), resamples,
                              wheel_dir or (found / "emotion_wheel" if found else None))
        table = [r for r in rows if r.get("status") != "skipped"]
        for r in table:
            err.print(f"{r['task']:14s} {r['figure']:22s} A {r['a']:.4f}  B {r['b']:.4f}  B-A {r['diff']:+.4f} "
                      f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]  p {r['p_value']:.3f}  n {r['n']}",
                      highlight=False, markup=False)
        for r in rows:
            if r.get("status") == "skipped":
                err.print(f"{r['task']:14s} skipped: {r['reason']}", highlight=False, markup=False)
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    if len(target) != 1:
        _fail("give one suite or task (or `compare DIR_A DIR_B`)")
    if out is None:
        _fail("--out DIR is needed: results.json, results.md and the per-task files go there")
    found = anchors_dir(anchors)
    settings = EvalSettings(out=out, anchors=found, data_dir=data_dir,
                            wheel_dir=wheel_dir or (found / "emotion_wheel" if found else None), workers=workers,
                            resamples=resamples, judge_endpoint=judge_endpoint, judge_model=judge_model,
                            api_key=api_key)
    spec = BackendSpec(backend, model, adapter, endpoint, server_model, api_key, max_new_tokens,
                       server=_bounds(max_chars, max_items))
    suite, tasks = resolve(target[0], limit)
    note = lambda line: err.print(f"[dim]{line}[/dim]")  # noqa: E731
    reasoner = load_reasoner(spec, note) if spec.batching() != "processes" else None
    with _pool(ray) as settings.pool:
        results = [run_task(task, spec, settings, reasoner, note) for task in tasks]
    payload = report.results_json(suite, results, spec.describe(),
                                  {"limit": limit, "anchors": str(found) if found else None,
                                   "data_dir": str(data_dir), "resamples": resamples})
    report.write_results(payload, out)
    report.render(payload, Console(stderr=True))
    err.print(f"results in {out}/results.json and results.md", highlight=False)


@app.command("demo")
def demo_cmd(
    backend: Annotated[str, typer.Option("--backend", help="auto, rules, hf, openai or vllm")] = "auto",
    model: Annotated[str | None, typer.Option("--model", help="hf / vllm: local chat model folder")] = None,
    adapter: Annotated[str | None, typer.Option("--adapter", help="hf / vllm: LoRA adapter folder")] = None,
    endpoint: Endpoint = None,
    server_model: Annotated[str | None, typer.Option("--server-model", help="openai: model name")] = None,
    endpoint_api_key: Annotated[str | None, typer.Option(
        "--endpoint-api-key", help="openai: the endpoint's key (or env AFFECTREASON_API_KEY / OPENAI_API_KEY)")]
    = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="hf: reply length")] = 384,
    label_endpoint: LabelEndpoint = None, label_model: LabelModel = None,
    host: Annotated[str, typer.Option("--host", help="address to listen on (not loopback: --api-key needed)")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port (0: any free one)")] = 7860,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", help="the key the page and its API ask for (or env AFFECTREASON_DEMO_API_KEY)")] = None,
    max_mb: Annotated[float, typer.Option("--max-mb", help="largest upload, in MB")] = 50.0,
    max_duration: Annotated[float, typer.Option("--max-duration", help="longest clip, in seconds")] = 120.0,
    queue_size: Annotated[int, typer.Option("--queue-size", help="jobs waiting behind the running one")] = 16,
    keep_minutes: Annotated[float, typer.Option(
        "--keep-minutes", help="a job's files go when its page closes, or this long after it ran")] = 30.0,
    fps: FpsOpt = 5.0, face_model: FaceModel = None, asr_model: AsrModel = None, no_asr: NoAsr = False,
) -> None:
    """A web page over the explain path: upload a clip, see its cues, the grounded chain of thought, the labels."""
    from affectreason.backends.load import BackendSpec
    from affectreason.cues.pipeline import CueConfig
    from affectreason.demo.app import KEY_ENV, DemoConfig, serve
    from affectreason.demo.service import Limits

    spec = BackendSpec(name=backend, model=model, adapter=adapter, endpoint=endpoint, server_model=server_model,
                       api_key=endpoint_api_key, max_new_tokens=max_new_tokens, label_endpoint=label_endpoint,
                       label_model=label_model)
    config = DemoConfig(host=host, port=port, api_key=api_key or os.environ.get(KEY_ENV) or None, spec=spec,
                        cues=CueConfig(fps=fps, face_model=face_model, asr_model=asr_model, asr=not no_asr,
                                       max_duration_s=max_duration),
                        limits=Limits(max_bytes=int(max_mb * 2**20), max_duration_s=max_duration),
                        queue_size=queue_size, keep_s=keep_minutes * 60)
    serve(config, ready=lambda url: typer.echo(f"demo at {url} (Ctrl-C stops it and deletes its files)"),
          note=lambda line: err.print(f"[dim]{line}[/dim]"))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"affectreason {affectreason.__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="print the version and exit")] = False,
         offline: Annotated[bool, typer.Option("--offline", help="never reach a model hub: hub ids come from the "
                                               "local cache only (as HF_HUB_OFFLINE=1)")] = False) -> None:
    """Explainable multimodal emotion reasoning."""
    if offline:
        # read by models.hub on every download, and by huggingface_hub / transformers when they are imported, which
        # the verbs do only after this
        os.environ["HF_HUB_OFFLINE"] = "1"


if __name__ == "__main__":
    app()
