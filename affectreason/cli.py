"""The ``affectreason`` command line: thin wrappers that parse options and call the library."""

from __future__ import annotations

import inspect
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

import affectreason
from affectreason.errors import AffectReasonError
from affectreason.eval.bootstrap import bootstrap_ci, paired_comparison
from affectreason.eval.registry import METRICS, OPTIONS, Metric, MetricSpec, ScoreOptions, score
from affectreason.eval.report import aggregate, render_comparison, render_table, write_json, write_per_sample
from affectreason.eval.result import MetricResult
from affectreason.serve.client import EndpointError

app = typer.Typer(help="Explainable multimodal emotion reasoning: cues, explanations, scoring.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
score_app = typer.Typer(help="Score open-vocabulary labels and explanations against gold records.",
                        no_args_is_help=True)
app.add_typer(score_app, name="score")
err = Console(stderr=True, soft_wrap=True)

USER_ERRORS = (AffectReasonError,)


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


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/bold red] {message}", highlight=False)
    raise typer.Exit(2)


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
        try:
            _emit(score(spec.name, gold, pred, **options), as_json, per_sample, out, resamples)
        except USER_ERRORS as exc:
            _fail(str(exc))

    command.__name__ = command.__qualname__ = f"score_{spec.name}_cmd"
    return _signed(command, [_param("gold", Gold), _param("pred", Pred), *_options(spec.options),
                             _param("as_json", AsJson, False), _param("per_sample", PerSample, None),
                             _param("out", Out, None), _param("resamples", Resamples, 1000)], spec.help)


for _spec in METRICS.values():
    score_app.command(_spec.name)(_score_command(_spec))


def score_compare_cmd(gold: Path, pred_a: Path, pred_b: Path, metric: Metric, as_json: bool, out: Path | None,
                      resamples: int, **options) -> None:
    try:
        opts = ScoreOptions(**options)
        spec = METRICS[metric]  # one set of flags serves every metric: options it does not take are ignored
        a = spec.score(gold, pred_a, opts)
        b = spec.score(gold, pred_b, opts)
        comparison = paired_comparison(a, b, max(resamples, 1))
    except USER_ERRORS as exc:
        _fail(str(exc))
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
TranscriptOpt = Annotated[str | None, typer.Option("--transcript", help="what is said (skips ASR)")]
SubtitlesOpt = Annotated[Path | None, typer.Option("--subtitles", help=".srt/.vtt/.txt (skips ASR)")]
LabelEndpoint = Annotated[str | None, typer.Option(
    "--label-endpoint", help="OpenAI-compatible server that extracts labels from free-text answers")]
LabelModel = Annotated[str | None, typer.Option("--label-model", help="model at --label-endpoint")]
EgemapsOpt = Annotated[bool, typer.Option("--egemaps", help="add openSMILE eGeMAPSv02 functionals")]
OpenFaceOpt = Annotated[Path | None, typer.Option("--openface", help="OpenFace 2.0 CSV: AUs instead of MediaPipe")]
BatchOut = Annotated[Path | None, typer.Option("--out", help="JSONL output for a folder (resumable)")]
ClipPath = Annotated[Path, typer.Argument(help="a clip (video, image or audio file) or a folder of clips")]


def _one_clip_cues(path: Path, config, transcript: str | None, subtitles: Path | None, openface: Path | None):
    """The clip at ``path`` and its cues, or a clean exit with the reason."""
    from affectreason.cues.face import FaceModelMissing
    from affectreason.cues.pipeline import CueExtractor, clips_in
    from affectreason.cues.speech import ASRModelMissing
    from affectreason.media import MediaError

    try:
        clip = clips_in(path)[0]
        clip = clip.model_copy(update={"transcript": transcript,
                                       "subtitles": str(subtitles) if subtitles else clip.subtitles,
                                       "openface_csv": str(openface) if openface else clip.openface_csv})
        return clip, CueExtractor(config).extract(clip)
    except (MediaError, FaceModelMissing, ASRModelMissing, ValueError) as exc:
        _fail(str(exc))


@app.command("cues")
def cues_cmd(path: ClipPath, out: BatchOut = None,
             as_json: Annotated[bool, typer.Option("--json", help="print the Cues JSON of one clip")] = False,
             plot: Annotated[Path | None, typer.Option("--plot", help="write a PNG of the cues of one clip")] = None,
             fps: FpsOpt = 5.0, workers: WorkersOpt = 2, face_model: FaceModel = None, asr_model: AsrModel = None,
             no_asr: NoAsr = False, transcript: TranscriptOpt = None, subtitles: SubtitlesOpt = None,
             openface: OpenFaceOpt = None, with_egemaps: EgemapsOpt = False) -> None:
    """Extract facial AUs, prosody and a transcript from a clip (or every clip of a folder).

    One clip prints the textualized cue block (or --json); a folder writes one JSONL line per clip.
    """
    from affectreason.cues.pipeline import CueConfig

    config = CueConfig(fps=fps, face_model=face_model, asr_model=asr_model, asr=not no_asr, egemaps=with_egemaps)
    if path.is_dir() or out is not None:
        _batch(path, out, config, workers, backend=None)
        return
    clip, cues = _one_clip_cues(path, config, transcript, subtitles, openface)
    if plot:
        from affectreason.cues.plot import plot_cues

        plot_cues(clip, cues, plot)
        err.print(f"plot written to {plot}")
    if as_json:
        sys.stdout.write(cues.model_dump_json() + "\n")
    else:
        from affectreason.cues.textualize import textualize

        Console().print(textualize(cues), highlight=False)


@app.command("explain")
def explain_cmd(path: ClipPath, out: BatchOut = None,
                backend: Annotated[str, typer.Option("--backend", help="auto, rules, hf, openai or vllm")] = "auto",
                model: Annotated[str | None, typer.Option("--model", help="hf: local chat model folder")] = None,
                adapter: Annotated[str | None, typer.Option("--adapter", help="hf: LoRA adapter folder")] = None,
                endpoint: Endpoint = None,
                server_model: Annotated[str | None, typer.Option("--server-model", help="openai: model name")] = None,
                api_key: ApiKey = None,
                max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="hf: reply length")] = 384,
                label_endpoint: LabelEndpoint = None, label_model: LabelModel = None,
                as_json: Annotated[bool, typer.Option("--json", help="print {cues, explanation} as JSON")] = False,
                fps: FpsOpt = 5.0, workers: WorkersOpt = 2, face_model: FaceModel = None,
                asr_model: AsrModel = None, no_asr: NoAsr = False, transcript: TranscriptOpt = None,
                subtitles: SubtitlesOpt = None, openface: OpenFaceOpt = None) -> None:
    """Explain the emotion of a clip: cues, a chain of thought, open-vocabulary labels, grounding."""
    from affectreason.cues.pipeline import CueConfig
    from affectreason.models.causal_lm import ModelMissing
    from affectreason.reason.explain import BackendSpec, load_reasoner

    spec = BackendSpec(backend, model, adapter, endpoint, server_model, api_key, max_new_tokens, label_endpoint,
                       label_model)
    config = CueConfig(fps=fps, face_model=face_model, asr_model=asr_model, asr=not no_asr)
    if spec.name == "vllm" and (path.is_dir() or out is not None):
        _vllm_batch(path, out, config, workers, spec)
        return
    if path.is_dir() or out is not None:
        _batch(path, out, config, workers, backend=spec)
        return
    try:
        reasoner = load_reasoner(spec, note=lambda line: err.print(f"[dim]{line}[/dim]"))
    except (ValueError, ModelMissing, ImportError) as exc:
        from rich.markup import escape

        _fail(escape(str(exc)))
    _explain_one(path, config, transcript, subtitles, openface, reasoner, as_json)


def _explain_one(path: Path, config, transcript, subtitles, openface, reasoner, as_json: bool) -> None:
    """Cues of one clip, explained by ``reasoner``, printed as JSON or rendered."""
    from affectreason.reason.explain import explain_cues
    from affectreason.reason.prompts import PromptError
    from affectreason.serve.client import EndpointError

    clip, cues = _one_clip_cues(path, config, transcript, subtitles, openface)
    try:
        explanation = explain_cues(cues, reasoner, clip)
    except (EndpointError, PromptError) as exc:
        _fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps({"cues": cues.model_dump(mode="json"),
                                     "explanation": explanation.model_dump(mode="json")}, ensure_ascii=False) + "\n")
    else:
        from affectreason.reason.render import render_explanation

        render_explanation(cues, explanation, Console())


def _batch(path: Path, out: Path | None, config, workers: int, backend) -> None:
    from rich.progress import Progress

    from affectreason.cues.pipeline import clips_in, extract_batch
    from affectreason.media import MediaError

    if out is None:
        _fail("a folder needs --out FILE.jsonl for its results")
    try:
        clips = clips_in(path)
    except MediaError as exc:
        _fail(str(exc))
    with Progress(console=err) as progress:
        task = progress.add_task(f"{'explain' if backend else 'cues'} -> {out}", total=len(clips))
        counts = extract_batch(clips, out, config, workers, on_done=lambda r: progress.advance(task), backend=backend)
        progress.update(task, completed=len(clips))
    _batch_summary(counts, out, "done")


def _batch_summary(counts: dict[str, int], out: Path, done: str) -> None:
    """One line of batch counts; exit status 1 when a clip failed."""
    err.print(f"{counts['ok']} clips {done}, {counts['failed']} failed (error records in {out}), "
              f"{counts['skipped']} already done before")
    if counts["failed"]:
        raise typer.Exit(1)


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

    try:
        spec = load_data_recipe(recipe, overrides)
        with Progress(console=err, transient=True) as progress:
            current: list = []
            result = build_dataset(
                spec, out, anchors_dir(anchors), data_dir, strict, tokenizer,
                stage=lambda name, total: current.append(progress.add_task(name, total=total)),
                step=lambda: progress.advance(current[-1]))
    except USER_ERRORS as exc:
        _fail(str(exc))
    counts = result.manifest["counts"]
    if as_json:
        sys.stdout.write(json.dumps({"out": str(out), "counts": counts, "stats": result.stats}, ensure_ascii=False)
                         + "\n")
        return
    splits = ", ".join(f"{k} {v}" for k, v in counts["splits"].items())
    labels = result.stats["labels"]
    top = ", ".join(f"{k} {v}" for k, v in list(labels["frequencies"].items())[:8])
    tokens = result.stats["tokens"]
    err.print(f"{spec.name}: {counts['records']} records ({splits}) from {counts['rows']} rows; "
              f"{counts['duplicates']} duplicate ids, {counts['incomplete']} incomplete rows, "
              f"{counts['issues']} issues (issues.jsonl)", highlight=False)
    for issue in result.issues[:5]:
        err.print(f"  [yellow]{issue}[/yellow]", highlight=False)
    err.print(f"labels: {labels['vocabulary_size']} distinct; {top}", highlight=False)
    err.print(f"tokens ({tokens['counted_by']}): prompt median {tokens['user']['median']:.0f}, "
              f"target median {tokens['assistant']['median']:.0f} (max {tokens['assistant']['max']})", highlight=False)
    err.print("modalities: " + ", ".join(f"{k} {v:.0%}" for k, v in result.stats["modalities"].items()),
              highlight=False)
    if "teacher" in result.stats:
        teacher = result.stats["teacher"]
        err.print(f"teacher: kept {teacher['kept']}/{teacher['asked']} ({teacher['kept_share']:.1%}); "
                  f"{teacher['outcomes']}", highlight=False)
    err.print(f"written to {out}: " + ", ".join(f"{k}.jsonl" for k in counts["splits"])
              + ", dataset/, sharegpt/ (dataset_info.json), stats.json, manifest.json", highlight=False)


def _vllm_batch(path: Path, out: Path | None, config, workers: int, spec) -> None:
    from affectreason.media import MediaError
    from affectreason.serve.offline import OfflineVLLM, explain_dataset

    if out is None:
        _fail("a folder needs --out FILE.jsonl for its results")
    try:
        reasoner = OfflineVLLM(spec.model or "", spec.adapter, spec.max_new_tokens)
        counts = explain_dataset(path, out, reasoner, config, workers)
    except (MediaError, ValueError, ImportError) as exc:
        from rich.markup import escape

        _fail(escape(str(exc)))
    _batch_summary(counts, out, "explained in one vLLM batch")


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

    from affectreason.media import MediaError
    from affectreason.models.causal_lm import ModelMissing
    from affectreason.train.recipe import RecipeError, load_recipe
    from affectreason.train.sft import TrainError, train
    from affectreason.train.sft_data import DataError

    try:
        spec = load_recipe(recipe, overrides)
    except RecipeError as exc:
        _fail(str(exc))
    if launch:
        import subprocess

        from affectreason.train.launch import launch_command

        try:
            command = launch_command(launch, [recipe, *(overrides or []), *(["--resume"] if resume else [])],
                                     num_processes)
        except TrainError as exc:
            _fail(str(exc))
        raise typer.Exit(subprocess.call(command))
    columns = [TextColumn("step {task.completed}/{task.total}"), BarColumn(), TextColumn("{task.fields[status]}"),
               TimeRemainingColumn()]
    main_process = os.environ.get("RANK", "0") == "0"
    try:
        with Progress(*columns, console=err, disable=not main_process) as progress:
            task = progress.add_task("train", total=spec.schedule.max_steps, status="")

            def on_step(record: dict) -> None:
                status = f"loss {record['loss']:.4f}  {record['tokens_per_s']:.0f} tok/s"
                progress.update(task, completed=record["step"], status=status)

            result = train(spec, resume=resume, on_step=on_step)
    except (TrainError, DataError, ModelMissing, MediaError, ValueError) as exc:
        _fail(str(exc))
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
    from affectreason.train.export import ExportError, merge_adapter

    if not merge:
        _fail("nothing to do: the adapter folder is already in peft format (vLLM --lora-modules reads it); "
              "pass --merge to write a merged model")
    try:
        err.print(f"merged model written to {merge_adapter(base, adapter, out)}")
    except ExportError as exc:
        _fail(str(exc))


ServerUrl = Annotated[str, typer.Option("--server", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")]


@app.command("serve")
def serve_cmd(
    model: Annotated[Path, typer.Option("--model", help="local model folder (HF format) to serve")],
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

    try:
        config = launch.ServerConfig(str(model), launch.parse_adapters(adapter or []), host, port,
                              api_key or os.environ.get("AFFECTREASON_API_KEY"), str(media_dir) if media_dir else None,
                              served_name, max_model_len, kv_cache_gib=kv_cache_gib, python=python)
        server = launch.VLLMServer(config)
        err.print(f"starting vLLM ({server.flavour}) for {config.name}"
                  f"{' + ' + ', '.join(config.adapters) if config.adapters else ''}; waiting for it to be healthy")
        names = ", ".join([config.name, *config.adapters])
        code = launch.serve_forever(server, lambda url: typer.echo(f"serving {names} at {url}"), ready_timeout)
    except (launch.VLLMMissing, ValueError, launch.ServerFailed) as exc:
        from rich.markup import escape

        _fail(escape(str(exc)))  # the install hint's "affectreason[serve]" is not markup
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
    max_chars: Annotated[int, typer.Option("--max-chars", help="length limit of each text field")] = 400,
    max_items: Annotated[int, typer.Option("--max-items", help="length limit of each list")] = 6,
    frames: Annotated[int, typer.Option("--frames", help="key frames sent as images (vision models)")] = 0,
    audio: Annotated[bool, typer.Option("--audio", help="send the clip's audio (audio models)")] = False,
    prompt: Annotated[str, typer.Option("--prompt", help="prompt to render: the adapter's own (its "
                                        "affectreason_adapter.json names it), e.g. reason/explain_tuned")]
    = "reason/explain",
    as_json: Annotated[bool, typer.Option("--json", help="print {cues, explanation} as JSON")] = False,
    fps: FpsOpt = 5.0, workers: WorkersOpt = 2, face_model: FaceModel = None, asr_model: AsrModel = None,
    no_asr: NoAsr = False, transcript: TranscriptOpt = None, subtitles: SubtitlesOpt = None,
) -> None:
    """Explain clips with a served model: cues extracted here, a JSON-schema answer parsed into an Explanation."""
    from affectreason.cues.pipeline import CueConfig
    from affectreason.serve.query import QueryConfig, connect

    qconfig = QueryConfig(concurrency, timeout, retries, backoff, max_tokens, max_chars, max_items, frames, audio,
                          prompt)
    config = CueConfig(fps=fps, face_model=face_model, asr_model=asr_model, asr=not no_asr)
    try:
        reasoner = connect(server, model, api_key, qconfig)
    except (EndpointError, ValueError) as exc:
        _fail(str(exc))
    if path.is_dir() or out is not None or path.suffix.lower() == ".jsonl":
        _query_batch(path, out, reasoner, config, workers)
        return
    _explain_one(path, config, transcript, subtitles, None, reasoner, as_json)


def _query_batch(path: Path, out: Path | None, reasoner, config, workers: int) -> None:
    from rich.progress import Progress

    from affectreason.media import MediaError
    from affectreason.serve.batch import load_items
    from affectreason.serve.query import query_batch

    if out is None:
        _fail("a folder or cues JSONL needs --out FILE.jsonl for its results")
    with Progress(console=err) as progress:
        try:
            cue_task = progress.add_task("cues", total=None)
            items = load_items(path, out, config, workers, on_cue=lambda r: progress.advance(cue_task))
        except (MediaError, ValueError) as exc:
            _fail(str(exc))
        progress.update(cue_task, total=len(items), completed=len(items))
        task = progress.add_task(f"{reasoner.client.model} -> {out}", total=len(items))
        result = query_batch(items, out, reasoner, on_done=lambda r: progress.advance(task))
        progress.update(task, completed=len(items))
    err.print(f"{result.ok} clips explained, {len(result.failed)} failed, {result.skipped} already done before")
    if result.failed:
        for clip_id, error in sorted(result.failed.items()):
            err.print(f"  failed {clip_id}: {error[:200]}", highlight=False)
        err.print(f"run the same command again to retry the {len(result.failed)} failed clips only")
        raise typer.Exit(1)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"affectreason {affectreason.__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="print the version and exit")] = False) -> None:
    """Explainable multimodal emotion reasoning."""


if __name__ == "__main__":
    app()
