"""EntrezClient against a real local E-utilities server serving real PubMed records.

Also parses the real NCBI answers recorded by Biopython through the client's answer handling.
"""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from indexing.entrez import (
    AnswerError,
    EntrezClient,
    EntrezError,
    FetchGaps,
    SearchResult,
    parse_efetch,
    parse_esearch,
    parse_uilist,
)
from testkit.eutils_server import EutilsServer, FaultKind
from tests.conftest import EUTILS_SAMPLES, METAPUB_PMIDS, needs_shared_data

pytestmark = needs_shared_data()

RECORDED = EUTILS_SAMPLES / "Entrez"
EMAIL = "curator@example.org"
API_KEY = "0123456789abcdef0123456789abcdef0123"


class FakeSleep:
    """Records the delays asked for instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def make_client(eutils_server: EutilsServer, sleeps: FakeSleep) -> Callable[..., EntrezClient]:
    """Clients for the local server: tiny backoff, short timeout, no real waiting."""

    def make(**overrides: object) -> EntrezClient:
        options: dict[str, object] = {
            "email": EMAIL,
            "max_tries": 4,
            "backoff_s": 0.01,
            "timeout_s": 5.0,
            "batch_size": 50,
            "sleep": sleeps,
        }
        options.update(overrides)
        return EntrezClient(eutils_server.url, **options)  # type: ignore[arg-type]

    return make


def articles(body: bytes) -> list[str]:
    """PMIDs of the PubmedArticle elements of an efetch body."""
    root = ET.fromstring(body)
    assert root.tag == "PubmedArticleSet"
    return [a.findtext("MedlineCitation/PMID") or "" for a in root.iter("PubmedArticle")]


def fetch_all(client: EntrezClient, term: str = "all[sb]") -> list[tuple[int, bytes]]:
    return list(client.fetch_batches(client.esearch(term)))


# --- the happy path -------------------------------------------------------------------------


def test_esearch_with_history_then_batched_efetch_returns_all_163_records(
    eutils_server: EutilsServer, make_client: Callable[..., EntrezClient]
) -> None:
    client = make_client()

    result = client.esearch("all[sb]")
    batches = list(client.fetch_batches(result))

    assert result.count == 163
    assert result.webenv.startswith("MCID_")
    assert result.query_key == "1"
    assert [start for start, _ in batches] == [0, 50, 100, 150]
    pmids = [pmid for _, body in batches for pmid in articles(body)]
    assert len(pmids) == 163
    assert sorted(pmids, key=int) == eutils_server.pmids
    assert [len(articles(body)) for _, body in batches] == [50, 50, 50, 13]
    efetches = [r for r in eutils_server.requests if r.endpoint == "efetch"]
    assert [r.params["retstart"] for r in efetches] == ["0", "50", "100", "150"]
    assert {(r.params["WebEnv"], r.params["query_key"]) for r in efetches} == {(result.webenv, "1")}
    assert eutils_server.requests[0].params["usehistory"] == "y"


def test_fetched_records_are_the_recorded_bytes(
    eutils_server: EutilsServer, make_client: Callable[..., EntrezClient]
) -> None:
    client = make_client(batch_size=5)
    ((_, body),) = client.fetch_batches(client.esearch("all[sb]"), max_records=5)
    for pmid in articles(body):
        assert eutils_server.record_xml(pmid) in body


def test_fetch_batches_resumes_at_start_and_stops_at_max_records(
    make_client: Callable[..., EntrezClient],
) -> None:
    client = make_client()
    result = client.esearch("all[sb]")

    resumed = list(client.fetch_batches(result, start=100))
    capped = list(client.fetch_batches(result, max_records=60))

    assert [(s, len(articles(b))) for s, b in resumed] == [(100, 50), (150, 13)]
    assert [(s, len(articles(b))) for s, b in capped] == [(0, 50), (50, 10)]


def test_esearch_max_records_caps_the_count(make_client: Callable[..., EntrezClient]) -> None:
    client = make_client()
    result = client.esearch("all[sb]", max_records=20)
    assert result.count == 20
    assert sum(len(articles(b)) for _, b in client.fetch_batches(result)) == 20


def test_search_term_uses_and_semantics_over_title_and_abstract(
    eutils_server: EutilsServer, make_client: Callable[..., EntrezClient]
) -> None:
    client = make_client()
    cancer = client.esearch("cancer")
    both = client.esearch("cancer AND patients[tiab]")

    assert 0 < both.count < cancer.count < 163
    for _, body in client.fetch_batches(both):
        for article in ET.fromstring(body).iter("PubmedArticle"):
            text = " ".join(article.find("MedlineCitation/Article").itertext()).lower()  # type: ignore[union-attr]
            assert "cancer" in text
            assert "patients" in text


def test_query_without_hits_is_an_empty_result_not_an_error(
    eutils_server: EutilsServer, make_client: Callable[..., EntrezClient]
) -> None:
    client = make_client()

    result = client.esearch("zzxqwv")

    assert result.count == 0
    assert list(client.fetch_batches(result)) == []
    assert client.fetch_ids("zzxqwv") == []
    assert {r.endpoint for r in eutils_server.requests} == {"esearch"}


def test_mindate_maxdate_filter_on_the_chosen_date_type(
    eutils_server: EutilsServer, make_client: Callable[..., EntrezClient]
) -> None:
    pmids = eutils_server.pmids
    for pmid in pmids:
        eutils_server.set_dates(pmid, edat=date(2019, 6, 1), mdat=date(2019, 6, 1))
    for pmid in pmids[:3]:
        eutils_server.set_dates(pmid, edat=date(2024, 3, 10))
    eutils_server.set_dates(pmids[3], edat=date(2024, 3, 11))  # one day past the range
    for pmid in pmids[10:15]:
        eutils_server.set_dates(pmid, mdat=date(2025, 1, 31))
    client = make_client()

    by_edat = client.fetch_ids("all[sb]", mindate="2024/03/01", maxdate="2024/03/10")
    by_mdat = client.fetch_ids("all[sb]", mindate=date(2025, 1, 1), maxdate="2025", datetype="mdat")
    open_end = client.esearch("all[sb]", mindate="2024/03/11")

    assert sorted(by_edat, key=int) == pmids[:3]
    assert sorted(by_mdat, key=int) == pmids[10:15]
    assert open_end.count == 1
    sent = eutils_server.requests[0].params
    assert (sent["datetype"], sent["mindate"], sent["maxdate"]) == (
        "edat",
        "2024/03/01",
        "2024/03/10",
    )


def test_default_dates_come_from_the_record(eutils_server: EutilsServer) -> None:
    pmid = eutils_server.pmids[0]
    xml = eutils_server.record_xml(pmid)
    entrez = ET.fromstring(xml).find("PubmedData/History/PubMedPubDate[@PubStatus='entrez']")
    assert entrez is not None
    day = f"{entrez.findtext('Year')}/{entrez.findtext('Month')}/{entrez.findtext('Day')}"
    assert pmid in eutils_server.search("all[sb]", mindate=day, maxdate=day)


def test_fetch_ids_pages_through_the_history_snapshot(
    eutils_server: EutilsServer, make_client: Callable[..., EntrezClient]
) -> None:
    client = make_client(ids_per_request=50)

    pmids = client.fetch_ids("all[sb]")

    assert pmids == eutils_server.search("all[sb]")
    assert len(pmids) == len(set(pmids)) == 163
    pages = [r for r in eutils_server.requests if r.endpoint == "efetch"]
    assert [(r.params["rettype"], r.params["retstart"]) for r in pages] == [
        ("uilist", "0"),
        ("uilist", "50"),
        ("uilist", "100"),
        ("uilist", "150"),
    ]


def test_fetch_ids_misses_a_removed_record_and_sees_a_revised_one(
    eutils_server: EutilsServer, make_client: Callable[..., EntrezClient]
) -> None:
    client = make_client()
    gone, revised = eutils_server.pmids[:2]
    new_xml = eutils_server.record_xml(revised).replace(
        b"<ArticleTitle>", b"<ArticleTitle>Zyxqlorp revisited: "
    )

    eutils_server.remove(gone)
    eutils_server.replace(new_xml, mdat=date(2030, 1, 1))

    assert gone not in client.fetch_ids("all[sb]")
    assert client.fetch_ids("zyxqlorp") == [revised]
    assert client.fetch_ids("all[sb]", mindate="2030/01/01", datetype="mdat") == [revised]
    (body,) = client.fetch_pmids([revised])
    assert b"Zyxqlorp revisited" in body


def test_fetch_pmids_posts_large_batches_and_skips_unknown_ids(
    eutils_server: EutilsServer, make_client: Callable[..., EntrezClient]
) -> None:
    client = make_client(batch_size=500)
    few = eutils_server.pmids[:3]

    (small,) = client.fetch_pmids([*few, "1"])
    (large,) = client.fetch_pmids(eutils_server.pmids)

    assert articles(small) == few
    assert sorted(articles(large), key=int) == eutils_server.pmids
    assert [r.method for r in eutils_server.requests] == ["GET", "POST"]
    with pytest.raises(ValueError, match="not a PMID"):
        list(client.fetch_pmids(["123", "PMC42"]))


def test_pubmed_retrieval_limit_fails_before_any_efetch(
    eutils_server: EutilsServer, make_client: Callable[..., EntrezClient]
) -> None:
    client = make_client()
    client.retrieval_limit = 100
    result = client.esearch("all[sb]")

    with pytest.raises(EntrezError, match="163 records but PubMed serves only the first 100"):
        list(client.fetch_batches(result))
    assert [r.endpoint for r in eutils_server.requests] == ["esearch"]


# --- etiquette ------------------------------------------------------------------------------


def test_every_request_carries_tool_email_and_api_key(
    eutils_server: EutilsServer, make_client: Callable[..., EntrezClient]
) -> None:
    client = make_client(api_key=API_KEY, tool="pubmed-rag-tests")
    fetch_all(client)
    client.fetch_ids("cancer")
    list(client.fetch_pmids(eutils_server.pmids[:2]))

    requests = eutils_server.requests
    assert len(requests) >= 8
    for request in requests:
        assert request.params["tool"] == "pubmed-rag-tests"
        assert request.params["email"] == EMAIL
        assert request.params["api_key"] == API_KEY


def test_missing_email_and_api_key_are_not_sent(
    eutils_server: EutilsServer, make_client: Callable[..., EntrezClient]
) -> None:
    make_client(email=None).esearch("cancer")

    (request,) = eutils_server.requests
    assert "email" not in request.params
    assert "api_key" not in request.params
    assert request.params["tool"] == "pubmed-rag"


def max_per_second(times: list[float]) -> int:
    """Most requests that arrived within any one-second window."""
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


@pytest.mark.parametrize(("api_key", "limit", "batch_size"), [(None, 3, 25), (API_KEY, 10, 7)])
def test_request_rate_stays_within_ncbi_limits(
    eutils_server: EutilsServer,
    make_client: Callable[..., EntrezClient],
    api_key: str | None,
    limit: int,
    batch_size: int,
) -> None:
    client = make_client(api_key=api_key, batch_size=batch_size, sleep=time.sleep)
    fetch_all(client)

    times = [r.at for r in eutils_server.requests]
    assert len(times) >= 2 * limit  # 1 esearch + ceil(163 / batch_size) efetch
    assert (len(times) - 1) / (times[-1] - times[0]) <= limit
    assert max_per_second(times) <= limit


def test_api_key_never_appears_in_logs_or_errors(
    eutils_server: EutilsServer,
    make_client: Callable[..., EntrezClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NCBI's 400 for a bad key echoes the key back in its JSON body.
    body = f'{{"error":"API key invalid","api-key":"{API_KEY}","type":"invalid"}}'.encode()
    eutils_server.inject("http", status=500, endpoint="esearch")
    eutils_server.inject("http", status=400, body=body, endpoint="esearch")
    client = make_client(api_key=API_KEY)

    with (
        caplog.at_level(logging.DEBUG, logger="indexing.entrez"),
        pytest.raises(EntrezError) as raised,
    ):
        client.esearch("cancer")

    assert "API key invalid" in str(raised.value)
    assert API_KEY not in str(raised.value)
    assert API_KEY not in caplog.text
    assert API_KEY not in repr(client)
    assert "api_key=***" in caplog.text  # the request URL is logged, masked


# --- faults ---------------------------------------------------------------------------------

FAULTS = [
    pytest.param("http", {"status": 429, "retry_after": "0.5"}, id="429 with Retry-After"),
    pytest.param("http", {"status": 500}, id="500"),
    pytest.param("http", {"status": 502}, id="502"),
    pytest.param("http", {"status": 503}, id="503"),
    pytest.param("slow", {"delay_s": 0.6}, id="slow beyond the timeout"),
    pytest.param("truncate", {}, id="truncated body"),
    pytest.param("cut_xml", {}, id="XML cut mid-element"),
    pytest.param("drop", {}, id="dropped connection"),
    pytest.param("html", {}, id="HTML instead of XML"),
    pytest.param("backend_error", {}, id="NCBI backend ERROR"),
]


@pytest.fixture(scope="module")
def fault_free(metapub_records: dict[str, bytes]) -> tuple[SearchResult, list[tuple[int, bytes]]]:
    with EutilsServer(metapub_records) as server:
        client = EntrezClient(server.url, email=EMAIL, batch_size=50, sleep=lambda _s: None)
        result = client.esearch("all[sb]")
        return result, list(client.fetch_batches(result))


def retry_delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The backoff delays the client announced (the injected sleep also sees rate waits)."""
    return [
        float(record.args[-1])  # type: ignore[index,arg-type]
        for record in caplog.records
        if record.name == "indexing.entrez" and "retrying in" in record.msg
    ]


@pytest.mark.parametrize("endpoint", ["esearch", "efetch"])
@pytest.mark.parametrize(("kind", "options"), FAULTS)
def test_transient_fault_is_retried_and_the_result_is_identical(
    *,
    eutils_server: EutilsServer,
    make_client: Callable[..., EntrezClient],
    caplog: pytest.LogCaptureFixture,
    fault_free: tuple[SearchResult, list[tuple[int, bytes]]],
    kind: FaultKind,
    options: dict[str, object],
    endpoint: str,
) -> None:
    eutils_server.inject(kind, times=2, endpoint=endpoint, **options)  # type: ignore[arg-type]
    client = make_client(timeout_s=0.3)
    # "Unable to obtain query" from efetch means the WebEnv is gone: searched again, not retried.
    researched = (kind, endpoint) == ("backend_error", "efetch")

    result = client.esearch("all[sb]")
    batches = list(client.fetch_batches(result))

    expected_result, expected_batches = fault_free
    assert result.count == expected_result.count
    assert batches == expected_batches
    assert eutils_server.faults_pending == 0
    assert [r.fault for r in eutils_server.requests].count(kind) == 2
    if researched:
        assert [r.endpoint for r in eutils_server.requests].count("esearch") == 3
        assert retry_delays(caplog) == []
        return
    # Retry-After (0.5 s) wins over the shorter backoff (0.01 s, then 0.02 s).
    assert retry_delays(caplog) == ([0.5, 0.5] if "retry_after" in options else [0.01, 0.02])


def test_retries_exhausted_raise_one_clear_error(
    eutils_server: EutilsServer,
    make_client: Callable[..., EntrezClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client(max_tries=3)
    result = client.esearch("all[sb]")
    eutils_server.inject(
        "http",
        status=500,
        times=3,
        endpoint="efetch",
        body=b"<html><title>Internal Server Error</title></html>",
    )

    batches = client.fetch_batches(result)
    with pytest.raises(EntrezError) as raised:
        next(batches)

    assert str(raised.value) == (
        "efetch failed after 3 attempts for query 'all[sb]' (retstart=0): "
        "HTTP 500: Internal Server Error"
    )
    assert isinstance(raised.value.__cause__, AnswerError)
    assert retry_delays(caplog) == [0.01, 0.02]


def test_retries_exhausted_on_a_later_batch_name_its_position(
    eutils_server: EutilsServer, make_client: Callable[..., EntrezClient]
) -> None:
    client = make_client(max_tries=2)
    batches = client.fetch_batches(client.esearch("all[sb]"))
    next(batches)
    eutils_server.inject("drop", times=2, endpoint="efetch")

    with pytest.raises(EntrezError) as raised:
        next(batches)

    assert str(raised.value) == (
        "efetch failed after 2 attempts for query 'all[sb]' (retstart=50): "
        "connection dropped (Remote end closed connection without response)"
    )


def test_timeout_exhausted_says_so(
    eutils_server: EutilsServer, make_client: Callable[..., EntrezClient]
) -> None:
    eutils_server.inject("slow", times=2, delay_s=0.5)
    client = make_client(max_tries=2, timeout_s=0.2)

    with pytest.raises(
        EntrezError, match=r"esearch failed after 2 attempts for query 'x': timed out after 0.2 s"
    ):
        client.esearch("x")


def test_http_400_is_not_retried(
    eutils_server: EutilsServer,
    make_client: Callable[..., EntrezClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    eutils_server.inject(
        "http", status=400, times=3, endpoint="esearch", body=b'{"error":"Invalid term"}'
    )

    with pytest.raises(
        EntrezError, match=r"^esearch failed for query 'x': HTTP 400: .*Invalid term"
    ):
        make_client().esearch("x")

    assert len(eutils_server.requests) == 1
    assert retry_delays(caplog) == []


def test_ncbi_refusal_is_not_retried(
    eutils_server: EutilsServer, make_client: Callable[..., EntrezClient]
) -> None:
    with pytest.raises(EntrezError, match="Empty term and query_key - nothing todo"):
        make_client().esearch("   ")
    assert len(eutils_server.requests) == 1


def test_unknown_webenv_without_a_term_to_search_again_fails_at_once(
    eutils_server: EutilsServer,
    make_client: Callable[..., EntrezClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    stale = SearchResult(count=10, webenv="MCID_gone", query_key="1")

    with pytest.raises(EntrezError, match=r"expired on NCBI's history .*Unable to obtain query #1"):
        list(make_client().fetch_batches(stale))

    assert len(eutils_server.requests) == 1  # not retried as if transient
    assert retry_delays(caplog) == []


def test_windows_expired_before_they_are_fetched_are_searched_again(
    eutils_server: EutilsServer,
    make_client: Callable[..., EntrezClient],
    caplog: pytest.LogCaptureFixture,
    fault_free: tuple[SearchResult, list[tuple[int, bytes]]],
) -> None:
    client = make_client()
    result = client.esearch("all[sb]")
    eutils_server.expire_history()  # hours pass between the search and the fetch

    batches = list(client.fetch_batches(result))

    assert batches == fault_free[1]
    assert [r.endpoint for r in eutils_server.requests] == ["esearch", "efetch", "esearch"] + [
        "efetch"
    ] * 4
    assert retry_delays(caplog) == []


def test_webenv_expiring_mid_fetch_is_searched_again_and_nothing_is_lost(
    eutils_server: EutilsServer, make_client: Callable[..., EntrezClient]
) -> None:
    client = make_client(batch_size=20)
    result = client.esearch("all[sb]")
    batches = client.fetch_batches(result)
    first = [next(batches), next(batches)]
    eutils_server.inject("expire", endpoint="efetch")
    eutils_server.remove(eutils_server.pmids[0])  # the new search finds one record fewer

    rest = list(batches)

    pmids = [pmid for _, body in first + rest for pmid in articles(body)]
    assert set(pmids) == set(eutils_server.pmids)
    assert [start for start, _ in rest][:1] == [0]  # count changed: the window was redone


def test_webenv_that_keeps_expiring_fails_after_a_few_searches(
    eutils_server: EutilsServer, make_client: Callable[..., EntrezClient]
) -> None:
    client = make_client()
    result = client.esearch("all[sb]")
    eutils_server.inject("expire", times=10, endpoint="efetch")

    with pytest.raises(EntrezError, match=r"expired .*\(searched again 3 times\)"):
        list(client.fetch_batches(result))


@pytest.fixture(scope="module")
def self_signed_cert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PEM file with a self-signed certificate for 127.0.0.1 and its key."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    pem = folder / "both.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    return pem


def test_untrusted_certificate_is_not_retried_and_says_so(
    metapub_records: dict[str, bytes],
    self_signed_cert: Path,
    sleeps: FakeSleep,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with EutilsServer(metapub_records, certfile=self_signed_cert) as server:
        assert server.url.startswith("https://")
        client = EntrezClient(server.url, email=EMAIL, max_tries=4, backoff_s=0.01, sleep=sleeps)
        with pytest.raises(EntrezError) as raised:
            client.esearch("cancer")

    message = str(raised.value)
    assert message.startswith("esearch failed for query 'cancer': the TLS certificate of ")
    assert "certificate" in message and "not retried" in message
    assert "\n" not in message
    assert retry_delays(caplog) == []


def test_short_batches_are_completed_by_id_and_match_a_clean_run(
    eutils_server: EutilsServer,
    make_client: Callable[..., EntrezClient],
    fault_free: tuple[SearchResult, list[tuple[int, bytes]]],
) -> None:
    client = make_client()
    eutils_server.inject("short", times=3, endpoint="efetch")
    gaps = FetchGaps()

    batches = list(client.fetch_batches(client.esearch("all[sb]"), gaps=gaps))

    clean = sorted(pmid for _, body in fault_free[1] for pmid in articles(body))
    assert sorted(pmid for _, body in batches for pmid in articles(body)) == clean
    assert len(gaps.refetched) >= 25 and gaps.missing == set()
    assert eutils_server.faults_pending == 0


def test_record_gone_after_the_search_is_reported_missing(
    eutils_server: EutilsServer, make_client: Callable[..., EntrezClient]
) -> None:
    client = make_client()
    result = client.esearch("all[sb]")
    gone = eutils_server.search("all[sb]")[60]
    eutils_server.remove(gone)
    gaps = FetchGaps()

    batches = list(client.fetch_batches(result, gaps=gaps))

    assert sum(len(articles(body)) for _, body in batches) == 162
    assert gaps.missing == {gone} and gaps.refetched == set()


def test_from_settings_reads_the_ncbi_settings(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from indexing.settings import get_settings

    monkeypatch.setenv("PUBMED_RAG_EUTILS_URL", "http://127.0.0.1:9/eutils")
    monkeypatch.setenv("PUBMED_RAG_NCBI_EMAIL", EMAIL)
    monkeypatch.setenv("PUBMED_RAG_NCBI_API_KEY", API_KEY)
    monkeypatch.setenv("PUBMED_RAG_NCBI_BATCH_SIZE", "77")
    monkeypatch.setenv("PUBMED_RAG_NCBI_MAX_TRIES", "2")

    client = EntrezClient.from_settings(get_settings())

    assert client.base_url == "http://127.0.0.1:9/eutils/"
    assert (client.email, client.api_key, client.tool) == (EMAIL, API_KEY, "pubmed-rag")
    assert (client.batch_size, client.max_tries) == (77, 2)


def test_unreachable_server_is_retried_then_reported(sleeps: FakeSleep) -> None:
    client = EntrezClient(
        "http://127.0.0.1:9/", email=EMAIL, max_tries=2, backoff_s=0.01, sleep=sleeps
    )
    with pytest.raises(EntrezError, match=r"esearch failed after 2 attempts .*cannot connect"):
        client.esearch("cancer")


# --- recorded NCBI answers, through the client's answer handling ----------------------------


def recorded(name: str) -> bytes:
    return (RECORDED / name).read_bytes()


def test_recorded_esearch_without_history() -> None:
    answer = parse_esearch(recorded("esearch1.xml"))
    assert answer.count == 63
    assert len(answer.ids) == 20
    assert answer.ids[0] == "41282813"
    assert answer.webenv == ""
    assert answer.query_translation == '"biopython"[All Fields]'


def test_recorded_esearch_with_history() -> None:
    answer = parse_esearch(recorded("esearch2.xml"))
    assert (answer.count, len(answer.ids)) == (42249, 100)
    assert (answer.webenv, answer.query_key) == ("MCID_6927d6e7fee3e90f880ec190", "1")
    assert "[Date - Entry]" in answer.query_translation


def test_recorded_esearch_with_retstart_and_translation_set() -> None:
    answer = parse_esearch(recorded("esearch3.xml"))
    assert (answer.count, answer.ids[0], answer.ids[-1]) == (2651, "11121077", "11121072")


def test_recorded_esearch_with_translation_stack() -> None:
    answer = parse_esearch(recorded("esearch5.xml"))
    assert answer.count == 5
    assert "hasabstract" in answer.query_translation


def test_recorded_esearch_without_hits_is_a_count_of_zero() -> None:
    answer = parse_esearch(recorded("esearch8.xml"))
    assert answer.count == 0
    assert answer.ids == ()
    assert answer.not_found == ("abcXYZ",)
    assert answer.warnings == ("No items found.",)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("epost3.xml", "Empty ID list; Nothing to store; Some IDs have invalid value"),
        ("esummary8.xml", "Neither query_key nor id specified"),
    ],
)
def test_recorded_error_answers_are_permanent_errors(name: str, message: str) -> None:
    with pytest.raises(AnswerError, match=message) as raised:
        parse_esearch(recorded(name))
    assert raised.value.transient is False


def test_recorded_truncated_xml_is_transient() -> None:
    with pytest.raises(AnswerError, match="truncated or malformed XML") as raised:
        parse_esearch(recorded("einfo4.xml"))
    assert raised.value.transient is True


def test_recorded_html_answer_is_reported_as_html() -> None:
    for parse in (parse_esearch, parse_efetch):
        with pytest.raises(
            AnswerError, match=r"HTML page, not XML \('PmFetch response'\)"
        ) as raised:
            parse(recorded("pubmed3.html"))
        assert raised.value.transient is True


def test_recorded_efetch_answers_are_counted() -> None:
    assert parse_efetch(recorded("pubmed1.xml")) == 2
    assert parse_efetch(recorded("pubmed4.xml")) == 1
    assert parse_efetch((METAPUB_PMIDS / "37909814.xml").read_bytes()) == 0


def test_an_answer_of_another_kind_is_rejected() -> None:
    with pytest.raises(AnswerError, match="expected a PubmedArticleSet, got <pmc-articleset>"):
        parse_efetch(recorded("efetch_pmc.xml"))
    with pytest.raises(AnswerError, match="expected an eSearchResult, got <PubmedArticleSet>"):
        parse_esearch(recorded("pubmed2.xml"))


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        ("Unable to obtain query #1", True),
        ("Search Backend failed: Database is not available", True),
        (" Error: External viewer error: Empty Response. Bytes read: 0 Status: Timeout", True),
        (
            "Search backend cannot retrieve history data. Reason: Exception: 'retstart' cannot be larger than 9998.",
            False,
        ),
        ("Empty term and query_key - nothing todo", False),
        ("Invalid query_key", False),
    ],
)
def test_ncbi_error_texts_are_classified(error: str, transient: bool) -> None:
    body = f"<?xml version='1.0'?><eFetchResult><ERROR>{error}</ERROR></eFetchResult>".encode()
    with pytest.raises(AnswerError) as raised:
        parse_efetch(body)
    assert raised.value.transient is transient


def test_uilist_answers_in_xml_and_text() -> None:
    assert parse_uilist(b'<?xml version="1.0"?><IdList><Id>1</Id>\n<Id>22</Id></IdList>') == [
        "1",
        "22",
    ]
    assert parse_uilist(b"1\n22\n") == ["1", "22"]
    with pytest.raises(AnswerError, match="bad PMID"):
        parse_uilist(b"1\n<html>\n")


def test_entity_declarations_are_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><PubmedArticleSet>&a;</PubmedArticleSet>'
    with pytest.raises(AnswerError, match="entities"):
        parse_efetch(bomb)


def test_id_listing_whose_webenv_expired_is_searched_again(
    eutils_server: EutilsServer, make_client: Callable[..., EntrezClient]
) -> None:
    client = make_client(ids_per_request=40)
    eutils_server.inject("slow", delay_s=0.0, endpoint="efetch")  # the first page goes through
    eutils_server.inject("expire", endpoint="efetch")  # the second names a lost WebEnv

    pmids = client.fetch_ids("all[sb]")

    assert pmids == eutils_server.search("all[sb]")
    assert [r.endpoint for r in eutils_server.requests].count("esearch") == 2
