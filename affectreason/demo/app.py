"""The demo page: Gradio Blocks inside a FastAPI app, served by uvicorn, offline.

Offline: Gradio's analytics and version check are off (``GRADIO_ANALYTICS_ENABLED=False``, set here whatever the
environment says), so are Hugging Face telemetry, server-side rendering (no Node process), the MCP server and
the monitoring dashboard; the page's scripts, styles and fonts are Gradio's own files, served by this server
(the browser tests check that the page asks no other host for anything). Gradio's uploads and everything a job
makes live in one private temporary folder (``service.Workspace``), deleted when the server stops.

Access: bound to a loopback address the page is open; bound to anything else it needs ``--api-key``, asked on
every request but ``/healthz`` (``Authorization: Bearer KEY``, or a cookie set by the page's key form), and the
server refuses to start without one.
"""

# No ``from __future__ import annotations`` here: Gradio reads ``gr.Request`` and ``gr.Progress`` from the event
# functions' signatures, and string annotations naming the function-local ``gr`` would not resolve.
import hmac
import ipaddress
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote

import affectreason
from affectreason.backends.load import BackendSpec
from affectreason.cues.pipeline import CueConfig
from affectreason.cues.textualize import textualize
from affectreason.demo import view
from affectreason.demo.service import Explainer, JobOutput, Limits, Workspace, load_backends
from affectreason.errors import AffectReasonError, UsageError

OFFLINE_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_SSR_MODE": "False",
               "GRADIO_MCP_SERVER": "False"}
KEY_ENV = "AFFECTREASON_DEMO_API_KEY"
KEY_COOKIE = "affectreason_demo_key"
OPEN_PATHS = frozenset({"/healthz", "/login"})
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "happy_astronaut.mp4"
API_NAME = "explain"


@dataclass
class DemoConfig:
    """How ``affectreason demo`` runs: where it listens, its key, the backend and cue settings, the limits."""

    host: str = "127.0.0.1"
    port: int = 7860
    api_key: str | None = None
    spec: BackendSpec = field(default_factory=BackendSpec)
    cues: CueConfig = field(default_factory=CueConfig)
    limits: Limits = field(default_factory=Limits)
    queue_size: int = 16
    """jobs waiting behind the one running; Gradio refuses more, saying the queue is full"""
    keep_s: float = 1800.0
    """a job's files are deleted when its page closes, or this long after it ran at the latest"""
    example: Path | None = field(default_factory=lambda: EXAMPLE if EXAMPLE.is_file() else None)


def is_local(host: str) -> bool:
    """Whether ``host`` is a loopback address (only this machine can connect)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_config(config: DemoConfig) -> None:
    """``UsageError`` for a configuration that must not start (no key off loopback, limits that make no sense)."""
    if not is_local(config.host) and not config.api_key:
        raise UsageError(f"--host {config.host} lets other machines reach the demo: give --api-key KEY (or env "
                         f"{KEY_ENV}) so that only those with the key can use it, or bind to 127.0.0.1")
    if config.limits.max_bytes <= 0 or config.limits.max_duration_s <= 0:
        raise UsageError("--max-mb and --max-duration must be positive")
    if config.queue_size < 1:
        raise UsageError("--queue-size must be at least 1")


# --- access ---------------------------------------------------------------------------------------------------

LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>affectreason demo: key</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 4em auto">
<h1>affectreason demo</h1><p>This demo needs its API key (the one given to <code>affectreason demo --api-key</code>).
</p>{message}<form method="post" action="/login"><input id="key" name="key" type="password" autofocus size="40">
<button id="enter" type="submit">Enter</button></form></body></html>"""


class RequireKey:
    """ASGI middleware: every request but ``OPEN_PATHS`` carries the key, as ``Authorization: Bearer KEY`` or the
    cookie that ``POST /login`` sets; otherwise 401 (the key form for a browser, JSON for anything else)."""

    def __init__(self, app, key: str):
        self.app = app
        self.key = key.encode()

    def _ok(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.key)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth.lower().startswith("bearer ") and self._ok(auth[7:].strip()):
            return True
        for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
            name, _, value = part.strip().partition("=")
            if name == KEY_COOKIE and self._ok(value):
                return True
        return False

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        path = scope.get("path", "")
        if path == "/login" and scope["type"] == "http" and scope.get("method") == "POST":
            return await self._login(receive, send)
        if path in OPEN_PATHS or self._authorized(headers):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        if scope.get("method") == "GET" and b"text/html" in headers.get(b"accept", b""):
            return await _respond(send, 401, LOGIN_PAGE.format(message=""), "text/html")
        return await _respond(send, 401, '{"error": "this demo needs its API key: send Authorization: Bearer KEY"}',
                              "application/json")

    async def _login(self, receive, send) -> None:
        body, more = b"", True
        while more and len(body) < 4096:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        key = (parse_qs(body.decode("utf-8", "replace")).get("key") or [""])[0]
        if not self._ok(key):
            page = LOGIN_PAGE.format(message='<p id="wrong" style="color:#b91c1c">That is not the key.</p>')
            return await _respond(send, 401, page, "text/html")
        cookie = f"{KEY_COOKIE}={key}; Path=/; HttpOnly; SameSite=Strict"
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", b"/"), (b"set-cookie", cookie.encode()), (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


async def _respond(send, status: int, body: str, media_type: str) -> None:
    data = body.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", f"{media_type}; charset=utf-8".encode()),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/")
UNUSED_ROUTES = ("/gradio_api/proxy=", "/gradio_api/vibe", "/gradio_api/undo-vibe", "/gradio_api/process_recording",
                 "/gradio_api/run-history", "/gradio_api/runs", "/gradio_api/dev/", "/gradio_api/custom_component/",
                 "/gradio_api/deep_link", "/monitoring", "/gradio_api/mcp", "/gradio_api/stream/")
NOT_FOUND = '{"detail": "Not Found"}'


class FileGuard:
    """ASGI middleware: the only files served from disk are the workspace's (uploads being shown, a job's plot and
    JSON) and Gradio's own page assets. A file route naming anything else, any path with a ``..`` segment, and the
    Gradio routes this page does not use (proxy, editor, recording, run history, monitoring) answer 404, the same
    as a path that does not exist, before Gradio sees the request."""

    def __init__(self, app, root: Path):
        self.app = app
        self.root = Path(root).resolve()

    def allowed(self, path: str) -> bool:
        """Whether a (percent-decoded) request path may reach the app."""
        if ".." in path.replace("\\", "/").split("/"):
            return False
        if path.startswith(UNUSED_ROUTES):
            return False
        for route in FILE_ROUTES:
            if path.startswith(route):
                target = path[len(route):]
                if "://" in target or not target:
                    return False
                resolved = Path(os.path.realpath(target))
                return resolved.is_relative_to(self.root) and resolved.is_file()
        return True

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            raw = unquote(scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0])
            if not (self.allowed(scope.get("path", "")) and self.allowed(raw or "/")):
                return await _respond(send, 404, NOT_FOUND, "application/json")
        return await self.app(scope, receive, send)


# --- the page -------------------------------------------------------------------------------------------------

def _gradio():
    os.environ.update(OFFLINE_ENV)
    import gradio

    return gradio


def _message(exc: Exception) -> str:
    """What the page says about a failed job: a user error's own message; a bug said to be one (its traceback
    goes to the server's log, never to the page)."""
    if isinstance(exc, AffectReasonError):
        return str(exc)
    traceback.print_exception(exc, file=sys.stderr)
    return (f"bug in affectreason {affectreason.__version__}: {type(exc).__name__}; this is not a problem with "
            "your clip; the server's log has the details")


def build_blocks(explainer: Explainer, workspace: Workspace, config: DemoConfig):
    """The Gradio page: inputs on the left, the labels and chain of thought on the right, the clip, the cue plot
    and the textualized cues below, a JSON download."""
    gr = _gradio()
    labels = [b.label for b in explainer.backends]
    outputs_hidden = dict(visible=False, value=None)

    def show(out: JobOutput):
        result = out.result
        return (gr.update(value=str(out.clip), visible=out.kind == "video"),
                gr.update(value=str(out.clip), visible=out.kind == "audio"),
                gr.update(value=str(out.clip), visible=out.kind == "image"),
                str(out.plot),
                view.summary_html(result.explanation, result.cues, out.backend, out.seconds),
                view.chain_html(result.explanation),
                textualize(result.cues),
                gr.update(value=str(out.json), visible=True))

    def job(source: Path, name: str, keep_source: bool, transcript: str, backend: str, request, progress):
        clip = workspace.new_job(getattr(request, "session_hash", None), source, name, keep_source)
        try:
            return show(explainer.run(clip, name, transcript, backend, clip.parent,
                                      lambda fraction, what: progress(fraction, desc=what)))
        except Exception as exc:  # noqa: BLE001 (every failure becomes a message on the page)
            workspace.drop_job(clip)
            raise gr.Error(_message(exc), duration=None, print_exception=False) from None

    def explain(clip: str | None, transcript: str, backend: str, request: gr.Request,
                progress=gr.Progress()):  # noqa: B008 (Gradio's way of asking for a progress bar)
        if not clip:
            raise gr.Error("upload a clip first (or explain the example)", duration=None, print_exception=False)
        return job(Path(clip), Path(clip).name, False, transcript, backend, request, progress)

    def explain_example(transcript: str, backend: str, request: gr.Request,
                        progress=gr.Progress()):  # noqa: B008
        return job(config.example, config.example.name, True, transcript, backend, request, progress)

    def release(request: gr.Request) -> None:
        workspace.release(request.session_hash)

    with gr.Blocks(title="affectreason demo", analytics_enabled=False) as blocks:
        gr.Markdown(f"## affectreason: explained emotion\nUpload a {config.limits.describe()}. The clip becomes "
                    "cues (face Action Units, voice, words); the reasoner explains them in a chain of thought whose "
                    "every claim is checked against those measurements.", elem_id="intro")
        with gr.Row():
            with gr.Column(scale=2):
                # no file_types: Gradio would refuse other types before the job starts and keep the upload; the
                # job's own check says what it takes and deletes the file at once
                clip = gr.File(label="clip (video, audio or image)", type="filepath", elem_id="clip")
                transcript = gr.Textbox(label="transcript (optional: otherwise speech is recognised)", lines=2,
                                        elem_id="transcript")
                backend = gr.Radio(labels, value=labels[0], label="backend", elem_id="backend",
                                   interactive=len(labels) > 1)
                run = gr.Button("Explain", variant="primary", elem_id="run")
                example = gr.Button(f"Explain the example clip ({config.example.name})", elem_id="example") \
                    if config.example else None
            with gr.Column(scale=3):
                summary = gr.HTML(elem_id="summary")
                chain = gr.HTML(elem_id="chain")
        with gr.Row():
            with gr.Column(scale=2):
                video = gr.Video(label="clip", elem_id="clip-video", interactive=False, **outputs_hidden)
                audio = gr.Audio(label="clip", elem_id="clip-audio", interactive=False, type="filepath",
                                 **outputs_hidden)
                image = gr.Image(label="clip", elem_id="clip-image", interactive=False, type="filepath",
                                 **outputs_hidden)
                download = gr.DownloadButton("Download {cues, explanation} JSON", elem_id="download",
                                             **outputs_hidden)
            with gr.Column(scale=3):
                plot = gr.Image(label="cues: AU timelines with the apex, pitch and loudness, words", type="filepath",
                                elem_id="plot", interactive=False, show_label=False)
        cues_text = gr.Textbox(label="textualized cues (what a language model reads)", lines=8, interactive=False,
                               elem_id="cues-text")
        outputs = [video, audio, image, plot, summary, chain, cues_text, download]
        cleared = (*(gr.update(visible=False, value=None) for _ in range(3)), None, "", "", "",
                   gr.update(visible=False, value=None))
        # a new job first clears the last one's results (a failed job must not look like the one before), then runs
        run.click(lambda: cleared, None, outputs, queue=False, api_visibility="private").then(
            explain, [clip, transcript, backend], outputs, api_name=API_NAME, concurrency_id="explain")
        if example is not None:
            example.click(lambda: cleared, None, outputs, queue=False, api_visibility="private").then(
                explain_example, [transcript, backend], outputs, api_name="explain_example", concurrency_id="explain")
        blocks.unload(release)
    blocks.queue(default_concurrency_limit=1, max_size=config.queue_size)
    return blocks


def build_app(config: DemoConfig, explainer: Explainer, workspace: Workspace):
    """The FastAPI app: ``/healthz``, the page at ``/``, the key check when a key is set."""
    gr = _gradio()
    from fastapi import FastAPI

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True, "backends": [b.key for b in explainer.backends]}

    blocks = build_blocks(explainer, workspace, config)
    app = gr.mount_gradio_app(app, blocks, path="/", max_file_size=config.limits.max_bytes, show_error=True,
                              ssr_mode=False, mcp_server=False, enable_monitoring=False, pwa=False, allowed_paths=[],
                              css=view.CSS, run_history=False, server_name=config.host, server_port=config.port)
    app.add_middleware(FileGuard, root=workspace.root)
    if config.api_key:  # outermost: nothing is answered without the key
        app.add_middleware(RequireKey, key=config.api_key)
    return app


def _sweeper(workspace: Workspace, stop: threading.Event) -> None:
    interval = max(1.0, min(60.0, workspace.keep_s / 4))
    while not stop.wait(interval):
        workspace.sweep()


def serve(config: DemoConfig, ready: Callable[[str], None] | None = None,
          note: Callable[[str], None] | None = None) -> None:
    """Load the backends, serve the page until Ctrl-C (or SIGTERM), then delete every file the server kept."""
    check_config(config)
    backends = load_backends(config.spec, note)
    explainer = Explainer(backends, config.cues, config.limits)
    workspace = Workspace(config.keep_s)
    os.environ["GRADIO_TEMP_DIR"] = str(workspace.root)  # Gradio's uploads go into the workspace too
    stop = threading.Event()
    try:
        import uvicorn

        app = build_app(config, explainer, workspace)
        server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="warning",
                                               timeout_graceful_shutdown=3))
        threading.Thread(target=_sweeper, args=(workspace, stop), daemon=True).start()
        threading.Thread(target=_announce, args=(server, config, ready or print), daemon=True).start()
        # uvicorn re-raises the signal that stopped it once it has shut down: make SIGTERM land here as Ctrl-C
        # does, so the files are deleted either way
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)
    finally:
        stop.set()
        workspace.close()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _announce(server, config: DemoConfig, ready: Callable[[str], None]) -> None:
    import time

    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1] if server.servers else config.port
    host = f"[{config.host}]" if ":" in config.host else config.host
    ready(f"http://{host}:{port}/")
