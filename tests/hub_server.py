"""A Hugging Face Hub stand-in on 127.0.0.1 for tests: it serves model folders by repo id, answering the requests
``huggingface_hub`` makes to download and cache a snapshot (repo info with its file list, then each file's
metadata and bytes), so the real download-and-cache path runs with no network (``HF_ENDPOINT`` points here).

A repo is served at ``main`` (key ``"org/name"``) and at named revisions (key ``"org/name@rev"``); each revision has
its own commit hash, and an unknown revision is answered as the Hub answers it (404, ``RevisionNotFound``)."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    """Context manager: serves ``repos`` ({"org/name": folder, "org/name@rev": folder}) at ``self.url``; counts
    file downloads."""

    def __init__(self, repos: dict[str, Path]):
        self.repos = {k if "@" in k else f"{k}@main": Path(v) for k, v in repos.items()}
        self.commits = {key: COMMIT if key.endswith("@main") else hashlib.sha1(key.encode()).hexdigest()
                        for key in self.repos}
        self.downloads: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def find(self, repo: str, revision: str) -> tuple[str, Path] | None:
        """(commit, folder) of ``repo`` at ``revision`` (a name or a commit hash), or None."""
        for key, folder in self.repos.items():
            name, _, rev = key.partition("@")
            if name == repo and revision in (rev, self.commits[key]):
                return self.commits[key], folder
        return None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, headers: dict | None = None, head: bool = False) -> None:
                self.send_response(status)
                for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
                    self.send_header(key, value)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _route(self, head: bool) -> None:
                path = unquote(self.path.split("?", 1)[0])
                if path.startswith("/api/models/"):
                    parts = path[len("/api/models/"):].split("/")
                    repo = "/".join(parts[:2])
                    # /api/models/REPO, /api/models/REPO/revision/REV, /api/models/REPO/tree/REV[/...]
                    revision = parts[3] if len(parts) > 3 and parts[2] in ("revision", "tree") else "main"
                    if not any(k.partition("@")[0] == repo for k in hub.repos):
                        return self._send(404, b'{"error": "Repository not found"}',
                                          {"X-Error-Code": "RepoNotFound", "Content-Type": "application/json"},
                                          head)
                    found = hub.find(repo, revision)
                    if found is None:
                        return self._send(404, b'{"error": "Invalid rev id"}',
                                          {"X-Error-Code": "RevisionNotFound", "Content-Type": "application/json"},
                                          head)
                    commit, folder = found
                    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
                    if "/tree/" in path:  # the file listing snapshot_download asks for
                        body = json.dumps([{"type": "file", "path": f, "size": (folder / f).stat().st_size,
                                            "oid": hashlib.sha1((folder / f).read_bytes()).hexdigest()}
                                           for f in files]).encode()
                        return self._send(200, body, {"Content-Type": "application/json"}, head)
                    body = json.dumps({"id": repo, "modelId": repo, "sha": commit, "private": False,
                                       "siblings": [{"rfilename": f} for f in files]}).encode()
                    return self._send(200, body, {"Content-Type": "application/json"}, head)
                parts = path.strip("/").split("/")
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo, filename = "/".join(parts[:2]), "/".join(parts[4:])
                    commit, folder = hub.find(repo, parts[3]) or (COMMIT, Path("/nonexistent"))
                    file = folder / filename
                    if not file.is_file():
                        return self._send(404, b"not found", {"X-Error-Code": "EntryNotFound"}, head)
                    data = file.read_bytes()
                    etag = hashlib.sha256(data).hexdigest()
                    if not head:
                        hub.downloads.append(f"{repo}/{filename}")
                    return self._send(200, data, {"X-Repo-Commit": commit, "ETag": f'"{etag}"',
                                                  "Content-Type": "application/octet-stream"}, head)
                return self._send(404, b"no route")

            def do_HEAD(self):  # noqa: N802 (http.server API)
                self._route(head=True)

            def do_GET(self):  # noqa: N802
                self._route(head=False)

        return Handler
