"""A small OpenAI-compatible chat server for judge tests, listening on 127.0.0.1.

It is a real HTTP server (the client under test speaks HTTP to it), whose "model" is a
deterministic reader of the judge prompts: it scores word overlap, extracts emotion words from a
fixed list and groups known synonyms. Faults can be injected: HTTP 500s, unparseable answers and
an API key requirement.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EMOTION_WORDS = ("happy", "joyful", "sad", "angry", "furious", "worried", "anxious", "surprised", "calm")
SYNONYMS = [{"happy", "joyful"}, {"angry", "furious"}, {"worried", "anxious"}]
STOP = {"the", "a", "and", "is", "his", "her", "he", "she", "in", "of", "with", "video"}


@dataclass
class ServerState:
    """What the test can set and read."""

    fail_next: int = 0  # answer HTTP 500 to this many requests
    garble_next: int = 0  # answer text without a score to this many requests
    invent_cue: str | None = None  # explain answers cite this face cue ("AU12 at 3.5/5"), measured or not
    api_key: str | None = None
    requests: list[dict] = field(default_factory=list)


def _quoted(text: str) -> list[str]:
    return re.findall(r'"""(.*?)"""', text, re.DOTALL)


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in STOP}


def _canon(word: str) -> str:
    return next((sorted(g)[0] for g in SYNONYMS if word in g), word)


def answer(prompt: str, invent_cue: str | None = None) -> str:
    """The deterministic 'model' answer to one of the judge prompts."""
    if "Reference description" in prompt:
        ref, pred = (_words(t) for t in _quoted(prompt)[:2])
        score = round(10 * len(ref & pred) / max(len(ref | pred), 1))
        return f"Step 1: clues listed.\nStep 2: clues listed.\nStep 3: overlap judged.\nScore: {score}"
    if "Which emotional states" in prompt:
        text = _quoted(prompt)[0].lower()
        return "Labels: " + json.dumps([w for w in EMOTION_WORDS if w in text])
    if "Reference labels" in prompt:
        ref, pred = ({_canon(w.strip()) for w in re.search(f"{side} labels: (.*)", prompt).group(1).split(",")}
                     for side in ("Reference", "Predicted"))
        score = round(10 * len(ref & pred) / max(len(ref | pred), 1))
        return f"Grouped.\nScore: {score}"
    if "Measured cues of clip" in prompt:
        au = re.search(r"(AU\d\d) [a-z ]+ (\d\.\d)/5", prompt) or \
            (re.search(r"(AU\d\d) at (\d\.\d)/5", invent_cue) if invent_cue else None)
        said = re.search(r'\[Speech\][^"\n]*"([^"\n]+)"', prompt)
        cited = [{"modality": "face", "text": f"{au.group(1)} at {au.group(2)}/5", "start": 0.0, "end": 1.0,
                  "cue_ref": au.group(1)}] if au else \
            [{"modality": "text", "text": f'says "{said.group(1)}"', "start": None, "end": None,
              "cue_ref": "transcript"}] if said else []
        return json.dumps({"observations": cited, "interpretation": "The cited cue carries the signal.",
                           "conclusion": "The person is happy.", "labels": ["Happy"], "valence": 0.6,
                           "arousal": 0.2})
    if "Group these emotion labels" in prompt:
        labels = [w.strip() for w in prompt.split("Labels: ", 1)[1].split("\n", 1)[0].split(",")]
        groups: dict[str, list[str]] = {}
        for label in labels:
            groups.setdefault(_canon(label), []).append(label)
        return "Here you go: " + json.dumps(list(groups.values()))
    return "I do not understand."


def make_handler(state: ServerState):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):  # noqa: N802 (http.server API)
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(payload)
            if state.api_key and self.headers.get("Authorization") != f"Bearer {state.api_key}":
                return self._send(401, {"error": {"message": "invalid api key"}})
            if self.path != "/v1/chat/completions":
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            if state.fail_next > 0:
                state.fail_next -= 1
                return self._send(500, {"error": {"message": "injected failure"}})
            prompt = payload["messages"][-1]["content"]
            if state.garble_next > 0:
                state.garble_next -= 1
                text = "Hmm, hard to say."
            else:
                text = answer(prompt, state.invent_cue)
            return self._send(200, {"id": "x", "object": "chat.completion", "model": payload["model"],
                                    "choices": [{"index": 0, "finish_reason": "stop",
                                                 "message": {"role": "assistant", "content": text}}]})

    return Handler


class JudgeServer:
    """Context manager: a running server on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        self.state = ServerState()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL with /v1."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> JudgeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
