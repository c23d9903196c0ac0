"""A local stand-in for the Hugging Face hub: serves model repositories from folders.

It speaks the part of the hub's protocol that ``huggingface_hub`` uses to download a model
(``HF_ENDPOINT`` points the client at it):

* ``GET /api/models/{repo}/revision/{rev}``: the repo's info (its commit ``sha``, ``siblings``).
* ``GET /api/models/{repo}/tree/{rev}?recursive=…``: every file with its size, git blob id and,
  for LFS files, the sha256 (``lfs.oid``) that downloads are checked against.
* ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``: the file, with ``X-Repo-Commit``, ``ETag``
  (``X-Linked-Etag``/``X-Linked-Size`` for LFS files, as the real hub sends) and byte ranges
  (``Range: bytes=N-`` answers 206), so an interrupted download can resume.

Files larger than :data:`LFS_THRESHOLD` bytes, and weights (``.safetensors``, ``.bin``,
``.gguf``) are LFS files, as on the hub. Faults are set on :attr:`HubServer.faults` and
every request is recorded (:attr:`HubServer.requests`).

Standalone: ``python -m testkit.hub_server --port 8090 org/name=FOLDER ...`` serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

LFS_THRESHOLD = 10_000
LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".onnx", ".pt")
CHUNK = 64 * 1024

_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/(?P<kind>revision|tree)/(?P<rest>.+)$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_RANGE = re.compile(r"^bytes=(\d+)-$")


def git_blob_id(data: bytes) -> str:
    """The git object id of a file's content (what the hub calls its ``oid``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's id


@dataclass(frozen=True, slots=True)
class HubFile:
    """One file of a served repo, with the hashes the hub announces for it."""

    path: str
    data: bytes

    @property
    def lfs(self) -> bool:
        """Whether the hub would store this file in LFS (then its ETag is the sha256)."""
        return len(self.data) > LFS_THRESHOLD or self.path.endswith(LFS_SUFFIXES)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else git_blob_id(self.data)

    def tree_entry(self) -> dict[str, object]:
        entry: dict[str, object] = {
            "type": "file",
            "path": self.path,
            "size": len(self.data),
            "oid": git_blob_id(self.data),
        }
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": len(self.data), "pointerSize": 134}
        return entry


@dataclass
class HubRepo:
    """A repo's files and the commit they are served at (derived from their content)."""

    files: dict[str, HubFile]

    @classmethod
    def from_folder(cls, folder: Path) -> HubRepo:
        files = {
            path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        }
        return cls({name: HubFile(name, data) for name, data in files.items()})

    @property
    def commit(self) -> str:
        digest = hashlib.sha1(usedforsecurity=False)
        for name in sorted(self.files):
            digest.update(f"{name}\0{self.files[name].etag}\n".encode())
        return digest.hexdigest()


@dataclass
class HubFaults:
    """Faults applied to the next matching downloads (file path inside its repo)."""

    # Close the connection after this many body bytes of the next GET of the file.
    cut_after: dict[str, int] = field(default_factory=dict)
    # Send this many body bytes of the next GET of the file, then hold the connection open
    # until :attr:`release` is set (a download that a test kills mid-way).
    stall_after: dict[str, int] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    # Serve these files with one byte flipped: same size, wrong content.
    tampered: set[str] = field(default_factory=set)
    # Answer every request with 503 (a hub that is down).
    down: bool = False


@dataclass(frozen=True, slots=True)
class HubRequest:
    method: str
    path: str
    range: str


class HubServer:
    """A threaded HTTP server on 127.0.0.1 serving ``{repo_id: HubRepo}``."""

    def __init__(self, repos: dict[str, Path | HubRepo], port: int = 0) -> None:
        self.repos = {
            name: repo if isinstance(repo, HubRepo) else HubRepo.from_folder(repo)
            for name, repo in repos.items()
        }
        self.faults = HubFaults()
        self._requests: list[HubRequest] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def requests(self) -> list[HubRequest]:
        with self._lock:
            return list(self._requests)

    def downloads(self, path: str) -> list[HubRequest]:
        """The GETs of one file (any repo), in order."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + path)]

    def record(self, request: HubRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def start(self) -> HubServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.faults.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.record(HubRequest(self.command, path, self.headers.get("Range", "")))
            if hub.faults.down:
                return self._json(503, {"error": "Service Unavailable"}, body)
            if match := _API.match(path):
                return self._api(match, body)
            if match := _RESOLVE.match(path):
                return self._file(match, body)
            return self._json(404, {"error": "Not Found"}, body)

        def _repo(self, name: str, body: bool) -> HubRepo | None:
            repo = hub.repos.get(name)
            if repo is None:
                self.send_response(401)  # the hub's answer for a missing (or private) repo
                self.send_header("X-Error-Code", "RepoNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
            return repo

        def _api(self, match: re.Match[str], body: bool) -> None:
            repo = self._repo(match["repo"], body)
            if repo is None:
                return
            if match["kind"] == "revision":
                info = {
                    "id": match["repo"],
                    "modelId": match["repo"],
                    "sha": repo.commit,
                    "private": False,
                    "siblings": [{"rfilename": name} for name in repo.files],
                }
                return self._json(200, info, body)
            entries = [file.tree_entry() for file in repo.files.values()]
            return self._json(200, entries, body)

        def _file(self, match: re.Match[str], body: bool) -> None:
            repo = self._repo(match["repo"], body)
            if repo is None:
                return
            file = repo.files.get(match["path"])
            if file is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = file.data
            if file.path in hub.faults.tampered:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            start = 0
            if body and (ranged := _RANGE.match(self.headers.get("Range", ""))):
                start = min(int(ranged[1]), len(data))
            self.send_response(206 if start else 200)
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("ETag", f'"{git_blob_id(file.data)}"')
            if file.lfs:
                self.send_header("X-Linked-Etag", f'"{file.sha256}"')
                self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("Accept-Ranges", "bytes")
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            if body:
                self._body(file.path, data[start:])

        def _body(self, path: str, data: bytes) -> None:
            faults = hub.faults
            cut = faults.cut_after.pop(path, None)
            stall = faults.stall_after.pop(path, None)
            limit = cut if cut is not None else stall if stall is not None else len(data)
            for offset in range(0, min(limit, len(data)), CHUNK):
                self.wfile.write(data[offset : min(offset + CHUNK, limit)])
            self.wfile.flush()
            if stall is not None:
                faults.release.wait(timeout=120)
            if cut is not None or stall is not None:
                self.close_connection = True
                self.connection.close()

        def _json(self, status: int, payload: object, body: bool) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("repos", nargs="+", help="org/name=FOLDER")
    args = parser.parse_args(argv)
    repos: dict[str, Path | HubRepo] = {}
    for spec in args.repos:
        name, _, folder = spec.partition("=")
        repos[name] = Path(folder)
    server = HubServer(repos, port=args.port)
    print(f"serving {', '.join(repos)} at {server.url} (HF_ENDPOINT={server.url})", flush=True)
    try:
        server.start()
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
