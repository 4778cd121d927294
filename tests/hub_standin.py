"""A local stand-in for the Hugging Face hub: the few endpoints huggingface_hub's snapshot_download calls.

    GET  /api/{models,datasets}/{repo}/revision/{revision}    repo info: the commit sha and the files (no revision: main)
    GET  /api/{models,datasets}/{repo}/tree/{revision}         the file tree (one page)
    HEAD /{repo}/resolve/{revision}/{file}                     X-Repo-Commit, ETag, Content-Length
    GET  /{repo}/resolve/{revision}/{file}                     the file (datasets: /datasets/{repo}/resolve/...)

Model repos are published from a folder (`publish`), dataset repos from rows written as JSON Lines (`publish_rows`).

Point huggingface_hub at it with `HubStandin.serve(monkeypatch)`, which also gives it a cache of its own.
"""

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

# /api/{kind}/{repo} alone (the `datasets` library asks it first) answers as /revision/main
_API = re.compile(r"/api/(models|datasets)/([^/]+/[^/]+)(?:/(revision|tree)/([^/]+)(?:/.*)?)?")
_RESOLVE = re.compile(r"/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)")


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit sha -> file path -> content
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> commit sha
    gated: bool = False

    def commit_of(self, revision: str) -> str | None:
        return revision if revision in self.commits else self.refs.get(revision)


@dataclass
class HubStandin:
    repos: dict[str, Repo] = field(default_factory=dict)  # "models/org/name" or "datasets/org/name"
    requests: list[str] = field(default_factory=list)  # "METHOD path" of every request served
    url: str = ""

    def publish(self, repo_id: str, folder: Path, branch: str = "main", kind: str = "models") -> str:
        """A new commit of `repo_id` holding `folder`'s files, on `branch`; returns its sha."""
        files = {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}
        return self._commit(f"{kind}/{repo_id}", files, branch)

    def publish_rows(self, repo_id: str, rows: list[dict], file: str = "data.jsonl", branch: str = "main") -> str:
        """A new commit of the dataset `repo_id` holding `rows` as one JSON Lines file, on `branch`; returns its sha."""
        data = "".join(json.dumps(row) + "\n" for row in rows).encode()
        return self._commit(f"datasets/{repo_id}", {file: data}, branch)

    def _commit(self, key: str, files: dict[str, bytes], branch: str) -> str:
        repo = self.repos.setdefault(key, Repo())
        sha = hashlib.sha1(f"{len(repo.commits)}{sorted(files)}".encode() + b"".join(files.values())).hexdigest()
        repo.commits[sha] = files
        repo.refs[branch] = sha
        return sha

    @contextmanager
    def serving(self, monkeypatch, cache: Path) -> Iterator["HubStandin"]:
        """Serve the published repositories, with huggingface_hub pointed here and caching under `cache`."""
        with self.running():
            self.point_hub_here(monkeypatch, cache)
            yield self

    @contextmanager
    def running(self) -> Iterator["HubStandin"]:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()

    def point_hub_here(self, monkeypatch, cache: Path) -> None:
        """huggingface_hub reads HF_ENDPOINT, HF_HUB_CACHE and HF_HUB_OFFLINE once, at import: set its constants."""
        monkeypatch.setenv("HF_ENDPOINT", self.url)
        monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", self.url)
        monkeypatch.setattr("huggingface_hub.constants.HUGGINGFACE_CO_URL_TEMPLATE",
                            self.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(cache / "token"))


def go_offline(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)


def _handler(hub: HubStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet: the tests read hub.requests instead
            pass

        def do_GET(self) -> None:
            self._answer(body=True)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def _answer(self, body: bool) -> None:
            path = unquote(urlparse(self.path).path)
            hub.requests.append(f"{self.command} {path}")
            if match := _API.fullmatch(path):
                kind, repo_id, what, revision = match.groups()
                self._api(kind, repo_id, what or "revision", revision or "main")
            elif match := _RESOLVE.fullmatch(path):
                dataset, repo_id, revision, file = match.groups()
                self._resolve("datasets" if dataset else "models", repo_id, revision, file, body)
            else:
                self._error(404, "EntryNotFound", f"no route {path}")

        def _find(self, kind: str, repo_id: str, revision: str) -> tuple[str, dict[str, bytes]] | None:
            repo = hub.repos.get(f"{kind}/{repo_id}")
            if repo is None:
                self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
                return None
            if repo.gated and "authorization" not in {key.lower() for key in self.headers}:
                self._error(401, "GatedRepo", f"Access to {repo_id} is restricted")
                return None
            commit = repo.commit_of(revision)
            if commit is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                return None
            return commit, repo.commits[commit]

        def _api(self, kind: str, repo_id: str, what: str, revision: str) -> None:
            found = self._find(kind, repo_id, revision)
            if found is None:
                return
            commit, files = found
            if what == "revision":
                answer: object = {"id": repo_id, "sha": commit, "siblings": [{"rfilename": name} for name in files]}
            else:
                answer = [{"type": "file", "path": name, "size": len(data), "oid": _blob_id(data)}
                          for name, data in files.items()]
            self._send(200, json.dumps(answer).encode(), {"Content-Type": "application/json"}, True)

        def _resolve(self, kind: str, repo_id: str, revision: str, file: str, body: bool) -> None:
            found = self._find(kind, repo_id, revision)
            if found is None:
                return
            commit, files = found
            if file not in files:
                self._error(404, "EntryNotFound", f"{file} not found")
                return
            data = files[file]
            headers = {"X-Repo-Commit": commit, "ETag": f'"{_blob_id(data)}"', "Content-Type": "application/octet-stream"}
            self._send(200, data, headers, body)

        def _error(self, status: int, code: str, message: str) -> None:
            self._send(status, json.dumps({"error": message}).encode(),
                       {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}, True)

        def _send(self, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def _blob_id(data: bytes) -> str:
    """The git blob sha of `data`, as the hub's ETag of a small file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
