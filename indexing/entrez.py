"""The only module that talks to NCBI E-utilities: esearch with history, batched efetch.

Every request goes through :meth:`EntrezClient._call`, which applies NCBI's etiquette (``tool``,
``email``, ``api_key``; at most 3 requests/s, 10/s with a key), retries what is really transient
(HTTP 429 and 5xx, timeouts, dropped connections, incomplete or unparsable bodies, NCBI's
"backend failed"-type ``<ERROR>`` answers) with exponential backoff, and turns everything else
into one :class:`EntrezError` with a one-line message. Two failures look transient but are not:
an untrusted TLS certificate (never retried) and a history entry that is gone ("Unable to
obtain query": :class:`WebEnvExpiredError`, answered by searching again). A short efetch batch
is completed by fetching the PMIDs it lacks by id (:class:`FetchGaps` says what stayed missing).

``Bio.Entrez`` reads esearch answers (``Entrez.read``), but its request functions hard-code
NCBI's host, so requests are built here against ``settings.eutils_url``. Its private
``_construct_params``/``_build_request`` are not reused: they merge the process-wide globals
``Entrez.email``/``Entrez.tool``/``Entrez.api_key`` into every request and warn on each request
without an e-mail, and a private API may change under us. The few lines they save are below.
"""

from __future__ import annotations

import http.client
import io
import logging
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlencode, urlsplit
from xml.parsers import expat

from Bio import Entrez

from indexing.errors import UserError

if TYPE_CHECKING:
    from indexing.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

# NCBI's published limits: 3 requests/s per IP without an API key, 10/s with one.
RATE_NO_KEY = 3.0
RATE_WITH_KEY = 10.0
# We space requests on our clock, NCBI counts them on arrival; a few ms absorb network jitter.
RATE_MARGIN_S = 0.01
# PubMed serves only the first 9,999 records of a search, from esearch or from the history
# server ("'retstart' cannot be larger than 9998"); larger result sets must be split by date.
PUBMED_RETRIEVAL_LIMIT = 9999
# NCBI's own rule (and Biopython's): use POST when the query string gets long or ids are many.
POST_MIN_IDS = 200
POST_MIN_QUERY_CHARS = 1000
# Retry-After can ask for anything; we wait at most this long for one attempt.
MAX_RETRY_AFTER_S = 120.0
# Rounds of fetching by id what a short batch lacked (a by-id answer can be short too).
REFETCH_ROUNDS = 2
# A search whose history entry is gone (WebEnv expired) is run again at most this often per
# fetch; more means the history server is failing, not that one entry aged out.
MAX_RESEARCHES = 3
ESEARCH = "esearch.fcgi"
EFETCH = "efetch.fcgi"
_DATE = re.compile(r"^\d{4}(/\d{1,2}(/\d{1,2})?)?$")
# <ERROR> texts that mean "try again later" (history server or search backend trouble).
# Checked after _PERMANENT_ERROR, because "cannot retrieve history data ... 'retstart' cannot
# be larger than 9998" is a permanent refusal worded like a transient one.
_TRANSIENT_ERROR = re.compile(
    r"unable to obtain query|cannot retrieve history|backend|time ?out|timed out|empty response"
    r"|temporar|try again|unavailable|internal (server )?error|busy|overload",
    re.IGNORECASE,
)
_PERMANENT_ERROR = re.compile(r"cannot be larger than|invalid|not supported|empty term", re.I)
# What efetch answers when the WebEnv/query_key it was given is no longer on the history server
# (entries expire after hours of disuse, and a server restart loses them).
_HISTORY_GONE = re.compile(r"unable to obtain query", re.IGNORECASE)
# The PMID of each record of an efetch answer (not the PMIDs its references cite).
_RECORD_PMID = re.compile(rb"<(?:MedlineCitation|BookDocument)\b[^>]*>\s*<PMID\b[^>]*>\s*(\d+)")
_HTML_START = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?(<!doctype\s+html|<html)", re.IGNORECASE)
_HTML_TITLE = re.compile(rb"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class EntrezError(UserError):
    """A call to E-utilities failed for good; the message is one line fit for a user."""


class WebEnvExpiredError(EntrezError):
    """NCBI's history server no longer holds a search (its WebEnv expired): search again."""


class AnswerError(EntrezError):
    """One attempt failed: an HTTP error, a network fault or an answer we cannot use.

    Attributes:
        transient: whether another attempt may succeed.
        retry_after: seconds the server asked us to wait (HTTP ``Retry-After``), if any.
        expired: the history entry the request named is gone; only a new search helps.
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        retry_after: float | None = None,
        expired: bool = False,
    ):
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after
        self.expired = expired


@dataclass(frozen=True, slots=True)
class SearchResult:
    """A search stored on NCBI's history server, ready for :meth:`EntrezClient.fetch_batches`."""

    count: int
    webenv: str
    query_key: str
    query_translation: str = ""
    term: str = ""
    mindate: str | None = None  # the search's date range, to run it again when it expires
    maxdate: str | None = None
    datetype: str = "edat"


@dataclass(slots=True)
class FetchGaps:
    """Records a fetch asked for but did not get whole batches of (see ``fetch_batches``).

    Attributes:
        refetched: PMIDs missing from a short batch and then fetched by id.
        missing: PMIDs missing from a short batch that fetching by id did not return either
            (deleted since the search, or NCBI failing): not indexed by this run.
    """

    refetched: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class EsearchAnswer:
    """Everything an esearch answer says that we use."""

    count: int
    ids: tuple[str, ...] = ()
    webenv: str = ""
    query_key: str = ""
    query_translation: str = ""
    not_found: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(slots=True)
class _XmlScan:
    """Root tag, ``<ERROR>`` texts, ``<Id>`` texts and record count of one XML answer."""

    root: str = ""
    errors: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    records: int = 0


def _forbid_entities(*_args: object) -> None:
    # E-utilities never declare entities; one in an answer is an attack (billion laughs).
    raise AnswerError("answer declares XML entities; refused", transient=False)


def _html_title(body: bytes) -> str:
    match = _HTML_TITLE.search(body[:4096])
    title = match.group(1).decode("utf-8", "replace") if match else ""
    return " ".join(title.split())[:80]


def _snippet(body: bytes, limit: int = 120) -> str:
    """The first words of a body, on one line, for an error message."""
    text = " ".join(re.sub(rb"<[^>]*>", b" ", body[:2000]).decode("utf-8", "replace").split())
    return text[:limit] + ("…" if len(text) > limit else "")


def _scan_xml(body: bytes) -> _XmlScan:
    """Check that ``body`` is complete, well-formed XML and collect what the client needs.

    Raises:
        AnswerError: transient for an empty, non-XML (e.g. HTML) or truncated answer.
    """
    if not body.strip():
        raise AnswerError("empty answer", transient=True)
    if _HTML_START.match(body):
        title = _html_title(body)
        raise AnswerError(
            f"answer is an HTML page, not XML{f' ({title!r})' if title else ''}", transient=True
        )
    scan = _XmlScan()
    text: list[str] = []
    parser = expat.ParserCreate()

    # Only element starts are watched; text and ends only inside <ERROR>/<Id> (neither nests,
    # and PubmedArticle never nests either). A batch has ~70k elements: this halves the cost.
    def start(name: str, _attrs: dict[str, str]) -> None:
        if not scan.root:
            scan.root = name
        elif name in ("PubmedArticle", "PubmedBookArticle"):
            scan.records += 1
        elif name in ("ERROR", "Id"):
            text.clear()
            parser.CharacterDataHandler = text.append
            parser.EndElementHandler = end

    def end(name: str) -> None:
        if name == "ERROR":
            scan.errors.append(" ".join("".join(text).split()))
        elif name == "Id":
            scan.ids.append("".join(text).strip())
        else:
            return
        parser.CharacterDataHandler = None
        parser.EndElementHandler = None

    parser.StartElementHandler = start
    parser.EntityDeclHandler = _forbid_entities
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        if scan.root:
            raise AnswerError(f"truncated or malformed XML ({exc})", transient=True) from exc
        raise AnswerError(f"answer is not XML ({_snippet(body, 60)!r})", transient=True) from exc
    if scan.root.lower() == "html":
        title = _html_title(body)
        raise AnswerError(
            f"answer is an HTML page, not XML{f' ({title!r})' if title else ''}", transient=True
        )
    return scan


def _error_answer(errors: Sequence[str]) -> AnswerError:
    """Classify NCBI's ``<ERROR>`` texts: backend trouble is transient, a bad request is not."""
    message = "; ".join(errors)
    transient = not _PERMANENT_ERROR.search(message) and bool(_TRANSIENT_ERROR.search(message))
    return AnswerError(f"NCBI error: {message}", transient=transient)


def parse_esearch(body: bytes) -> EsearchAnswer:
    """Read an esearch answer (``eSearchResult``) with ``Bio.Entrez.read``.

    A search without hits (``Count`` 0, ``ErrorList/PhraseNotFound``) is an answer, not an error.

    Raises:
        AnswerError: for an ``<ERROR>`` answer, a non-XML or truncated body, or another document.
    """
    scan = _scan_xml(body)
    if scan.errors:
        raise _error_answer(scan.errors)
    if scan.root != "eSearchResult":
        raise AnswerError(f"expected an eSearchResult, got <{scan.root}>", transient=True)
    try:
        record = Entrez.read(io.BytesIO(body), ignore_errors=True)
        count = int(record["Count"])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise AnswerError(f"unreadable eSearchResult ({exc})", transient=True) from exc
    error_list = record.get("ErrorList") or {}
    warning_list = record.get("WarningList") or {}
    return EsearchAnswer(
        count=count,
        ids=tuple(str(pmid) for pmid in record.get("IdList", [])),
        webenv=str(record.get("WebEnv", "")),
        query_key=str(record.get("QueryKey", "")),
        query_translation=str(record.get("QueryTranslation", "")),
        not_found=tuple(
            str(phrase)
            for key in ("PhraseNotFound", "FieldNotFound")
            for phrase in error_list.get(key, [])
        ),
        warnings=tuple(str(text) for values in warning_list.values() for text in values),
    )


def parse_efetch(body: bytes) -> int:
    """Check an efetch answer (``PubmedArticleSet``) and count its records.

    Raises:
        AnswerError: for an ``<ERROR>`` answer (``eFetchResult``), a non-XML or truncated body,
            or a document other than a ``PubmedArticleSet``.
    """
    scan = _scan_xml(body)
    if scan.errors:
        raise _error_answer(scan.errors)
    if scan.root != "PubmedArticleSet":
        raise AnswerError(f"expected a PubmedArticleSet, got <{scan.root}>", transient=True)
    return scan.records


def parse_uilist(body: bytes) -> list[str]:
    """Read the PMIDs of an efetch ``rettype=uilist`` answer (XML ``IdList`` or plain lines).

    Raises:
        AnswerError: for an ``<ERROR>`` answer, a non-XML or truncated body, or a bad id.
    """
    if body.lstrip()[:1] != b"<":
        ids = body.decode("ascii", "replace").split()
    else:
        scan = _scan_xml(body)
        if scan.errors:
            raise _error_answer(scan.errors)
        if scan.root != "IdList":
            raise AnswerError(f"expected an IdList, got <{scan.root}>", transient=True)
        ids = scan.ids
    bad = [pmid for pmid in ids if not pmid.isdigit()]
    if bad:
        raise AnswerError(f"answer holds a bad PMID {bad[0][:30]!r}", transient=True)
    return ids


def _format_date(value: str | date | None) -> str | None:
    if value is None or (isinstance(value, str) and not value):
        return None
    if isinstance(value, date):
        return value.strftime("%Y/%m/%d")
    if not _DATE.match(value):
        raise ValueError(f"E-utilities dates are YYYY, YYYY/MM or YYYY/MM/DD, not {value!r}")
    return value


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class _RateLimiter:
    """Spaces calls at least ``1/per_second`` apart on the monotonic clock (thread-safe)."""

    def __init__(
        self,
        per_second: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.interval = 1.0 / per_second + RATE_MARGIN_S
        self._sleep = sleep
        self._clock = clock
        self._next = float("-inf")
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            if now < self._next:
                self._sleep(self._next - now)
            self._next = max(self._clock(), self._next) + self.interval


class EntrezClient:
    """Searches and fetches PubMed through E-utilities, politely and with retries.

    Args:
        base_url: E-utilities base URL (``…/entrez/eutils/``); endpoints are appended to it.
        email: contact address NCBI asks for; sent with every request when given.
        api_key: NCBI API key (raises the rate limit to 10/s); never logged.
        tool: tool name sent with every request.
        max_tries: attempts per request before giving up.
        backoff_s: first retry delay; doubles on each retry (``Retry-After`` wins when longer).
        timeout_s: socket timeout of one request.
        batch_size: records per efetch request.
        sleep: how to wait (tests inject a fake to skip backoff delays).
        ids_per_request: PMIDs per page when listing the ids of a search.
    """

    def __init__(
        self,
        base_url: str,
        *,
        email: str | None = None,
        api_key: str | None = None,
        tool: str = "pubmed-rag",
        max_tries: int = 5,
        backoff_s: float = 1.0,
        timeout_s: float = 60.0,
        batch_size: int = 200,
        sleep: Callable[[float], None] = time.sleep,
        ids_per_request: int = PUBMED_RETRIEVAL_LIMIT,
    ):
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise ValueError(f"E-utilities base URL must be http(s), not {base_url!r}")
        if max_tries < 1 or batch_size < 1 or ids_per_request < 1:
            raise ValueError("max_tries, batch_size and ids_per_request must be at least 1")
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.email = email or None
        self.api_key = api_key or None
        self.tool = tool
        self.max_tries = max_tries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        self.ids_per_request = ids_per_request
        self.retrieval_limit = PUBMED_RETRIEVAL_LIMIT
        self._sleep = sleep
        self._limiter = _RateLimiter(RATE_WITH_KEY if self.api_key else RATE_NO_KEY, sleep)
        if self.email is None:
            logger.warning("no NCBI e-mail set: NCBI asks for one (set PUBMED_RAG_NCBI_EMAIL)")

    @classmethod
    def from_settings(cls, settings: Settings) -> EntrezClient:
        """A client configured from the typed settings (``PUBMED_RAG_NCBI_*``)."""
        return cls(
            base_url=settings.eutils_url,
            email=settings.ncbi_email,
            api_key=settings.ncbi_api_key,
            tool=settings.ncbi_tool,
            max_tries=settings.ncbi_max_tries,
            backoff_s=settings.ncbi_backoff_s,
            timeout_s=settings.ncbi_timeout_s,
            batch_size=settings.ncbi_batch_size,
        )

    def __repr__(self) -> str:
        key = "***" if self.api_key else None
        return f"EntrezClient({self.base_url!r}, email={self.email!r}, api_key={key!r})"

    # --- public calls -----------------------------------------------------------------------

    def esearch(
        self,
        term: str,
        mindate: str | date | None = None,
        maxdate: str | date | None = None,
        datetype: str = "edat",
        max_records: int | None = None,
    ) -> SearchResult:
        """Run a PubMed search and keep its result on NCBI's history server.

        Args:
            term: PubMed query.
            mindate: first day (``YYYY/MM/DD``) of ``datetype``; the range is inclusive.
            maxdate: last day; when only one bound is given the other is left open.
            datetype: ``edat`` (entrez), ``mdat`` (modified) or ``pdat`` (published).
            max_records: cap on ``count`` (so fetching stops there); None for all hits.

        Returns:
            The hit count with the ``WebEnv``/``query_key`` that ``fetch_batches`` reads.

        Raises:
            EntrezError: when NCBI refuses the search or does not answer after retries.
        """
        params = {"db": "pubmed", "term": term, "usehistory": "y", "retmax": "0"}
        dates = self._date_params(mindate, maxdate, datetype)
        params.update(dates)
        answer = self._call(ESEARCH, params, "esearch", f"for query {term!r}", _history_esearch)
        count = answer.count
        if max_records is not None and count > max_records:
            logger.info("query %r matches %d records; keeping %d", term, count, max_records)
            count = max_records
        if answer.not_found:
            logger.info("query %r: not found: %s", term, ", ".join(answer.not_found))
        return SearchResult(
            count=count,
            webenv=answer.webenv,
            query_key=answer.query_key,
            query_translation=answer.query_translation,
            term=term,
            mindate=dates.get("mindate"),
            maxdate=dates.get("maxdate"),
            datetype=datetype,
        )

    def fetch_ids(
        self,
        term: str,
        mindate: str | date | None = None,
        maxdate: str | date | None = None,
        datetype: str = "edat",
    ) -> list[str]:
        """All PMIDs a search returns now (to find records a query no longer returns).

        The ids are paged from the search's history entry, a snapshot, so records added while
        paging cannot shift a page and hide an id.

        Raises:
            EntrezError: on failure, or when the search has more hits than PubMed lists.
        """
        for research in range(MAX_RESEARCHES + 1):
            result = self.esearch(term, mindate, maxdate, datetype)
            try:
                return self._list_ids(result)
            except WebEnvExpiredError as exc:
                if research == MAX_RESEARCHES:
                    raise EntrezError(f"{exc} (searched again {research} times)") from exc
                logger.warning("%s; searching again", exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _list_ids(self, result: SearchResult) -> list[str]:
        term = result.term
        self._check_limit(result, result.count)
        pmids: list[str] = []
        for retstart in range(0, result.count, self.ids_per_request):
            expected = min(self.ids_per_request, result.count - retstart)
            params = {
                "db": "pubmed",
                "WebEnv": result.webenv,
                "query_key": result.query_key,
                "rettype": "uilist",
                "retmode": "xml",
                "retstart": str(retstart),
                "retmax": str(expected),
            }

            def read_page(body: bytes, expected: int = expected) -> list[str]:
                ids = parse_uilist(body)
                if len(ids) != expected:
                    raise AnswerError(f"got {len(ids)} of {expected} ids", transient=True)
                return ids

            context = f"for query {term!r} (retstart={retstart})"
            pmids.extend(
                self._call(EFETCH, params, "efetch (uilist)", context, _history(read_page))
            )
        return pmids

    def fetch_batches(
        self,
        result: SearchResult,
        max_records: int | None = None,
        start: int = 0,
        gaps: FetchGaps | None = None,
    ) -> Iterator[tuple[int, bytes]]:
        """Fetch a search's records as PubMed XML, ``batch_size`` records per request.

        A short batch (fewer records than asked, HTTP 200) is completed: the PMIDs at its
        positions are listed from the history server and the missing ones fetched by id, in
        extra bodies yielded with the same ``retstart``. A search whose WebEnv expired is run
        again (from ``start`` when its count changed, so nothing shifts out of reach).

        Args:
            result: what :meth:`esearch` returned.
            max_records: fetch at most this many records (from position 0).
            start: first position to fetch (resume a killed run from a batch boundary).
            gaps: collects the PMIDs refetched by id and those still missing after that.

        Yields:
            ``(retstart, body)``: each body a complete, well-formed ``PubmedArticleSet``.

        Raises:
            EntrezError: when a batch cannot be fetched after retries or NCBI refuses it.
        """
        gaps = gaps if gaps is not None else FetchGaps()
        total = result.count if max_records is None else min(result.count, max_records)
        self._check_limit(result, total)
        what_query = f"query {result.term!r}" if result.term else f"query_key {result.query_key}"
        researches = 0
        retstart = start
        while retstart < total:
            retmax = min(self.batch_size, total - retstart)
            context = f"for {what_query} (retstart={retstart})"
            try:
                body, found = self._fetch_batch(result, retstart, retmax, context)
                extra = []
                if found < retmax:
                    extra = self._complete_batch(result, retstart, retmax, body, context, gaps)
            except WebEnvExpiredError as exc:
                if not result.term or researches == MAX_RESEARCHES:
                    raise EntrezError(f"{exc} (searched again {researches} times)") from exc
                researches += 1
                fresh = self.esearch(result.term, result.mindate, result.maxdate, result.datetype)
                logger.warning("%s; searched again: %d records", exc, fresh.count)
                if fresh.count != result.count:
                    retstart = start  # positions moved: redo the window (upserts are idempotent)
                result = fresh
                total = result.count if max_records is None else min(result.count, max_records)
                self._check_limit(result, total)
                continue
            yield retstart, body
            for payload in extra:
                yield retstart, payload
            retstart += retmax

    def _fetch_batch(
        self, result: SearchResult, retstart: int, retmax: int, context: str
    ) -> tuple[bytes, int]:
        params = {
            "db": "pubmed",
            "WebEnv": result.webenv,
            "query_key": result.query_key,
            "retmode": "xml",
            "retstart": str(retstart),
            "retmax": str(retmax),
        }
        return self._call(EFETCH, params, "efetch", context, _history(_counted_efetch))

    def _complete_batch(
        self,
        result: SearchResult,
        retstart: int,
        retmax: int,
        body: bytes,
        context: str,
        gaps: FetchGaps,
    ) -> list[bytes]:
        """Bodies with the records a short batch lacks, fetched by id (empty when whole)."""
        got = set(record_pmids(body))
        params = {
            "db": "pubmed",
            "WebEnv": result.webenv,
            "query_key": result.query_key,
            "rettype": "uilist",
            "retmode": "xml",
            "retstart": str(retstart),
            "retmax": str(retmax),
        }

        def read_page(page: bytes) -> list[str]:
            ids = parse_uilist(page)
            if len(ids) != retmax:
                raise AnswerError(f"got {len(ids)} of {retmax} ids", transient=True)
            return ids

        expected = self._call(EFETCH, params, "efetch (uilist)", context, _history(read_page))
        lacking = [pmid for pmid in expected if pmid not in got]
        if not lacking:
            return []
        logger.warning(
            "efetch %s: %d of %d records returned; fetching %d by id",
            context,
            len(got),
            retmax,
            len(lacking),
        )
        bodies: list[bytes] = []
        still = lacking
        for _round in range(REFETCH_ROUNDS):
            fetched = list(self.fetch_pmids(still))
            found = {pmid for payload in fetched for pmid in record_pmids(payload)}
            bodies.extend(fetched)
            gaps.refetched.update(found & set(still))
            still = [pmid for pmid in still if pmid not in found]
            if not still:
                break
        if still:
            # Deleted since the search, or NCBI failing: either way not indexed by this run.
            logger.warning("efetch %s: %d PMIDs not returned by id either", context, len(still))
            gaps.missing.update(still)
        return bodies

    def fetch_pmids(self, pmids: Sequence[str]) -> Iterator[bytes]:
        """Fetch records by PMID as PubMed XML, ``batch_size`` ids per request (POST when many).

        PMIDs NCBI no longer has are simply missing from the answers.

        Yields:
            One complete ``PubmedArticleSet`` body per batch.

        Raises:
            ValueError: for an id that is not a PMID.
            EntrezError: when a batch cannot be fetched after retries or NCBI refuses it.
        """
        ids = [str(pmid).strip() for pmid in pmids]
        bad = [pmid for pmid in ids if not pmid.isdigit()]
        if bad:
            raise ValueError(f"not a PMID: {bad[0]!r}")
        for first in range(0, len(ids), self.batch_size):
            batch = ids[first : first + self.batch_size]
            params = {"db": "pubmed", "id": ",".join(batch), "retmode": "xml"}
            context = f"for {len(batch)} PMIDs ({batch[0]}…{batch[-1]})"
            yield self._call(
                EFETCH, params, "efetch", context, _checked_efetch(context, len(batch))
            )

    # --- plumbing ---------------------------------------------------------------------------

    def _check_limit(self, result: SearchResult, total: int) -> None:
        if total > self.retrieval_limit:
            raise EntrezError(
                f"query {result.term or result.query_key!r} matches {total} records but PubMed "
                f"serves only the first {self.retrieval_limit} of a search: split it by date"
            )

    @staticmethod
    def _date_params(
        mindate: str | date | None, maxdate: str | date | None, datetype: str
    ) -> dict[str, str]:
        if datetype not in ("edat", "mdat", "pdat"):
            raise ValueError(f"datetype must be edat, mdat or pdat, not {datetype!r}")
        low, high = _format_date(mindate), _format_date(maxdate)
        if low is None and high is None:
            return {}
        # E-utilities ignore a date range unless both ends are given.
        return {"datetype": datetype, "mindate": low or "1000", "maxdate": high or "3000"}

    def _params(self, params: dict[str, str]) -> dict[str, str]:
        etiquette = {"tool": self.tool, "email": self.email, "api_key": self.api_key}
        return params | {key: value for key, value in etiquette.items() if value}

    def _mask(self, text: str) -> str:
        return text.replace(self.api_key, "***") if self.api_key else text

    def _request(self, endpoint: str, params: dict[str, str]) -> urllib.request.Request:
        url = self.base_url + endpoint  # http(s) only: checked in __init__
        query = urlencode(self._params(params))
        if len(query) > POST_MIN_QUERY_CHARS or params.get("id", "").count(",") + 1 >= POST_MIN_IDS:
            return urllib.request.Request(url, data=query.encode(), method="POST")  # noqa: S310
        return urllib.request.Request(f"{url}?{query}", method="GET")  # noqa: S310

    def _send(self, request: urllib.request.Request) -> bytes:
        """One HTTP exchange; every failure becomes an :class:`AnswerError`."""
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 (https/http base URL from settings)
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            try:
                body = exc.read()
            except (OSError, http.client.HTTPException):
                body = b""
            code = exc.code
            detail = ""
            if body:
                errors = re.findall(rb"<ERROR>(.*?)</ERROR>", body, re.DOTALL)
                detail = "; ".join(" ".join(e.decode("utf-8", "replace").split()) for e in errors)
                detail = detail or _html_title(body) or _snippet(body)
            message = f"HTTP {code}" + (f": {self._mask(detail)}" if detail else "")
            if code == 429 or code >= 500:
                retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
                raise AnswerError(message, transient=True, retry_after=retry_after) from exc
            raise AnswerError(message, transient=False) from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLCertVerificationError):
                raise self._certificate_error(request, exc.reason) from exc
            transient = isinstance(exc.reason, OSError)
            raise AnswerError(f"cannot connect ({exc.reason})", transient=transient) from exc
        except ssl.SSLCertVerificationError as exc:
            raise self._certificate_error(request, exc) from exc
        except TimeoutError as exc:
            raise AnswerError(f"timed out after {self.timeout_s:g} s", transient=True) from exc
        except http.client.IncompleteRead as exc:
            raise AnswerError(
                f"incomplete body ({len(exc.partial)} bytes read, {exc.expected} more expected)",
                transient=True,
            ) from exc
        except (http.client.HTTPException, ConnectionError) as exc:
            raise AnswerError(
                f"connection dropped ({exc or type(exc).__name__})", transient=True
            ) from exc
        except OSError as exc:
            raise AnswerError(f"network error ({exc})", transient=True) from exc

    @staticmethod
    def _certificate_error(
        request: urllib.request.Request, exc: ssl.SSLCertVerificationError
    ) -> AnswerError:
        # A certificate that fails verification fails the same way on every attempt.
        reason = exc.verify_message or exc.reason or str(exc)
        return AnswerError(
            f"the TLS certificate of {request.host} was not accepted ({reason}); not retried: "
            "check the system's CA certificates, a proxy that intercepts TLS, or "
            "PUBMED_RAG_EUTILS_URL",
            transient=False,
        )

    def _call(
        self,
        endpoint: str,
        params: dict[str, str],
        call: str,
        context: str,
        read: Callable[[bytes], T],
    ) -> T:
        """Send one request, retrying transient failures, and read its answer with ``read``.

        ``call`` and ``context`` name the request in messages ("efetch", "for query 'x'").
        """
        problem: AnswerError | None = None
        for attempt in range(1, self.max_tries + 1):
            request = self._request(endpoint, params)
            self._limiter.wait()
            logger.debug("%s %s", request.get_method(), self._mask(request.full_url))
            try:
                return read(self._send(request))
            except AnswerError as exc:
                if exc.expired:
                    raise WebEnvExpiredError(
                        f"{call} failed {context}: the search expired on NCBI's history "
                        f"server ({exc})"
                    ) from exc
                if not exc.transient:
                    raise EntrezError(f"{call} failed {context}: {exc}") from exc
                problem = exc
            if attempt < self.max_tries:
                delay = self.backoff_s * 2 ** (attempt - 1)
                if problem.retry_after is not None:
                    delay = max(delay, min(problem.retry_after, MAX_RETRY_AFTER_S))
                logger.warning(
                    "%s %s: attempt %d/%d failed (%s); retrying in %.2f s",
                    call,
                    context,
                    attempt,
                    self.max_tries,
                    problem,
                    delay,
                )
                self._sleep(delay)
        raise EntrezError(
            f"{call} failed after {self.max_tries} attempts {context}: {problem}"
        ) from problem


def _history_esearch(body: bytes) -> EsearchAnswer:
    answer = parse_esearch(body)
    if answer.count and not (answer.webenv and answer.query_key):
        raise AnswerError("esearch answer has no WebEnv/QueryKey", transient=True)
    return answer


def record_pmids(body: bytes) -> list[str]:
    """PMIDs of the records (articles and books) of an efetch answer, in answer order."""
    return [match.decode() for match in _RECORD_PMID.findall(body)]


def _history(read: Callable[[bytes], T]) -> Callable[[bytes], T]:
    """``read`` for a request that names a history entry: its loss is not a transient error."""

    def checked(body: bytes) -> T:
        try:
            return read(body)
        except AnswerError as exc:
            if _HISTORY_GONE.search(str(exc)):
                raise AnswerError(str(exc), transient=False, expired=True) from exc
            raise

    return checked


def _counted_efetch(body: bytes) -> tuple[bytes, int]:
    return body, parse_efetch(body)


def _checked_efetch(context: str, expected: int) -> Callable[[bytes], bytes]:
    def read(body: bytes) -> bytes:
        found = parse_efetch(body)
        if found < expected:
            # Records deleted since the search are legitimately missing; note it, keep going.
            logger.info("efetch %s: %d of %d records returned", context, found, expected)
        return body

    return read
