"""Entity facets from the record itself: ChemicalList, GeneSymbolList, SupplMeshList.

Parsed from real PubMed XML, stored at ingest, filtered on (``--entity``), counted per result
set and shown (escaped, highlighted) in sources. GeneSymbolList appears only in records of
the early 1990s, none of which is in the shared data: that case inserts one into a real
record, where the DTD puts it.
"""

from __future__ import annotations

import io
import json

from click.testing import CliRunner

from indexing.article import Article
from indexing.pubmed import parse_pubmed_xml
from rag.__main__ import cli
from rag.display import entities_html, facets_html, highlight
from rag.search import Filters, Hit, entity_counts
from tests.conftest import METAPUB_PMIDS, needs_shared_data
from tests.fixtures_index import SampleIndex, rag_env, sample_index

__all__ = ["rag_env", "sample_index"]

pytestmark = needs_shared_data(METAPUB_PMIDS)


def parse(xml: bytes) -> Article:
    (record,) = [r for r in parse_pubmed_xml(io.BytesIO(xml)) if isinstance(r, Article)]
    return record


def test_chemicals_and_supplementary_concepts_are_parsed_from_real_records() -> None:
    article = parse((METAPUB_PMIDS / "38763967.xml").read_bytes())

    assert article.chemicals == ("Antifungal Agents", "Terbinafine", "Immunosuppressive Agents")
    assert article.concepts == ("Trichophyton rubrum",)
    assert article.genes == ()


def test_gene_symbols_are_parsed_where_the_dtd_puts_them() -> None:
    xml = (METAPUB_PMIDS / "38763967.xml").read_bytes()
    genes = b"<GeneSymbolList><GeneSymbol>TP53</GeneSymbol><GeneSymbol>BRCA1</GeneSymbol></GeneSymbolList>"
    xml = xml.replace(b"<MeshHeadingList>", genes + b"<MeshHeadingList>", 1)

    article = parse(xml)

    assert article.genes == ("TP53", "BRCA1")
    assert (
        article.fingerprint() != parse((METAPUB_PMIDS / "38763967.xml").read_bytes()).fingerprint()
    )


def test_entity_filter_keeps_articles_indexed_with_that_substance(rag_env: SampleIndex) -> None:
    result = CliRunner().invoke(
        cli, ["search", "infection treatment", "--entity", "anti-bacterial agents", "--json"]
    )

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    pmids = [source["pmid"] for source in payload["sources"]]
    expected = {
        pmid
        for pmid, article in rag_env.articles.items()
        if "Anti-Bacterial Agents" in article.chemicals
    }
    assert pmids and set(pmids) <= expected
    assert set(pmids) == expected  # four real records; the search reaches all of them
    for source in payload["sources"]:
        assert "Anti-Bacterial Agents" in source["chemicals"]
    # The facets count the result set: every hit carries the filtered substance.
    assert ["Anti-Bacterial Agents", len(pmids)] in payload["facets"]["chemicals"]


def test_a_partial_name_is_not_an_entity(rag_env: SampleIndex) -> None:
    result = CliRunner().invoke(cli, ["search", "infection", "--entity", "Bacterial", "--json"])

    assert result.exit_code == 0
    assert json.loads(result.stdout)["sources"] == []


def test_facets_count_each_entity_once_per_article_and_rank_by_count() -> None:
    def hit(pmid: str, *chemicals: str) -> Hit:
        return Hit(pmid, "t", "j", 2020, "", (), (), "", "", False, True, 1.0, "p", f"{pmid}#0",
                   chemicals=chemicals)  # fmt: skip

    counts = entity_counts([hit("1", "B", "A", "A"), hit("2", "A"), hit("3", "C")])

    assert counts["chemicals"] == [("A", 2), ("B", 1), ("C", 1)]
    assert counts["genes"] == [] and counts["concepts"] == []
    assert "A (2)" in facets_html(counts)
    assert facets_html({"chemicals": [], "genes": []}) == ""


def test_entities_are_highlighted_and_escaped_in_sources() -> None:
    hostile = '<img src=x onerror="alert(1)">'
    hit = Hit("1", "t", "j", 2020, "", (), (), "", "", False, True, 1.0,
              "Terbinafine cleared the proton pump lesions.", "1#0",
              chemicals=("Terbinafine", hostile))  # fmt: skip

    body = highlight(hit.passage, ["proton"], hit.chemicals)
    assert 'class="pubmed-rag-entity"' in body and ">Terbinafine</span>" in body
    assert "<mark" in body and ">proton</mark>" in body
    listed = entities_html(hit)
    assert "Substances: Terbinafine" in listed
    assert "<img" not in listed and "img src" in listed  # escaped, still readable
    assert Filters(entity="Terbinafine").active


def test_facets_count_names_differing_in_case_once_spelled_as_most_hits_spell_them() -> None:
    def hit(pmid: str, *names: str) -> Hit:
        return Hit(pmid, "t", "j", 2020, "", (), (), "", "", False, True, 1.0, "p", f"{pmid}#0",
                   ner_chemicals=names)  # fmt: skip

    hits = [hit("1", "Glucose", "glucose"), hit("2", "glucose"), hit("3", "glucose", "Insulin")]

    counts = entity_counts(hits)

    assert counts["ner_chemicals"] == [("glucose", 3), ("Insulin", 1)]
    assert "Chemicals (NER): glucose (3)" in facets_html(counts)
