"""pytest plugin: one real index of sample PubMed records, built once per test session.

Register it with ``pytest_plugins = ["tests.fixtures_index"]`` in the root ``conftest.py``
(test modules may also import the fixtures; the build is shared either way). The index holds
the 163 metapub efetch records plus the ncbiutils edge cases (inline markup, ORCID authors, a
record without title or abstract), embedded with the bundled offline MiniLM model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.conftest import METAPUB_PMIDS, PUBMED_SAMPLES

SAMPLE_FILES = (
    METAPUB_PMIDS,
    PUBMED_SAMPLES / "ncbiutils" / "markup.xml",
    PUBMED_SAMPLES / "ncbiutils" / "orcid.xml",
    PUBMED_SAMPLES / "ncbiutils" / "no_title_abstract.xml",
)


@dataclass(frozen=True)
class SampleIndex:
    """A published index of real records and the parsed records it was built from."""

    data_dir: Path
    articles: dict  # pmid -> indexing.article.Article

    def settings(self):  # -> indexing.settings.Settings
        """Offline settings pointing at this index (independent of the environment)."""
        from indexing.settings import Settings

        return Settings(data_dir=self.data_dir, offline=True)


_BUILT: dict[str, SampleIndex] = {}
# "SAFETY OF LONG-TERM PROTON PUMP INHIBITORS: FACTS AND MYTHS." (2022)
RETRACTED_PMID = "35830032"


def parse_samples(paths: tuple[Path, ...] = SAMPLE_FILES) -> dict:
    """``{pmid: Article}`` of the sample files, parsed with the project's parser."""
    from indexing.article import Article
    from indexing.pubmed import iter_xml_files, open_xml, parse_pubmed_xml

    articles = {}
    for path in iter_xml_files(list(paths)):
        with open_xml(path) as stream:
            for record in parse_pubmed_xml(stream):
                if isinstance(record, Article):
                    articles[record.pmid] = record
    return articles


def build_index(data_dir: Path, articles: dict, settings=None) -> None:
    """Publish one index version holding ``articles`` (one upsert: much faster than per file).

    ``settings`` (an ``indexing.settings.Settings`` for ``data_dir``) defaults to offline ones.
    """
    from indexing.settings import Settings
    from indexing.store.files import FileStore

    store = FileStore(settings or Settings(data_dir=data_dir, offline=True))
    with store.lock(), store.open_writer() as writer:
        writer.upsert_articles(list(articles.values()), source="xml")
        writer.publish("tests")


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> SampleIndex:
    """The shared sample index (read-only: never write to it in a test)."""
    if not METAPUB_PMIDS.exists():
        pytest.skip(f"shared data not found at {METAPUB_PMIDS}")
    if "sample" not in _BUILT:
        data_dir = tmp_path_factory.mktemp("sample-index") / "data"
        articles = parse_samples()
        # The samples hold no retracted record; mark one real record as retracted (as a
        # RetractionIn link would) so that the retraction filter has something to remove.
        articles[RETRACTED_PMID] = replace(articles[RETRACTED_PMID], retraction_in=("99999999",))
        build_index(data_dir, articles)
        _BUILT["sample"] = SampleIndex(data_dir, articles)
    return _BUILT["sample"]


@pytest.fixture
def rag_env(sample_index: SampleIndex, monkeypatch: pytest.MonkeyPatch) -> Iterator[SampleIndex]:
    """Environment of a CLI run against the sample index: offline, every other setting default."""
    from indexing.settings import get_settings
    from rag.settings import get_rag_settings

    for key in list(os.environ):
        if key.startswith("PUBMED_RAG_") and key != "PUBMED_RAG_SHARED_DATA":
            monkeypatch.delenv(key)
    monkeypatch.setenv("PUBMED_RAG_DATA_DIR", str(sample_index.data_dir))
    monkeypatch.setenv("PUBMED_RAG_OFFLINE", "1")
    get_settings.cache_clear()
    get_rag_settings.cache_clear()
    yield sample_index
    get_settings.cache_clear()
    get_rag_settings.cache_clear()
