"""A resident search service, so that a one-shot ``python -m rag search`` answers in a second.

Most of a cold ``rag search`` is spent loading, not searching: ``import txtai`` (torch,
transformers, scikit-learn) takes 12–15 s on two cores, the index and the encoder a few more.
``python -m rag serve`` pays that once: it keeps an :class:`~rag.service.AnswerService` loaded
and answers searches over HTTP on a Unix socket in the data folder, which only this user can
open (mode 0600). ``rag search`` asks it first; when nothing listens there, or the service runs
with other settings, it searches in its own process as before. Like the app, the service reads
each newly published index version without a restart.

The protocol is two JSON requests: ``GET /health`` and ``POST /search`` with
``{"settings": key, "query": …, "filters": {…}, "limit": n}``; the answer is the payload
``rag search --json`` prints. ``key`` is a hash of every setting, so a client configured
differently (another data folder, model or ranking setting) never gets the service's results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import json
import logging
import os
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexing.errors import UserError

if TYPE_CHECKING:
    from indexing.settings import Settings
    from rag.search import Filters, SearchResult
    from rag.service import AnswerService
    from rag.settings import RagSettings

log = logging.getLogger(__name__)

SOCKET_NAME = "search.sock"
# A Unix socket path must fit in sockaddr_un (108 bytes on Linux, 104 on macOS).
MAX_SOCKET_PATH = 100
CONNECT_TIMEOUT_S = 0.5
SEARCH_TIMEOUT_S = 120.0


class ServiceRunningError(UserError, RuntimeError):
    """Another resident service already answers on this socket."""


def settings_key(settings: Settings, rag: RagSettings) -> str:
    """A hash of every setting: client and service must agree on all of them."""
    text = settings.model_dump_json() + rag.model_dump_json()
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def socket_path(settings: Settings) -> Path:
    """Where the service of this data folder listens (a short temp path if that is too long)."""
    path = settings.data_dir.resolve() / SOCKET_NAME
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"pubmed-rag-{os.getuid()}-{digest}.sock"


def search_payload(result: SearchResult) -> dict[str, Any]:
    """What ``rag search --json`` prints, and what the service answers."""
    from rag.search import entity_counts

    return {
        "query": result.query,
        "index_version": result.index_version,
        "elapsed_ms": round(result.elapsed_ms, 1),
        "notices": list(result.notices),
        "sources": [source_dict(hit.to_dict()) for hit in result.hits],
        "facets": entity_counts(result.hits),
    }


SOURCE_KEYS = (
    "pmid",
    "title",
    "year",
    "score",
    "journal",
    "pubtypes",
    "passage",
    "url",
    "authors",
    "doi",
    "mesh",
    "retracted",
    "dense_score",
    "bm25_score",
    "passage_id",
    "evidence",
    "evidence_label",
    "population",
    "cites_retracted",
    "chemicals",
    "genes",
    "concepts",
    "ner_chemicals",
    "ner_diseases",
    "ner_genes",
)


def source_dict(hit: dict[str, Any]) -> dict[str, Any]:
    """The fields of a hit that search output shows."""
    return {key: hit[key] for key in SOURCE_KEYS if key in hit}


# -- client ----------------------------------------------------------------------------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        sock.settimeout(self.timeout)
        self.sock = sock


def _request(
    path: Path, method: str, url: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    connection = _UnixConnection(path, SEARCH_TIMEOUT_S)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        connection.request(method, url, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def health(settings: Settings) -> dict[str, Any] | None:
    """The running service's status, or ``None`` when none answers."""
    path = socket_path(settings)
    if not path.exists():
        return None
    try:
        status, payload = _request(path, "GET", "/health")
    except (OSError, ValueError, http.client.HTTPException):
        return None
    return payload if status == 200 else None


def remote_search(
    settings: Settings,
    rag: RagSettings,
    query: str,
    filters: Filters,
    limit: int | None,
    rank_by_evidence: bool | None = None,
) -> dict[str, Any] | None:
    """Search through the resident service: its payload, or ``None`` to search in-process.

    Raises:
        UserError: the service refused the query itself (the same error in-process would give).
    """
    path = socket_path(settings)
    if not path.exists():
        return None
    body = {
        "settings": settings_key(settings, rag),
        "query": query,
        "filters": dataclasses.asdict(filters),
        "limit": limit,
        "rank_by_evidence": rank_by_evidence,
    }
    try:
        status, payload = _request(path, "POST", "/search", body)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        log.info("no resident service at %s (%s); searching in this process", path, exc)
        return None
    if status == 400:
        raise UserError(str(payload.get("error", "the search was refused")))
    if status != 200:
        log.info("the resident service answered %s (%s); searching here", status, payload)
        return None
    return payload


# -- service ---------------------------------------------------------------------------------


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _handler(service: AnswerService, key: str) -> type[BaseHTTPRequestHandler]:
    from rag.search import Filters

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def address_string(self) -> str:  # a Unix socket has no client address
            return "local"

        def log_message(self, format: str, *args: object) -> None:
            log.debug("service: " + format, *args)

        def do_GET(self) -> None:
            if self.path != "/health":
                return self._send(404, {"error": "not found"})
            version = _current_version(service)
            self._send(200, {"pid": os.getpid(), "settings": key, "index_version": version})

        def do_POST(self) -> None:
            if self.path != "/search":
                return self._send(404, {"error": "not found"})
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                if body.get("settings") != key:
                    return self._send(409, {"error": "the service runs with other settings"})
                fields = dict(body.get("filters") or {})
                fields["evidence"] = tuple(fields.get("evidence") or ())  # a JSON list
                filters = Filters(**fields)
                limit = body.get("limit")
                rank = body.get("rank_by_evidence")
                rank = None if rank is None else bool(rank)
                result = service.search(str(body["query"]), filters, limit, rank_by_evidence=rank)
            except UserError as exc:
                return self._send(400, {"error": str(exc)})
            except (ValueError, TypeError, KeyError) as exc:
                return self._send(400, {"error": f"bad request: {exc}"})
            except Exception as exc:  # reported to the client, which then searches itself
                log.exception("search failed in the resident service")
                return self._send(500, {"error": f"{type(exc).__name__}: {exc}"})
            self._send(200, search_payload(result))

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _current_version(service: AnswerService) -> str | None:
    from indexing.store import open_store

    try:
        return open_store(service.settings).current_version()
    except Exception:  # a status line must not fail on a store that is being set up
        return None


def warm_up(service: AnswerService) -> str | None:
    """Load the index and the encoder now (one small search); the reason if it failed."""
    try:
        service.search("warm up", None, 1)
    except Exception as exc:  # no index yet: the service loads it on the first search
        return str(exc)
    return None


@contextlib.contextmanager
def serving(
    service: AnswerService, ready: Callable[[Path], None] | None = None
) -> Iterator[_Server]:
    """Listen on the data folder's socket for as long as the context lasts, then remove it.

    Raises:
        ServiceRunningError: a live service already listens there.
    """
    settings = service.settings
    path = socket_path(settings)
    if health(settings) is not None:
        raise ServiceRunningError(f"a search service already answers on {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # a stale socket of a service that died
    old = os.umask(0o177)  # the socket is this user's only
    try:
        server = _Server(str(path), _handler(service, settings_key(settings, service.rag)))
    finally:
        os.umask(old)
    thread = threading.Thread(target=server.serve_forever, name="rag-serve", daemon=True)
    thread.start()
    try:
        if ready is not None:
            ready(path)
        yield server
    finally:
        server.shutdown()
        server.server_close()
        path.unlink(missing_ok=True)
