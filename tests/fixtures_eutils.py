"""pytest plugin: a local E-utilities server serving the 163 real metapub PubMed records.

Enable it with ``pytest_plugins = ["tests.fixtures_eutils"]`` in the root ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.eutils_server import EutilsServer, load_records
from tests.conftest import METAPUB_PMIDS


@pytest.fixture(scope="session")
def metapub_records() -> dict[str, bytes]:
    """``{pmid: <PubmedArticle> bytes}`` of the real metapub efetch recordings (163 records)."""
    if not METAPUB_PMIDS.exists():
        pytest.skip(f"shared data not found at {METAPUB_PMIDS}")
    return load_records([METAPUB_PMIDS])


@pytest.fixture
def eutils_server(metapub_records: dict[str, bytes]) -> Iterator[EutilsServer]:
    """A running server with a fresh copy of the metapub records, no faults, an empty log."""
    with EutilsServer(metapub_records) as server:
        yield server
