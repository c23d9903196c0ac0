"""Parse PubMed XML into :class:`~indexing.article.Article` records; pure, streaming, no network.

Reads every shape NLM and E-utilities produce: ``PubmedArticleSet`` (efetch answers, baseline
and update files), the pre-2017 ``MedlineCitationSet`` update files, ``<DeleteCitation>``
blocks and ``PubmedBookArticle`` records. The file is streamed through ``XMLPullParser`` (the
engine of ``iterparse``, fed 64 KiB at a time) and each top-level record is dropped once parsed,
so a 30,000-record baseline file is never held whole.

A bad record costs itself, never the file: it becomes a :class:`~indexing.article.Skipped`.
XML that is not well-formed (a truncated download, an HTML error page) raises
:class:`PubmedXMLError` after the records that came before it were yielded.

Abstract shapes: a plain ``<AbstractText>`` gives one unlabelled section; a structured abstract
gives one section per ``<AbstractText>`` with its ``Label`` and ``NlmCategory``. Only when a
record has no ``<Abstract>`` at all is ``<OtherAbstract>`` used (the English one if there is
one, else the first): these are publisher-supplied or translated abstracts that PubMed shows
below the main one, and mixing them into a record that has its own abstract would repeat it.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, cast
from xml.etree.ElementTree import Element, ParseError, XMLPullParser

from indexing.article import AbstractSection, Article, Author, Deletion, MeshHeading, Skipped
from indexing.errors import UserError

Record = Article | Deletion | Skipped

ROOT_TAGS = frozenset({"PubmedArticleSet", "MedlineCitationSet"})
GZIP_MAGIC = b"\x1f\x8b"
CHUNK_SIZE = 1 << 16
MATHML = "{http://www.w3.org/1998/Math/MathML}"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_YEAR = re.compile(r"\b(\d{4})\b")
# A PMID is 1-9 ASCII digits; anything else would reach URLs, BibTeX keys and SQL as data.
_PMID = re.compile(r"[0-9]{1,9}")
_ORCID = re.compile(r"(\d{4})-?(\d{4})-?(\d{4})-?(\d{3}[\dXx])")


class PubmedXMLError(UserError):
    """The input is not well-formed PubMed XML (truncated, corrupt, HTML, another format)."""


# --- public API ------------------------------------------------------------------------------


def parse_pubmed_xml(stream: BinaryIO) -> Iterator[Record]:
    """Yield the records of a PubMed XML document in file order.

    Args:
        stream: A binary stream of PubMed XML (already decompressed; see :func:`open_xml`).

    Yields:
        An :class:`Article` per citation, a :class:`Deletion` per ``<DeleteCitation>`` block
        and a :class:`Skipped` per book record or malformed citation.

    Raises:
        PubmedXMLError: The XML is not well-formed or not PubMed XML. Records before the
            problem have been yielded by then.
    """
    source = _stream_name(stream)
    try:
        yield from _parse_stream(stream, source)
    except ParseError as exc:
        line, column = exc.position
        raise PubmedXMLError(
            f"{source}: not well-formed XML at line {line}, column {column} "
            f"(truncated or not XML?): {_expat_message(exc)}"
        ) from exc
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise PubmedXMLError(f"{source}: corrupt or truncated gzip stream: {exc}") from exc


def open_xml(path: Path) -> BinaryIO:
    """Open a PubMed XML file for reading, decompressing it if it is gzip.

    Gzip is recognised by its magic bytes, so a compressed file without a ``.gz`` suffix (or a
    plain one with it) opens correctly.

    Args:
        path: An ``.xml`` or ``.xml.gz`` file.

    Returns:
        A binary stream of the XML; the caller closes it.
    """
    with path.open("rb") as probe:
        magic = probe.read(len(GZIP_MAGIC))
    if magic == GZIP_MAGIC:
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")


def iter_xml_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Expand folders into the PubMed XML files they hold.

    A folder gives its ``*.xml`` and ``*.xml.gz`` files (not its subfolders) sorted by name, so
    NLM's numbered baseline and update files come in publication order. Files are yielded as
    given, in the given order.

    Args:
        paths: Files and folders.

    Yields:
        File paths.

    Raises:
        FileNotFoundError: A path does not exist.
        PubmedXMLError: A path is neither a folder nor a regular file (a device such as
            ``/dev/zero``, a FIFO, a socket): reading it could block or never end.
    """
    for path in paths:
        if path.is_dir():
            yield from sorted(
                child
                for child in path.iterdir()
                if child.is_file() and child.name.endswith((".xml", ".xml.gz"))
            )
        elif path.is_file():
            yield path
        elif path.exists():
            raise PubmedXMLError(
                f"{path} is not a regular file (a device, FIFO or socket); give a PubMed XML file"
            )
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")


# --- stream plumbing -------------------------------------------------------------------------


def _parse_stream(stream: BinaryIO, source: str) -> Iterator[Record]:
    """The records of the stream; each top-level element is dropped once parsed."""
    parser: XMLPullParser[Element] = XMLPullParser(events=("start", "end"))
    depth = 0
    root: Element | None = None
    while chunk := stream.read(CHUNK_SIZE):
        parser.feed(chunk)
        # Only start and end events are asked for: each is an (event, element) pair.
        events = cast("Iterator[tuple[str, Element]]", parser.read_events())
        for event, elem in events:
            if event == "start":
                if depth == 0:
                    _check_root(elem, source)
                    root = elem
                depth += 1
                continue
            depth -= 1
            if depth == 1 and root is not None:
                record = _parse_record(elem)
                # Drop the finished record (and the whitespace around it) from the tree.
                root.clear()
                if record is not None:
                    yield record
    parser.close()  # raises ParseError for a document that stops early


def _stream_name(stream: BinaryIO) -> str:
    name = getattr(stream, "name", None)
    return str(name) if isinstance(name, str | Path) else "<stream>"


def _check_root(elem: Element, source: str) -> None:
    if elem.tag not in ROOT_TAGS:
        raise PubmedXMLError(
            f"{source}: not PubMed XML: root element is <{elem.tag}>, "
            f"expected <PubmedArticleSet> or <MedlineCitationSet>"
        )


def _expat_message(exc: ParseError) -> str:
    # ParseError's text ends with its own ": line X, column Y"; the position is reported once.
    return re.sub(r": line \d+, column \d+$", "", str(exc))


def is_pmid(text: str) -> bool:
    """Whether ``text`` is a PMID as PubMed writes them: 1-9 ASCII digits."""
    return _PMID.fullmatch(text) is not None


# --- records ---------------------------------------------------------------------------------


def _parse_record(elem: Element) -> Record | None:
    """One top-level element of the set; ``None`` for elements that are not records."""
    if elem.tag == "DeleteCitation":
        pmids = tuple(pmid for pmid in (_text(p) for p in elem.findall("PMID")) if is_pmid(pmid))
        return Deletion(pmids) if pmids else None
    if elem.tag == "PubmedBookArticle":
        return Skipped(reason="book record", pmid=_text(elem.find("BookDocument/PMID")))
    if elem.tag == "PubmedArticle":
        citation = elem.find("MedlineCitation")
        if citation is None:
            return Skipped(reason="PubmedArticle without MedlineCitation")
        return _parse_citation(citation, elem.find("PubmedData"))
    if elem.tag == "MedlineCitation":  # old MedlineCitationSet files: no PubmedData
        return _parse_citation(elem, None)
    return None


def _parse_citation(citation: Element, pubmed_data: Element | None) -> Article | Skipped:
    pmid = _text(citation.find("PMID"))
    if not pmid:
        return Skipped(reason="missing PMID")
    if not is_pmid(pmid):
        return Skipped(reason=f"PMID is not 1-9 digits: {pmid[:40]!r}")
    article = citation.find("Article")
    if article is None:
        return Skipped(reason="missing Article element", pmid=pmid)
    try:
        return _build_article(pmid, citation, article, pubmed_data)
    except Exception as exc:  # a bad record must cost itself, never the rest of the file
        return Skipped(reason=f"malformed record: {type(exc).__name__}: {exc}", pmid=pmid)


def _build_article(
    pmid: str, citation: Element, article: Element, pubmed_data: Element | None
) -> Article:
    pub_date = article.find("Journal/JournalIssue/PubDate")
    return Article(
        pmid=pmid,
        version=_version(citation.find("PMID")),
        title=_title(article),
        abstract=_abstract(citation, article),
        authors=_authors(article),
        journal=_text(article.find("Journal/Title")),
        journal_iso=_text(article.find("Journal/ISOAbbreviation")),
        pub_date=_pub_date(pub_date),
        year=_year(pub_date, article),
        doi=_doi(article, pubmed_data),
        pmc=_pmc(citation, pubmed_data),
        mesh_terms=_mesh_terms(citation),
        keywords=_keywords(citation),
        publication_types=_texts(article.findall("PublicationTypeList/PublicationType")),
        languages=_texts(article.findall("Language")),
        retraction_in=_comment_pmids(citation, "RetractionIn"),
        erratum_in=_comment_pmids(citation, "ErratumIn"),
        cites=_cited_pmids(citation, pubmed_data),
        chemicals=_texts(citation.findall("ChemicalList/Chemical/NameOfSubstance")),
        genes=_texts(citation.findall("GeneSymbolList/GeneSymbol")),
        concepts=_texts(citation.findall("SupplMeshList/SupplMeshName")),
        edat=_edat(pubmed_data),
        mdat=_iso_date(citation.find("DateRevised")),
        extra=_extra(citation, pubmed_data),
    )


# --- one helper per field --------------------------------------------------------------------


def _version(pmid: Element | None) -> int:
    raw = pmid.get("Version", "") if pmid is not None else ""
    return int(raw) if raw.isdigit() else 1


def _title(article: Element) -> str:
    """ArticleTitle; the VernacularTitle when the English title is missing or empty."""
    return _text(article.find("ArticleTitle")) or _text(article.find("VernacularTitle"))


def _abstract(citation: Element, article: Element) -> tuple[AbstractSection, ...]:
    abstract = article.find("Abstract")
    if abstract is None:
        others = citation.findall("OtherAbstract")
        english = [other for other in others if other.get("Language") == "eng"]
        if not others:
            return ()
        abstract = (english or others)[0]
    sections = (
        AbstractSection(
            text=_text(part), label=part.get("Label", ""), category=part.get("NlmCategory", "")
        )
        for part in abstract.findall("AbstractText")
    )
    return tuple(section for section in sections if section.text or section.label)


def _authors(article: Element) -> tuple[Author, ...]:
    return tuple(
        _author(author)
        for author in article.findall("AuthorList/Author")
        if author.get("ValidYN") != "N"  # NLM keeps wrongly listed authors, flagged invalid
    )


def _author(author: Element) -> Author:
    affiliations = author.findall("AffiliationInfo/Affiliation") + author.findall("Affiliation")
    return Author(
        last_name=_text(author.find("LastName")),
        fore_name=_text(author.find("ForeName")),
        initials=_text(author.find("Initials")),
        collective=_text(author.find("CollectiveName")),
        orcid=_orcid(author),
        affiliations=_texts(affiliations),
    )


def _orcid(author: Element) -> str:
    """The bare ``0000-0002-1825-0097`` form of the ORCID, whatever URL wraps it."""
    for identifier in author.findall("Identifier"):
        if identifier.get("Source") == "ORCID":
            match = _ORCID.search(_text(identifier))
            if match:
                return "-".join(match.groups()).upper()
    return ""


def _pub_date(pub_date: Element | None) -> str:
    """The journal issue date as PubMed prints it: "2021 Mar 5", "2021 Spring", a MedlineDate."""
    if pub_date is None:
        return ""
    medline_date = _text(pub_date.find("MedlineDate"))
    if medline_date:
        return medline_date
    day = _text(pub_date.find("Day")).lstrip("0")
    parts = [
        _text(pub_date.find("Year")),
        _month_name(_text(pub_date.find("Month"))) or _text(pub_date.find("Season")),
        day if _text(pub_date.find("Month")) else "",
    ]
    return " ".join(part for part in parts if part)


def _month_name(month: str) -> str:
    """``"03"`` or ``"Mar"`` → ``"Mar"``; NLM files use both."""
    if month.isdigit() and 1 <= int(month) <= len(MONTHS):
        return MONTHS[int(month) - 1]
    return month


def _year(pub_date: Element | None, article: Element) -> int | None:
    """Year of the issue; else the first year of a MedlineDate; else of the ArticleDate."""
    candidates = (
        _text(pub_date.find("Year")) if pub_date is not None else "",
        _text(pub_date.find("MedlineDate")) if pub_date is not None else "",
        _text(article.find("ArticleDate/Year")),
    )
    for candidate in candidates:
        match = _YEAR.search(candidate)
        if match:
            return int(match.group(1))
    return None


def _doi(article: Element, pubmed_data: Element | None) -> str:
    """The DOI from the ArticleIdList, else from a valid ELocationID."""
    # Only the record's own ArticleIdList: the ReferenceList holds DOIs of cited papers.
    doi = _article_id(pubmed_data, "doi")
    if doi:
        return doi
    for location in article.findall("ELocationID"):
        if location.get("EIdType") == "doi" and location.get("ValidYN") != "N":
            return _text(location)
    return ""


def _pmc(citation: Element, pubmed_data: Element | None) -> str:
    """``PMC123`` from the ArticleIdList; old MedlineCitation files carry it in OtherID."""
    pmc = _article_id(pubmed_data, "pmc")
    if pmc:
        return pmc
    for other in citation.findall("OtherID"):
        # e.g. "PMC4677453 [Available on 12/01/16]" for an embargoed article.
        words = _text(other).split()
        if other.get("Source") == "NLM" and words and words[0].startswith("PMC"):
            return words[0]
    return ""


def _article_id(pubmed_data: Element | None, id_type: str) -> str:
    if pubmed_data is None:
        return ""
    for article_id in pubmed_data.findall("ArticleIdList/ArticleId"):
        if article_id.get("IdType") == id_type:
            return _text(article_id)
    return ""


def _mesh_terms(citation: Element) -> tuple[MeshHeading, ...]:
    return tuple(
        _mesh_heading(heading)
        for heading in citation.findall("MeshHeadingList/MeshHeading")
        if heading.find("DescriptorName") is not None
    )


def _mesh_heading(heading: Element) -> MeshHeading:
    """A descriptor is a major topic when it or any of its qualifiers is starred."""
    descriptor = heading.find("DescriptorName")
    qualifiers = heading.findall("QualifierName")
    flags = [descriptor, *qualifiers]
    return MeshHeading(
        descriptor=_text(descriptor),
        ui=descriptor.get("UI", "") if descriptor is not None else "",
        major=any(flag is not None and flag.get("MajorTopicYN") == "Y" for flag in flags),
        qualifiers=_texts(qualifiers),
    )


def _keywords(citation: Element) -> tuple[str, ...]:
    return _texts(citation.findall("KeywordList/Keyword"))


def _comment_pmids(citation: Element, ref_type: str) -> tuple[str, ...]:
    """PMIDs linked by CommentsCorrections of one RefType ("RetractionIn", "ErratumIn")."""
    pmids = _texts(
        comment.find("PMID")
        for comment in citation.findall("CommentsCorrectionsList/CommentsCorrections")
        if comment.get("RefType") == ref_type
    )
    return tuple(pmid for pmid in pmids if is_pmid(pmid))


# CommentsCorrections types whose target the record rests on (not RetractionOf, ErratumFor…:
# a notice about a retracted article is not an article that relies on it).
CITING_REF_TYPES = ("Cites", "CommentOn", "UpdateOf")


def _cited_pmids(citation: Element, pubmed_data: Element | None) -> tuple[str, ...]:
    """PMIDs the record cites: CommentsCorrections of :data:`CITING_REF_TYPES` (where older
    records list their references as RefType="Cites") and the PubMed ids of the ReferenceList
    (where current full records list them), in order, once each."""
    pmids = [pmid for ref_type in CITING_REF_TYPES for pmid in _comment_pmids(citation, ref_type)]
    if pubmed_data is not None:
        ids = pubmed_data.findall("ReferenceList/Reference/ArticleIdList/ArticleId")
        pmids += [_text(i) for i in ids if i.get("IdType") == "pubmed" and is_pmid(_text(i))]
    return tuple(dict.fromkeys(pmids))


def _edat(pubmed_data: Element | None) -> str:
    """The Entrez date (when the record entered PubMed); the "pubmed" date if it is missing."""
    if pubmed_data is None:
        return ""
    dates = {date.get("PubStatus"): date for date in pubmed_data.findall("History/PubMedPubDate")}
    return _iso_date(dates.get("entrez")) or _iso_date(dates.get("pubmed"))


def _iso_date(date: Element | None) -> str:
    """``<Year>2021</Year><Month>3</Month><Day>5</Day>`` → ``"2021-03-05"``."""
    if date is None:
        return ""
    year, month, day = (_text(date.find(part)) for part in ("Year", "Month", "Day"))
    if not (year.isdigit() and month.isdigit() and day.isdigit()):
        return ""
    return f"{int(year):04d}-{int(month):02d}-{int(day):02d}"


def _extra(citation: Element, pubmed_data: Element | None) -> dict[str, str]:
    extra = {
        "status": citation.get("Status", ""),
        "publication_status": _text(pubmed_data.find("PublicationStatus"))
        if pubmed_data is not None
        else "",
        # Old MedlineCitationSet files have no Entrez date; DateCreated is the nearest thing.
        "date_created": _iso_date(citation.find("DateCreated")),
    }
    return {key: value for key, value in extra.items() if value}


# --- text ------------------------------------------------------------------------------------


def _text(elem: Element | None) -> str:
    """All text of an element, inline markup (``<i>``, ``<sub>``, MathML) dropped, whitespace
    normalised: ``H<sub>2</sub>O`` → ``H2O``."""
    if elem is None:
        return ""
    if not len(elem):  # most elements hold plain text: skip the walk
        return " ".join((elem.text or "").split())
    parts: list[str] = []
    _collect_text(elem, parts)
    return " ".join("".join(parts).split())


def _collect_text(elem: Element, parts: list[str]) -> None:
    if isinstance(elem.tag, str) and elem.tag.startswith(MATHML):
        # MathML is pretty-printed token by token; joining the stripped tokens gives "VO2max".
        parts.append("".join(token.strip() for token in elem.itertext()))
        return
    if elem.text:
        parts.append(elem.text)
    for child in elem:
        _collect_text(child, parts)
        if child.tail:
            parts.append(child.tail)


def _texts(elems: Iterable[Element | None]) -> tuple[str, ...]:
    """The non-empty texts of several elements, in order."""
    return tuple(text for text in (_text(elem) for elem in elems) if text)
