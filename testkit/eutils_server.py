"""A real local E-utilities server for db=pubmed that serves real recorded PubMed records.

It speaks enough of NCBI's protocol for :mod:`indexing.entrez`: ``esearch.fcgi`` (term, date
range, ``usehistory``, paging) and ``efetch.fcgi`` (by ``WebEnv``/``query_key`` or by ``id``,
GET or POST, ``retmode=xml`` and ``rettype=uilist``). Answers are shaped like NCBI's (same
root elements, DOCTYPEs and error bodies); records are served byte for byte as recorded.

Search semantics, kept simple on purpose:

* ``all[sb]``, ``*`` or ``all`` match every record; an empty term is NCBI's "Empty term" error.
* Otherwise ``[field]`` tags and the operator ``AND`` are dropped and every remaining word must
  occur as a whole word (case-insensitive) in the title or abstract; ``word*`` matches a prefix.
* ``mindate``/``maxdate`` (``YYYY[/MM[/DD]]``, inclusive) filter on ``datetype`` edat, mdat or
  pdat. A record's edat comes from ``PubMedPubDate[@PubStatus="entrez"]`` (else "pubmed"), its
  mdat from ``DateRevised``, its pdat from the journal issue date; tests may override them.
* A date range in the term, ``("2024/01/05"[mdat] : "2024/01/05"[mdat])`` joined with ``AND``
  (PubMed's range syntax), filters like ``mindate``/``maxdate`` on that date type.
* Hits are sorted most recent first: edat descending, then PMID descending.

Faults are scripted with :meth:`EutilsServer.inject` and apply to the next matching requests;
every request is recorded (:attr:`EutilsServer.requests`) for etiquette and rate assertions.

Standalone: ``python -m testkit.eutils_server --port 8089 PATH...`` serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import itertools
import re
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

BASE_PATH = "/entrez/eutils/"
# Real efetch and esearch answers carry these prologues (see the Biopython recordings).
EFETCH_PROLOGUE = (
    b'<?xml version="1.0" ?>\n'
    b'<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN"'
    b' "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
)
ESEARCH_PROLOGUE = (
    '<?xml version="1.0" encoding="UTF-8" ?>\n'
    '<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch 20060628//EN"'
    ' "https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">\n'
)
EFETCH_ERROR_PROLOGUE = (
    '<?xml version="1.0" encoding="UTF-8" ?>\n'
    '<!DOCTYPE eEfetchResult PUBLIC "-//NLM//DTD efetch 20131226//EN"'
    ' "https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20131226/efetch.dtd">\n'
)
UILIST_PROLOGUE = '<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE IdList>\n'
# What NCBI sends instead of XML when a front end is unwell (cf. Entrez/pubmed3.html).
HTML_PAGE = (
    b"<html><head><title>PmFetch response</title></head><body>\n<pre>\n"
    b"Pubmed-entry ::= {\n  pmid 19304878,\n  medent {\n    em std {\n      year 2009\n"
    b"</pre>\n</body></html>\n"
)
# NCBI's history server and PubMed's search backend refuse to list past this position.
RETSTART_LIMIT = 9998
RETSTART_REFUSAL = (
    "Search backend cannot retrieve history data. Reason: Exception: 'retstart' cannot be larger"
    " than 9998. For PubMed, ESearch can only retrieve the first 9,999 records matching the query."
)
BACKEND_ERRORS = {
    "esearch": "Search Backend failed: Database is not available",
    "efetch": "Unable to obtain query #1",
}
_ARTICLE = re.compile(rb"<PubmedArticle>.*?</PubmedArticle>", re.DOTALL)
_WORD = re.compile(r"\w+\*?")
_FIELD_TAG = re.compile(r"\[[^\]]*\]")
_DATE_TEXT = r'"?(\d{4}(?:/\d{1,2}){0,2})"?'
_DATE_CLAUSE = re.compile(
    rf"\s+AND\s+\(\s*{_DATE_TEXT}\[(edat|mdat|pdat)\]\s*:\s*{_DATE_TEXT}\[\2\]\s*\)",
    re.IGNORECASE,
)
_MONTHS = {
    month: number
    for number, month in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}

FaultKind = Literal[
    "http", "slow", "truncate", "cut_xml", "drop", "html", "backend_error", "short", "expire"
]
Endpoint = Literal["esearch", "efetch"]


@dataclass(slots=True)
class Fault:
    """One scripted failure; see :meth:`EutilsServer.inject`."""

    kind: FaultKind
    times: int = 1
    endpoint: Endpoint | None = None
    status: int = 500
    retry_after: str | None = None
    delay_s: float = 0.0
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server saw it (``at`` is ``time.monotonic()`` on arrival)."""

    at: float
    method: str
    endpoint: str
    params: dict[str, str]
    fault: str | None = None


@dataclass(slots=True)
class StoredRecord:
    """One ``<PubmedArticle>`` and what searching it needs."""

    pmid: str
    xml: bytes
    words: frozenset[str]
    edat: date
    mdat: date
    pdat: date


@dataclass(slots=True)
class _Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/xml; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


def _date_of(element: ET.Element | None) -> date | None:
    if element is None:
        return None
    year = element.findtext("Year")
    if not year or not year.strip().isdigit():
        return None
    month_text = (element.findtext("Month") or "1").strip()
    month = int(month_text) if month_text.isdigit() else _MONTHS.get(month_text[:3].lower(), 1)
    day_text = (element.findtext("Day") or "1").strip()
    return date(int(year), month, int(day_text) if day_text.isdigit() else 1)


def _parse_record(xml: bytes) -> tuple[str, frozenset[str], date, date, date]:
    """PMID, searchable words and default edat/mdat/pdat of one ``<PubmedArticle>``."""
    article = ET.fromstring(xml)  # noqa: S314 -- our own recorded PubMed records
    pmid = (article.findtext("MedlineCitation/PMID") or "").strip()
    if not pmid.isdigit():
        raise ValueError("PubmedArticle without a PMID")
    title = article.find("MedlineCitation/Article/ArticleTitle")
    texts = ["".join(title.itertext())] if title is not None else []
    texts += ["".join(a.itertext()) for a in article.iterfind(".//Abstract/AbstractText")]
    words = frozenset(_WORD.findall(" ".join(texts).lower()))
    history = {
        d.get("PubStatus"): _date_of(d)
        for d in article.iterfind("PubmedData/History/PubMedPubDate")
    }
    edat = history.get("entrez") or history.get("pubmed") or date(1900, 1, 1)
    mdat = _date_of(article.find("MedlineCitation/DateRevised")) or edat
    pdat = _date_of(article.find("MedlineCitation/Article/Journal/JournalIssue/PubDate")) or edat
    return pmid, words, edat, mdat, pdat


def load_records(paths: Iterable[str | Path]) -> dict[str, bytes]:
    """Split real PubMed XML files into ``{pmid: <PubmedArticle> bytes}``, kept byte for byte.

    Args:
        paths: XML files (``.xml`` or ``.xml.gz``) or directories of them.

    Returns:
        One entry per ``PubmedArticle``; a later file wins for a repeated PMID.
    """
    records: dict[str, bytes] = {}
    files: list[Path] = []
    for path in map(Path, paths):
        files += sorted(path.glob("*.xml*")) if path.is_dir() else [path]
    for file in files:
        data = file.read_bytes()
        if file.suffix == ".gz":
            data = gzip.decompress(data)
        # PubmedArticle has no attributes and never nests, so a regex cuts it out exactly.
        for match in _ARTICLE.finditer(data):
            records[_parse_record(match.group(0))[0]] = match.group(0)
    return records


def _bound(text: str, *, upper: bool) -> date:
    parts = [int(p) for p in text.strip().split("/")]
    year = parts[0]
    if len(parts) == 1:
        return date(year, 12, 31) if upper else date(year, 1, 1)
    month = parts[1]
    if len(parts) == 2:
        if not upper:
            return date(year, month, 1)
        following = date(year + month // 12, month % 12 + 1, 1)
        return date.fromordinal(following.toordinal() - 1)
    return date(year, month, parts[2])


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read :attr:`EutilsServer.requests` instead."""

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(self.rfile.read(length))

    def _handle(self, body: bytes) -> None:
        owner = self.server.owner
        split = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        params |= {
            k: v[-1] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()
        }
        name = split.path.rsplit("/", 1)[-1].removesuffix(".fcgi")
        fault = owner.take_fault(name, params)
        owner.record(self.command, name, params, fault)
        # The client may have given up already (a timeout test): nothing left to tell it.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._respond(owner, name, params, fault)

    def _respond(
        self, owner: EutilsServer, name: str, params: dict[str, str], fault: Fault | None
    ) -> None:
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            return
        if fault is not None and fault.kind == "http":
            default = f'{{"error":"fault injected","status":{fault.status}}}'.encode()
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._send(_Answer(fault.status, fault.body or default, "application/json", headers))
            return
        if fault is not None and fault.kind == "html":
            self._send(_Answer(200, HTML_PAGE, "text/html; charset=UTF-8"))
            return
        if fault is not None and fault.kind == "backend_error":
            self._send(_Answer(200, owner.error_body(name, BACKEND_ERRORS.get(name, "Error"))))
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay_s)
        if fault is not None and fault.kind == "expire":
            owner.expire_history()  # as if hours passed: this request names a lost WebEnv
        answer = owner.answer(name, params)
        if fault is not None and fault.kind == "short":
            answer.body = _shorten(answer.body)
        if fault is not None and fault.kind == "truncate":
            # Promise the whole body, send half, hang up: the client sees an incomplete read.
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body[: len(answer.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if fault is not None and fault.kind == "cut_xml":
            # A complete HTTP answer whose XML stops mid-element.
            cut = answer.body.rfind(b"<", 0, max(1, len(answer.body) * 2 // 3)) + 3
            answer.body = answer.body[:cut]
        self._send(answer)

    def _send(self, answer: _Answer) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for key, value in answer.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(answer.body)


_ID = re.compile(rb"<Id>\d+</Id>\n?")


def _shorten(body: bytes) -> bytes:
    """The answer with the second half of its records (or ids) left out; still valid XML."""
    for pattern in (_ARTICLE, _ID):
        matches = list(pattern.finditer(body))
        if matches:
            for match in reversed(matches[len(matches) // 2 :]):
                body = body[: match.start()] + body[match.end() :]
            return body
    return body


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: EutilsServer):
        super().__init__(address, _Handler)
        self.owner = owner


class EutilsServer:
    """An E-utilities server on 127.0.0.1 in a background thread; use it as a context manager.

    Args:
        records: ``{pmid: <PubmedArticle> bytes}``, e.g. from :func:`load_records`.
        host: address to bind.
        port: port to bind; 0 picks a free one.
        certfile: a PEM file with a certificate and its key: serve HTTPS with it.
    """

    def __init__(
        self,
        records: Mapping[str, bytes] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        certfile: str | Path | None = None,
    ):
        self._lock = threading.Lock()
        self._records: dict[str, StoredRecord] = {}
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._history: dict[str, list[list[str]]] = {}
        self._withheld: set[str] = set()
        self._webenv_ids = itertools.count(1)
        for xml in (records or {}).values():
            self.add(xml)
        self._httpd = _HTTPServer((host, port), self)
        self._scheme = "http"
        if certfile is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            self._scheme = "https"
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the E-utilities, ending in ``/``."""
        host, port = self._httpd.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}{BASE_PATH}"

    def start(self) -> EutilsServer:
        """Serve in a daemon thread."""
        # A short poll interval makes stop() quick (shutdown waits for the next poll).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        self._httpd.serve_forever()

    def __enter__(self) -> EutilsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the record store -------------------------------------------------------------------

    @property
    def pmids(self) -> list[str]:
        """PMIDs currently served, sorted numerically."""
        with self._lock:
            return sorted(self._records, key=int)

    def record_xml(self, pmid: str) -> bytes:
        """The ``<PubmedArticle>`` served for ``pmid``."""
        with self._lock:
            return self._records[pmid].xml

    def add(
        self,
        xml: bytes,
        *,
        edat: date | None = None,
        mdat: date | None = None,
        pdat: date | None = None,
    ) -> str:
        """Serve one ``<PubmedArticle>`` (replacing one with the same PMID); return its PMID.

        Dates left None are read from the record (see the module docstring).
        """
        pmid, words, rec_edat, rec_mdat, rec_pdat = _parse_record(xml)
        record = StoredRecord(
            pmid, xml, words, edat or rec_edat, mdat or rec_mdat, pdat or rec_pdat
        )
        with self._lock:
            self._records[pmid] = record
        return pmid

    def replace(self, xml: bytes, *, mdat: date | None = None, edat: date | None = None) -> str:
        """Revise a served record (same PMID); keeps its edat unless given.

        Raises:
            KeyError: when the PMID is not served.
        """
        pmid = _parse_record(xml)[0]
        with self._lock:
            old = self._records[pmid]
        return self.add(xml, edat=edat or old.edat, mdat=mdat)

    def withhold(self, *pmids: str, withheld: bool = True) -> None:
        """Let efetch leave records out while searches still find them (PubMed does, now
        and then, for records it is re-indexing); ``withheld=False`` serves them again."""
        with self._lock:
            if withheld:
                self._withheld.update(pmids)
            else:
                self._withheld.difference_update(pmids)

    def remove(self, pmid: str) -> None:
        """Stop serving a record (as if PubMed deleted it)."""
        with self._lock:
            del self._records[pmid]

    def set_dates(
        self,
        pmid: str,
        *,
        edat: date | None = None,
        mdat: date | None = None,
        pdat: date | None = None,
    ) -> None:
        """Override the dates a record is filtered on."""
        with self._lock:
            record = self._records[pmid]
            record.edat = edat or record.edat
            record.mdat = mdat or record.mdat
            record.pdat = pdat or record.pdat

    # --- faults and the request log ---------------------------------------------------------

    def inject(
        self,
        kind: FaultKind,
        *,
        times: int = 1,
        endpoint: Endpoint | None = None,
        status: int = 500,
        retry_after: str | float | None = None,
        delay_s: float = 0.0,
        body: bytes | None = None,
    ) -> None:
        """Script a fault for the next ``times`` requests (to ``endpoint`` only, when given).

        Faults are used in the order injected. Kinds:

        * ``http``: answer ``status`` (429, 500, 503, 400…) with ``body`` and ``Retry-After``.
        * ``slow``: wait ``delay_s`` before answering normally.
        * ``truncate``: send a ``Content-Length`` for the whole body, half the body, then close.
        * ``cut_xml``: a complete HTTP 200 answer whose XML stops mid-element.
        * ``drop``: close the connection without any answer.
        * ``html``: HTTP 200 with an HTML page instead of XML.
        * ``backend_error``: HTTP 200 with NCBI's ``<ERROR>`` answer for a backend failure.
        * ``short``: HTTP 200 with the second half of the records left out, as PubMed does
          now and then; a one-record answer loses its record. Only batches of a stored
          search count (id listings and fetches by id pass untouched; see :meth:`withhold`
          for records that by-id fetches miss too).
        * ``expire``: every WebEnv is forgotten first (see :meth:`expire_history`), so a
          request naming one gets NCBI's "Unable to obtain query" answer.
        """
        after = None if retry_after is None else str(retry_after)
        fault = Fault(kind, times, endpoint, status, after, delay_s, body)
        with self._lock:
            self._faults.append(fault)

    def expire_history(self) -> None:
        """Forget every stored search, as NCBI's history server does after hours of disuse."""
        with self._lock:
            self._history.clear()

    @property
    def faults_pending(self) -> int:
        """Requests still to be spoiled by injected faults."""
        with self._lock:
            return sum(fault.times for fault in self._faults)

    def take_fault(self, endpoint: str, params: Mapping[str, str] | None = None) -> Fault | None:
        """The fault for a request to ``endpoint``, if one is scripted (used by the handler).

        A ``short`` fault waits for a request for a batch of a stored search's records (not
        an id listing, not a fetch by id).
        """
        params = params or {}
        records = endpoint == "efetch" and params.get("rettype") != "uilist" and "id" not in params
        with self._lock:
            for fault in self._faults:
                if fault.kind == "short" and not records:
                    continue
                if fault.endpoint in (None, endpoint):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def record(
        self, method: str, endpoint: str, params: dict[str, str], fault: Fault | None
    ) -> None:
        """Log one request (used by the handler)."""
        entry = RecordedRequest(
            time.monotonic(), method, endpoint, params, fault.kind if fault else None
        )
        with self._lock:
            self._requests.append(entry)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the request log."""
        with self._lock:
            self._requests.clear()

    # --- the protocol -----------------------------------------------------------------------

    def answer(self, endpoint: str, params: dict[str, str]) -> _Answer:
        """The fault-free answer to one request."""
        if params.get("db", "pubmed") != "pubmed":
            return _Answer(400, self.error_body(endpoint, "Database is not supported"))
        if endpoint == "esearch":
            return self._esearch(params)
        if endpoint == "efetch":
            return self._efetch(params)
        return _Answer(404, b"<html><title>404 Not Found</title></html>", "text/html")

    def error_body(self, endpoint: str, message: str) -> bytes:
        """NCBI's ``<ERROR>`` answer for ``endpoint``."""
        if endpoint == "esearch":
            text = f"{ESEARCH_PROLOGUE}<eSearchResult><ERROR>{escape(message)}</ERROR></eSearchResult>\n"
        else:
            text = f"{EFETCH_ERROR_PROLOGUE}<eFetchResult>\n\t<ERROR>{escape(message)}</ERROR>\n</eFetchResult>\n"
        return text.encode()

    def search(
        self,
        term: str,
        mindate: str | None = None,
        maxdate: str | None = None,
        datetype: str = "edat",
    ) -> list[str]:
        """PMIDs matching ``term`` and the date range, most recent first."""
        ranges = [
            (kind.lower(), _bound(first, upper=False), _bound(last, upper=True))
            for first, kind, last in _DATE_CLAUSE.findall(term)
        ]
        term = _DATE_CLAUSE.sub("", term).strip()
        while term.startswith("(") and term.endswith(")"):
            term = term[1:-1].strip()
        ranges.append(
            (
                datetype,
                _bound(mindate, upper=False) if mindate else date.min,
                _bound(maxdate, upper=True) if maxdate else date.max,
            )
        )
        words = self._words(term)
        with self._lock:
            hits = [
                r
                for r in self._records.values()
                if all(low <= getattr(r, kind) <= high for kind, low, high in ranges)
                and all(self._match(w, r) for w in words)
            ]
        hits.sort(key=lambda r: (r.edat, int(r.pmid)), reverse=True)
        return [r.pmid for r in hits]

    @staticmethod
    def _words(term: str) -> list[str]:
        if term.strip().lower() in ("*", "all", "all[sb]"):
            return []
        words = _WORD.findall(_FIELD_TAG.sub(" ", term).lower())
        return [w for w in words if w != "and"]

    @staticmethod
    def _match(word: str, record: StoredRecord) -> bool:
        if word.endswith("*"):
            return any(w.startswith(word[:-1]) for w in record.words)
        return word in record.words

    def _esearch(self, params: dict[str, str]) -> _Answer:
        term = params.get("term", "")
        if not term.strip() and not params.get("query_key"):
            return _Answer(
                200, self.error_body("esearch", "Empty term and query_key - nothing todo")
            )
        datetype = params.get("datetype", "edat")
        if datetype not in ("edat", "mdat", "pdat"):
            return _Answer(400, self.error_body("esearch", f"Invalid datetype: {datetype}"))
        try:
            ids = self.search(term, params.get("mindate"), params.get("maxdate"), datetype)
            retstart = int(params.get("retstart", "0"))
            retmax = int(params.get("retmax", "20"))
        except ValueError as exc:
            return _Answer(400, self.error_body("esearch", f"Invalid parameter: {exc}"))
        parts = [
            f"<Count>{len(ids)}</Count><RetMax>{len(ids[retstart : retstart + retmax])}</RetMax>"
        ]
        parts.append(f"<RetStart>{retstart}</RetStart>")
        if params.get("usehistory") == "y":
            webenv, query_key = self._store_history(params.get("WebEnv"), ids)
            parts.append(f"<QueryKey>{query_key}</QueryKey><WebEnv>{webenv}</WebEnv>")
        page = ids[retstart : retstart + retmax]
        parts.append("<IdList>\n" + "".join(f"<Id>{pmid}</Id>\n" for pmid in page) + "</IdList>")
        parts.append(f"<TranslationSet/><QueryTranslation>{escape(term)}</QueryTranslation>")
        if not ids:
            missing = [w for w in self._words(term) if not self.search(w)]
            if missing:
                not_found = "".join(
                    f"<PhraseNotFound>{escape(w)}</PhraseNotFound>" for w in missing
                )
                parts.append(f"<ErrorList>{not_found}</ErrorList>")
            parts.append(
                "<WarningList><OutputMessage>No items found.</OutputMessage></WarningList>"
            )
        body = f"{ESEARCH_PROLOGUE}<eSearchResult>{''.join(parts)}</eSearchResult>\n"
        return _Answer(200, body.encode())

    def _store_history(self, webenv: str | None, ids: list[str]) -> tuple[str, int]:
        with self._lock:
            if not webenv or webenv not in self._history:
                webenv = f"MCID_{next(self._webenv_ids):024x}"
                self._history[webenv] = []
            self._history[webenv].append(list(ids))
            return webenv, len(self._history[webenv])

    def _efetch(self, params: dict[str, str]) -> _Answer:
        try:
            retstart = int(params.get("retstart", "0"))
            retmax = int(params.get("retmax", "20"))
        except ValueError as exc:
            return _Answer(400, self.error_body("efetch", f"Invalid parameter: {exc}"))
        if "id" in params:
            ids = [pmid.strip() for pmid in params["id"].split(",") if pmid.strip()]
        elif "WebEnv" in params or "query_key" in params:
            with self._lock:
                queries = self._history.get(params.get("WebEnv", ""), [])
                key = params.get("query_key", "")
                if not key.isdigit() or not 1 <= int(key) <= len(queries):
                    return _Answer(200, self.error_body("efetch", f"Unable to obtain query #{key}"))
                snapshot = queries[int(key) - 1]
            if retstart > RETSTART_LIMIT:
                return _Answer(400, self.error_body("efetch", RETSTART_REFUSAL))
            ids = snapshot[retstart : retstart + retmax]
        else:
            return _Answer(400, self.error_body("efetch", "Neither query_key nor id specified"))
        if params.get("rettype") == "uilist":
            listing = "".join(f"<Id>{pmid}</Id>\n" for pmid in ids)
            return _Answer(200, f"{UILIST_PROLOGUE}<IdList>\n{listing}</IdList>\n".encode())
        with self._lock:
            # Like PubMed: PMIDs no longer served are silently missing from the answer.
            articles = [
                self._records[pmid].xml
                for pmid in ids
                if pmid in self._records and pmid not in self._withheld
            ]
        body = b"\n".join(
            [EFETCH_PROLOGUE + b"<PubmedArticleSet>", *articles, b"</PubmedArticleSet>\n"]
        )
        return _Answer(200, body)


def main(argv: list[str] | None = None) -> None:
    """Serve PubMed XML files as E-utilities until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("paths", nargs="+", help="PubMed XML files or directories of them")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    args = parser.parse_args(argv)
    server = EutilsServer(load_records(args.paths), host=args.host, port=args.port)
    print(f"serving {len(server.pmids)} records at {server.url} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
