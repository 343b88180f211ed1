"""``affectreason demo``: the page in a real browser (Debian's chromium, driven by playwright), its Python client
(gradio_client), its limits, its key, its files.

Each server is the real command (``affectreason demo --port 0``) in a subprocess with an audit hook that records
every connection and name lookup that is not to this machine (there must be none: the page is offline). Without
chromium the browser tests skip, saying so; in CI (``CI=true``, where ``.ci/run`` installs it) they fail instead.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from typer.testing import CliRunner

from affectreason.cli import app
from affectreason.demo import view
from affectreason.demo.service import Limits, UploadRejected, Workspace, check_upload
from affectreason.errors import UsageError
from affectreason.schema import Clue, Cues, Explanation, Grounding, GroundingCheck

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "happy_astronaut.mp4"
RULES = "rules (cue-grounded engine, no weights)"
KEY = "s3cret-demo-key"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1", "0.0.0.0", "")

# Runs the CLI with an audit hook that writes down every socket connection and name lookup off this machine.
NET_HOOK = """
import os, sys
_log = os.environ["DEMO_NET_LOG"]
_local = ("localhost", "127.", "::1", "0.0.0.0")
def _hook(event, args):
    if event == "socket.connect" and isinstance(args[1], tuple) and not str(args[1][0]).startswith(_local):
        with open(_log, "a") as f: f.write(f"connect {args[1]!r}\\n")
    elif event == "socket.getaddrinfo" and args[0] and not str(args[0]).startswith(_local):
        with open(_log, "a") as f: f.write(f"lookup {args[0]!r}\\n")
sys.addaudithook(_hook)
from affectreason.cli import app
app()
"""


class DemoServer:
    """``affectreason demo --port 0 ARGS`` in a subprocess, its workspace under its own TMPDIR."""

    def __init__(self, folder: Path, *args: str):
        self.folder = folder
        (folder / "tmp").mkdir(parents=True)
        self.net_log = folder / "net.log"
        self.log = folder / "server.log"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(folder / "tmp"), "DEMO_NET_LOG": str(self.net_log),
               "PYTHONUNBUFFERED": "1"}
        env.pop("GRADIO_ANALYTICS_ENABLED", None)  # the demo turns analytics off itself
        self.proc = subprocess.Popen([sys.executable, "-c", NET_HOOK, "demo", "--port", "0", *args], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=self.log.open("w"), text=True)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()
        deadline = time.monotonic() + 180
        self.url = None
        while self.url is None:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                pytest.fail(f"the demo did not start in 180 s:\n{self.log.read_text()[-3000:]}")
            if line.startswith("demo at "):
                self.url = line.split()[2]
        self.netloc = urlparse(self.url).netloc

    @property
    def workspace(self) -> Path:
        (found,) = (self.folder / "tmp").glob("affectreason-demo-*")
        return found

    def files(self) -> list[Path]:
        return sorted(p for p in self.workspace.rglob("*") if p.is_file())

    def get(self, path: str, headers: dict | None = None) -> tuple[int, str]:
        """GET ``path`` exactly as written (no normalising of ``..``)."""
        host, port = self.netloc.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace")
        conn.close()
        return response.status, body

    def outbound(self) -> list[str]:
        return self.net_log.read_text().splitlines() if self.net_log.exists() else []

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    demo = DemoServer(tmp_path_factory.mktemp("demo"), "--max-mb", "1", "--max-duration", "10")
    yield demo
    demo.stop()


@pytest.fixture(scope="module")
def browser():
    chromium = os.environ.get("AFFECTREASON_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    missing = None
    if not Path(chromium).is_file():
        missing = f"no chromium at {chromium} (apt-get install chromium; .ci/run installs it)"
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            missing = "playwright is not installed (the [dev] extra has it)"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests must run in CI: {missing}")
        pytest.skip(f"browser tests need Debian's chromium driven by playwright: {missing}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def client_env(monkeypatch):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")  # gradio_client's telemetry, off as the README says


class Page:
    """A fresh browser context and page that records where it sent requests and which failed."""

    def __init__(self, browser, server: DemoServer):
        self.context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1000})
        self.page = self.context.new_page()
        self.hosts: set[str] = set()
        self.failed: list[str] = []
        self.page.on("request", lambda r: self.hosts.add(urlparse(r.url).netloc))
        self.page.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.status} {r.url}"))
        self.page.goto(server.url)

    def upload(self, path: Path) -> None:
        clear = self.page.locator("#clip button[aria-label='Clear']")
        if clear.count():  # the component holds the last file: take it away first, as a person would
            clear.first.click()
        self.page.set_input_files("#clip input[type=file]", str(path))
        self.page.wait_for_function("name => document.querySelector('#clip').innerText.includes(name)", arg=path.stem,
                                    timeout=30_000)

    def toast(self, text: str) -> str:
        toast = self.page.locator(".toast-body", has_text=text)
        toast.first.wait_for(timeout=120_000)
        return toast.first.inner_text()

    def close_toasts(self) -> None:
        for button in self.page.locator(".toast-close").all():
            button.click()

    def close(self) -> None:
        self.context.close()


def _not_blank(png: Path) -> None:
    from PIL import Image

    image = np.asarray(Image.open(png).convert("RGB")).astype(float)
    colours = len(np.unique(image.reshape(-1, 3), axis=0))
    assert image.shape[0] > 500 and image.shape[1] > 500
    assert image.std() > 20 and colours > 500, f"screenshot looks blank: sd {image.std():.1f}, {colours} colours"


def _write_tone(path: Path, seconds: float) -> Path:
    rate = 16_000
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 180 * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(samples.tobytes())
    return path


# --- in a real browser -----------------------------------------------------------------------------------------

def test_the_page_explains_the_example_clip_in_chromium(browser, server, tmp_path):
    page = Page(browser, server)
    try:
        p = page.page
        page.upload(EXAMPLE)
        p.click("#run")
        # progress while it works: the step being run is shown
        p.wait_for_function("document.body.innerText.includes('cues: face Action Units')", timeout=60_000)
        p.wait_for_selector("#summary .ar-label", timeout=120_000)
        assert p.locator("#summary .ar-label").all_inner_texts() == ["delighted"]
        assert "grounding 1.00" in p.inner_text("#summary")
        grounded = p.locator("#chain li.ar-obs.grounded")
        assert grounded.count() >= 2
        chain = p.inner_text("#chain")
        assert "measured peak 5.0" in chain and "Conclusion" in chain  # the measured value behind a claim
        p.wait_for_function("() => { const i = document.querySelector('#plot img');"
                            " return i && i.complete && i.naturalWidth > 0 }", timeout=30_000)
        p.wait_for_selector("#clip-video video", timeout=30_000)  # the video renders after the result, under load later
        assert p.locator("#clip-video video").count() == 1  # the clip itself is shown
        assert "AU12" in p.input_value("#cues-text textarea")
        with p.expect_download(timeout=30_000) as download:
            p.click("#download")
        saved = tmp_path / "download.json"
        download.value.save_as(saved)
        record = json.loads(saved.read_text())
        assert set(record) == {"cues", "explanation"}
        assert record["explanation"]["labels"] == ["delighted"]
        assert record["explanation"]["grounding"]["score"] == 1.0
        assert record["cues"]["clip_id"] == "happy_astronaut"
        shot = tmp_path / "page.png"
        p.screenshot(path=str(shot), full_page=True)
        _not_blank(shot)
        assert page.hosts == {server.netloc}, f"the page asked other hosts: {page.hosts}"
        assert page.failed == []
    finally:
        page.close()


def test_a_corrupt_upload_shows_its_error_and_the_next_upload_works(browser, server, tmp_path):
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    page = Page(browser, server)
    try:
        p = page.page
        page.upload(corrupt)
        p.click("#run")
        message = page.toast("broken.mp4")
        assert "cannot be decoded" in message and "is it a complete video" in message
        body = p.inner_text("body")
        assert "Traceback" not in body and str(server.workspace) not in body  # no traceback, no server path
        assert p.locator("#summary .ar-label").count() == 0
        page.close_toasts()
        page.upload(EXAMPLE)
        p.click("#run")
        p.wait_for_selector("#summary .ar-label", timeout=120_000)
        assert p.locator("#summary .ar-label").all_inner_texts() == ["delighted"]
    finally:
        page.close()
    assert not [f for f in server.files() if f.name == "broken.mp4"]  # a failed job keeps nothing


def test_too_large_and_wrong_type_uploads_say_what_is_wrong(browser, server, tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (2 * 2**20))
    notes = tmp_path / "notes.txt"
    notes.write_text("not a clip")
    page = Page(browser, server)
    try:
        p = page.page
        p.set_input_files("#clip input[type=file]", str(big))
        assert "exceed the maximum allowed size of 1.0 Mb" in page.toast("big.mp4")
        page.close_toasts()
        page.upload(notes)
        p.click("#run")
        message = page.toast("notes.txt")
        assert ".txt is not a type this demo reads" in message and ".mp4" in message and "1.0 MB" in message
    finally:
        page.close()
    assert not [f for f in server.files() if f.name in ("big.mp4", "notes.txt")]


def test_uploads_are_deleted_when_their_page_closes(browser, server):
    page = Page(browser, server)
    try:
        page.upload(EXAMPLE)
        page.page.click("#run")
        page.page.wait_for_selector("#summary .ar-label", timeout=120_000)
        jobs = [f for f in server.files() if f.name == EXAMPLE.name and "jobs" in f.parts]
        assert jobs, "the clip shown on the page lives in its job folder"
        assert not [f for f in server.files() if f.name == EXAMPLE.name and "jobs" not in f.parts]  # moved, not kept
    finally:
        page.close()
    deadline = time.monotonic() + 30
    while any(f.exists() for f in jobs) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(f.exists() for f in jobs), "the job's files outlived its page"
    assert not [f for f in server.files() if f.stat().st_size > 0 and "jobs" in f.parts]


def test_a_key_is_needed_off_loopback_and_the_page_asks_for_it(browser, tmp_path, client_env):
    refused = CliRunner().invoke(app, ["demo", "--host", "0.0.0.0", "--port", "0"])
    assert refused.exit_code == 2
    assert "--api-key" in refused.output and "0.0.0.0" in refused.output
    keyed = DemoServer(tmp_path / "keyed", "--api-key", KEY)
    try:
        status, body = keyed.get("/", {"Accept": "text/html"})
        assert status == 401 and 'name="key"' in body
        for path in ("/config", "/gradio_api/info", f"/gradio_api/file={EXAMPLE}"):
            assert keyed.get(path)[0] == 401
        assert keyed.get("/config", {"Authorization": "Bearer wrong"})[0] == 401
        assert keyed.get("/config", {"Authorization": f"Bearer {KEY}"})[0] == 200
        assert keyed.get("/healthz")[0] == 200

        from gradio_client import Client

        client = Client(keyed.url, headers={"Authorization": f"Bearer {KEY}"}, verbose=False,
                        analytics_enabled=False, download_files=str(tmp_path / "client"))
        out = client.predict("", RULES, api_name="/explain_example")
        assert 'class="ar-label">delighted<' in out[4]

        page = Page(browser, keyed)
        try:
            p = page.page
            p.fill("#key", "wrong")
            p.click("#enter")
            p.wait_for_selector("#wrong")
            p.fill("#key", KEY)
            p.click("#enter")
            p.click("#example")
            p.wait_for_selector("#summary .ar-label", timeout=120_000)
            assert p.locator("#summary .ar-label").all_inner_texts() == ["delighted"]
        finally:
            page.close()
        workspace = keyed.workspace
    finally:
        code = keyed.stop()
    assert code == 0
    assert not workspace.exists(), "the server's files outlived it"
    assert keyed.outbound() == []


# --- without a browser ------------------------------------------------------------------------------------------

def test_no_other_file_is_readable(server):
    workspace = server.workspace
    attempts = ["/gradio_api/file=/etc/passwd", f"/gradio_api/file={ROOT / 'pyproject.toml'}",
                "/gradio_api/file=../../../../etc/passwd", "/gradio_api/file=..%2F..%2F..%2F..%2Fetc%2Fpasswd",
                "/gradio_api/file=%2Fetc%2Fpasswd", f"/gradio_api/file={workspace}/../../../etc/passwd",
                f"/gradio_api/file={workspace}", "/gradio_api/file/etc/passwd", "/../../../etc/passwd",
                "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/static/../../../../pyproject.toml",
                "/assets/..%2F..%2F..%2F..%2F..%2Fpyproject.toml", "/gradio_api/proxy=http://127.0.0.1:9/"]
    for path in attempts:
        status, body = server.get(path)
        assert status == 404, (path, status, body[:200])
        assert "root:" not in body and "[build-system]" not in body


def test_the_python_client_explains_a_clip_and_says_what_is_wrong(server, tmp_path, client_env):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server.url, verbose=False, analytics_enabled=False, download_files=str(tmp_path / "client"))
    assert {"/explain", "/explain_example"} <= set(client.view_api(print_info=False,
                                                                   return_format="dict")["named_endpoints"])
    video, audio, image, plot, summary, chain, cues_text, download = client.predict(
        handle_file(str(EXAMPLE)), "", RULES, api_name="/explain")
    assert video["visible"] and not audio["visible"] and not image["visible"]
    assert Path(plot).stat().st_size > 10_000
    assert 'class="ar-label">delighted<' in summary and chain.count('class="ar-obs grounded"') >= 2
    assert "AU12" in cues_text
    record = json.loads(Path(download["value"]).read_text())
    assert record["explanation"]["labels"] == ["delighted"] and set(record) == {"cues", "explanation"}

    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).save(tmp_path / "face.png")
    video, audio, image, *_, summary, _, _, _ = client.predict(handle_file(str(tmp_path / "face.png")), "I am so happy",
                                                               RULES, api_name="/explain")
    assert image["visible"] and not video["visible"] and 'class="ar-label">' in summary  # an image is shown as one

    with pytest.raises(AppError, match=r"the clip is 12\.0 s long; this demo takes clips up to 10 s"):
        client.predict(handle_file(str(_write_tone(tmp_path / "long.wav", 12.0))), "", RULES, api_name="/explain")
    with pytest.raises(AppError, match=r"not in the list of choices: \['rules \(cue-grounded"):  # only what runs here
        client.predict("", "hf (nothing)", api_name="/explain_example")
    assert not [f for f in server.files() if f.name == "long.wav"]

    # one job at a time, the rest wait in the queue: while one runs, the other is seen waiting its turn
    first = client.submit(handle_file(str(EXAMPLE)), "", RULES, api_name="/explain")
    second = client.submit("", RULES, api_name="/explain_example")
    running, seen = {"PROCESSING", "PROGRESS", "ITERATING"}, set()
    deadline = time.monotonic() + 120
    while not (first.done() and second.done()) and time.monotonic() < deadline:
        seen.add(frozenset({(0, first.status().code.name), (1, second.status().code.name)}))
        time.sleep(0.02)
    assert any({code for _, code in pair} & running and "IN_QUEUE" in {code for _, code in pair} for pair in seen), seen
    assert all('class="ar-label">delighted<' in job.result()[4] for job in (first, second))


def test_nothing_left_the_machine(server):
    """Whatever the tests above did, the server asked no other host for anything (analytics, version checks)."""
    assert server.get("/healthz")[0] == 200
    assert server.outbound() == []


def test_check_upload_names_the_limit(tmp_path):
    limits = Limits(max_bytes=2**20, max_duration_s=2.0)
    with pytest.raises(UploadRejected, match="is not a type"):
        check_upload(tmp_path / "a.exe", limits)
    long = _write_tone(tmp_path / "long.wav", 3.0)
    with pytest.raises(UploadRejected, match=r"3\.0 s long; this demo takes clips up to 2 s"):
        check_upload(long, limits, "mine.wav")
    with pytest.raises(UploadRejected, match="larger than this demo takes"):
        check_upload(long, Limits(max_bytes=1000))
    assert check_upload(EXAMPLE, Limits()).kind == "video"


def test_the_html_escapes_what_a_model_wrote_and_marks_each_observation():
    hostile = "<script>alert(1)</script>"
    explanation = Explanation(
        observations=[Clue(modality="face", text=hostile), Clue(modality="voice", text="loud"),
                      Clue(modality="text", text="nothing to check")],
        interpretation=hostile, conclusion="x", labels=["happy"],
        grounding=Grounding(score=0.5, checks=[
            GroundingCheck(clue=0, cue="AU12", status="supported", detail="measured peak 4.0"),
            GroundingCheck(clue=1, cue="loudness", status="contradicted", detail="measured quiet")]))
    chain = view.chain_html(explanation)
    summary = view.summary_html(explanation, Cues(clip_id="c", warnings=["no audio track"]), "rules", 1.0)
    assert "<script>" not in chain + summary and "&lt;script&gt;" in chain
    assert [view.observation_status([c for c in explanation.grounding.checks if c.clue == i]) for i in range(3)] == \
        ["grounded", "ungrounded", "none"]
    assert "1 of 2 named cues" in summary and "no audio track" in summary


def test_the_workspace_deletes_by_session_age_and_at_close(tmp_path):
    workspace = Workspace(keep_s=60, parent=tmp_path)
    upload = workspace.root / "abc" / "clip.mp4"
    upload.parent.mkdir()
    upload.write_bytes(b"x")
    clip = workspace.new_job("s1", upload, "clip.mp4")
    assert clip.read_bytes() == b"x" and not upload.exists() and not upload.parent.exists()
    kept = workspace.new_job("s2", EXAMPLE, EXAMPLE.name, keep_source=True)
    assert EXAMPLE.is_file() and kept.stat().st_size == EXAMPLE.stat().st_size
    assert workspace.release("s1") == 1 and not clip.exists() and kept.exists()
    assert workspace.sweep(now=time.time() + 61) == 1 and not kept.exists()
    outside = tmp_path / "elsewhere.mp4"
    outside.write_bytes(b"y")
    with pytest.raises(UsageError, match="not an upload of this demo"):
        workspace.new_job("s3", outside, "elsewhere.mp4")  # a path from outside the workspace is never moved
    assert outside.exists()
    workspace.close()
    assert not workspace.root.exists()


def test_the_page_offers_the_configured_backend_and_the_rules_engine_only():
    from affectreason.backends.load import BackendSpec
    from affectreason.demo.service import Explainer, load_backends

    served = load_backends(BackendSpec("openai", endpoint="http://127.0.0.1:9/v1", server_model="tuned"))
    assert [(b.key, b.label) for b in served] == [("openai", "openai (tuned)"), ("rules", RULES)]
    assert [b.key for b in load_backends(BackendSpec("auto"))] == ["rules"]
    explainer = Explainer(served)
    assert explainer.backend(None).key == "openai" and explainer.backend(RULES).key == "rules"
    with pytest.raises(UsageError, match="this demo runs openai, rules"):
        explainer.backend("hf")
