"""A Hugging Face Hub stand-in on 127.0.0.1 for tests: it serves model folders by repo id, answering the requests
``huggingface_hub`` makes to download and cache a snapshot (repo info with its file list, then each file's
metadata and bytes), so the real download-and-cache path runs with no network (``HF_ENDPOINT`` points here)."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    """Context manager: serves ``repos`` ({"org/name": folder}) at ``self.url``; counts file downloads."""

    def __init__(self, repos: dict[str, Path]):
        self.repos = {k: Path(v) for k, v in repos.items()}
        self.downloads: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

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
                    repo = "/".join(path[len("/api/models/"):].split("/")[:2])
                    folder = hub.repos.get(repo)
                    if folder is None:
                        return self._send(404, b'{"error": "Repository not found"}',
                                          {"X-Error-Code": "RepoNotFound", "Content-Type": "application/json"},
                                          head)
                    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
                    if "/tree/" in path:  # the file listing snapshot_download asks for
                        body = json.dumps([{"type": "file", "path": f, "size": (folder / f).stat().st_size,
                                            "oid": hashlib.sha1((folder / f).read_bytes()).hexdigest()}
                                           for f in files]).encode()
                        return self._send(200, body, {"Content-Type": "application/json"}, head)
                    body = json.dumps({"id": repo, "modelId": repo, "sha": COMMIT, "private": False,
                                       "siblings": [{"rfilename": f} for f in files]}).encode()
                    return self._send(200, body, {"Content-Type": "application/json"}, head)
                parts = path.strip("/").split("/")
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo, filename = "/".join(parts[:2]), "/".join(parts[4:])
                    file = hub.repos.get(repo, Path("/nonexistent")) / filename
                    if not file.is_file():
                        return self._send(404, b"not found", {"X-Error-Code": "EntryNotFound"}, head)
                    data = file.read_bytes()
                    etag = hashlib.sha256(data).hexdigest()
                    if not head:
                        hub.downloads.append(f"{repo}/{filename}")
                    return self._send(200, data, {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"',
                                                  "Content-Type": "application/octet-stream"}, head)
                return self._send(404, b"no route")

            def do_HEAD(self):  # noqa: N802 (http.server API)
                self._route(head=True)

            def do_GET(self):  # noqa: N802
                self._route(head=False)

        return Handler
