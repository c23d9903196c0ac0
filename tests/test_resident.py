"""``python -m rag serve``: one-shot searches answered by a resident service, else in-process."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.resident import ServiceRunningError, health, serving, settings_key, socket_path
from rag.service import AnswerService
from rag.settings import RagSettings
from tests.conftest import KEPT_SETTINGS, ROOT
from tests.fixtures_index import SampleIndex, sample_index

__all__ = ["sample_index"]

QUERY = "proton pump inhibitor safety"


@pytest.fixture
def service(sample_index: SampleIndex) -> Iterator[AnswerService]:
    """A resident service on the sample index, as ``rag serve`` runs it."""
    answer_service = AnswerService(sample_index.settings(), RagSettings())
    with serving(answer_service):
        yield answer_service


def cli(sample_index: SampleIndex, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """``python -X importtime -m rag ARGS`` as a user runs it (stderr lists every import)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PUBMED_RAG_") or k in KEPT_SETTINGS  # the service has these too
    }
    env.update(
        PUBMED_RAG_DATA_DIR=str(sample_index.data_dir),
        PUBMED_RAG_OFFLINE="1",
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "rag", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def loaded_txtai(result: subprocess.CompletedProcess[str]) -> bool:
    return any(line.rstrip().endswith("| txtai") for line in result.stderr.splitlines())


def sources(result: subprocess.CompletedProcess[str]) -> list[tuple[str, float]]:
    assert result.returncode == 0, result.stderr[-2000:]
    return [(s["pmid"], round(s["score"], 6)) for s in json.loads(result.stdout)["sources"]]


def test_search_is_answered_by_the_service_without_loading_txtai(
    sample_index: SampleIndex, service: AnswerService
) -> None:
    served = cli(sample_index, "search", QUERY, "--json", "--limit", "5")
    here = cli(sample_index, "search", QUERY, "--json", "--limit", "5", "--no-resident")

    assert not loaded_txtai(served)  # nothing heavy was imported: the service searched
    assert loaded_txtai(here)
    assert sources(served) == sources(here)
    assert len(sources(served)) == 5

    text = cli(sample_index, "search", QUERY, "-n", "2", "--mesh", "Humans")
    assert text.returncode == 0 and not loaded_txtai(text)
    assert text.stdout.startswith("[1] ") and "https://pubmed.ncbi.nlm.nih.gov/" in text.stdout


def test_design_filters_and_ranking_travel_to_the_service(
    sample_index: SampleIndex, service: AnswerService
) -> None:
    args = ("search", "cancer risk in patients", "--json", "--limit", "10", "--humans")
    args += ("--evidence", "review,meta-analysis", "--rank-by-evidence")
    served = cli(sample_index, *args)
    here = cli(sample_index, *args, "--no-resident")

    assert not loaded_txtai(served)
    assert sources(served) == sources(here) and sources(served)
    payload = json.loads(served.stdout)["sources"]
    assert {s["evidence"] for s in payload} <= {"review", "meta-analysis"}
    assert all("humans" in s["population"] and "evidence_label" in s for s in payload)
    plain = cli(sample_index, *args[:-1])  # without --rank-by-evidence: other scores
    assert sources(plain) != sources(served)


def test_a_client_with_other_settings_searches_itself(
    sample_index: SampleIndex, service: AnswerService
) -> None:
    other = cli(sample_index, "search", QUERY, "--json", PUBMED_RAG_HYBRID_WEIGHT="0.9")

    assert loaded_txtai(other)  # the service's ranking differs: not asked
    assert sources(other)


def test_bad_requests_get_an_error_and_the_service_keeps_answering(
    sample_index: SampleIndex, service: AnswerService
) -> None:
    from rag.resident import _request

    path = socket_path(sample_index.settings())
    key = settings_key(sample_index.settings(), RagSettings())
    for body in ({"settings": key}, {"settings": key, "query": QUERY, "filters": {"no": 1}}):
        status, payload = _request(path, "POST", "/search", body)
        assert status == 400 and payload["error"].startswith("bad request")
    status, payload = _request(path, "POST", "/search", {"settings": "other", "query": QUERY})
    assert status == 409

    served = cli(sample_index, "search", QUERY, "--year-from", "2020", "--year-to", "2010")
    assert served.returncode == 2
    assert served.stderr.strip().splitlines()[-1].startswith("error: year range is empty")
    assert len(sources(cli(sample_index, "search", QUERY, "--json", "-n", "2"))) == 2


def test_the_socket_is_private_and_one_service_per_data_folder(
    sample_index: SampleIndex, service: AnswerService
) -> None:
    path = socket_path(sample_index.settings())
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    status = health(sample_index.settings())
    assert status is not None and status["pid"] == os.getpid()
    assert status["index_version"]

    with pytest.raises(ServiceRunningError), serving(AnswerService(sample_index.settings())):
        pass
    assert health(sample_index.settings()) is not None  # the first one still answers


def test_a_stale_socket_is_ignored_by_clients_and_replaced_by_the_next_service(
    sample_index: SampleIndex,
) -> None:
    path = socket_path(sample_index.settings())
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # bound but never listening: what a killed service leaves
    stale.close()
    try:
        fallback = cli(sample_index, "search", QUERY, "--json", "--limit", "3")
        assert loaded_txtai(fallback) and len(sources(fallback)) == 3

        with serving(AnswerService(sample_index.settings())):
            assert health(sample_index.settings()) is not None
        assert not path.exists()  # removed when the service stops
    finally:
        Path(path).unlink(missing_ok=True)
