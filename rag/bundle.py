"""Answer bundles: one answer with what it takes to reproduce and check it.

A bundle is a JSON file (schema :class:`AnswerBundle`, ``bundle_version: 2``) with a Markdown
rendering beside it: the question and filters, the index version and when it was published,
the embedder and the generator with their model files' sha256, the settings that shape ranking
and generation, the key evidence, the answer's sentences (citations, support labels, quotes)
and every source with its PMID and scores. :func:`replay_bundle` asks the question again with
the bundle's filters and settings; :mod:`rag.bundle_diff` says what changed.

A bundle read from disk is data from anywhere: :func:`load_bundle` checks its size, its types,
every PMID (1-9 digits), its labels and the length of every string before anything uses it.

Version 2 added the support label ``contradicted`` (and each sentence's ``conflict``, the
cues that disagree): a version-1 "supported" may be a claim its quote contradicts, so a
release that knows only three labels must refuse a version-2 file rather than misread it.
Version-1 bundles are still read (they hold no ``contradicted``).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from indexing.clock import utcnow
from indexing.model_hashes import embedder_sha256, file_sha256
from indexing.settings import Settings, get_settings
from rag.errors import RagError
from rag.evidence import Evidence
from rag.export import markdown_escape, reference
from rag.generation import generator_file
from rag.grounding import AnswerSentence
from rag.search import Filters, Hit
from rag.service import Answer, AnswerService
from rag.settings import RagSettings, answer_shaping

BUNDLE_VERSION: Literal[2] = 2
READABLE_VERSIONS = (1, 2)
# A bundle holds at most a few hundred sources and sentences: far below this.
MAX_BUNDLE_BYTES = 20 * 1024 * 1024
# Settings a replay takes from the current configuration, not from the bundle: which model
# file to load (or download) is the user's choice, never a file's. The report shows the
# generator (and its hash) that answered each time.
REPLAY_KEEPS_CURRENT = frozenset({"llm"})
# Read-side settings of indexing that shape the query vectors.
INDEX_SHAPING = ("encoder_precision",)
_CITATION = re.compile(r"\[PMID:([0-9]{1,9})\]")

Pmid = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}$")]
Name = Annotated[str, StringConstraints(max_length=500)]
Text = Annotated[str, StringConstraints(max_length=100_000)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
SettingName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Support = Literal["supported", "weak", "unsupported", "contradicted"]


class BundleError(RagError):
    """A bundle cannot be read, written or replayed."""


class _Record(BaseModel):
    # Strict: a file saying "5" where a number belongs is refused, not converted.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class ModelRecord(_Record):
    """A model by name, and the sha256 of its files (None where they are not on disk)."""

    name: Name
    sha256: Sha256 | None = None


class IndexRecord(_Record):
    """The index version an answer was read from."""

    version: Name
    published_at: Name = ""


class FiltersRecord(_Record):
    """The search filters of the question (see :class:`rag.search.Filters`)."""

    year_from: int | None = Field(None, ge=0, le=9999)
    year_to: int | None = Field(None, ge=0, le=9999)
    journal: Name | None = None
    pubtype: Name | None = None
    mesh: Name | None = None
    lang: Name | None = None
    has_abstract: bool = False
    exclude_retracted: bool = False
    evidence: list[Name] = Field(default_factory=list, max_length=20)
    humans: bool = False
    entity: Name | None = None

    @classmethod
    def of(cls, filters: Filters) -> FiltersRecord:
        """The record of ``filters``."""
        fields = {name: getattr(filters, name) for name in cls.model_fields}
        fields["evidence"] = list(filters.evidence)
        return cls(**fields)

    def filters(self) -> Filters:
        """The filters again.

        Raises:
            SearchError: an empty year range.
        """
        data = self.model_dump()
        data["evidence"] = tuple(data["evidence"])
        return Filters(**data)


class SourceRecord(_Record):
    """One retrieved article, at its rank, with its scores and the passage read."""

    rank: int = Field(ge=1)
    pmid: Pmid
    title: Text
    authors: Text = ""
    journal: Name = ""
    year: int | None = None
    doi: Name = ""
    pmc: Name = ""
    pubtypes: list[Name] = Field(default_factory=list, max_length=200)
    mesh: list[Name] = Field(default_factory=list, max_length=1000)
    languages: list[Name] = Field(default_factory=list, max_length=50)
    retracted: bool = False
    has_abstract: bool = True
    score: float
    dense_score: float = 0.0
    bm25_score: float = 0.0
    passage_id: Name = ""
    passage: Text = ""
    evidence: Name = ""
    population: list[Name] = Field(default_factory=list, max_length=10)
    cites_retracted: list[Pmid] = Field(default_factory=list, max_length=1000)

    @classmethod
    def of(cls, rank: int, hit: Hit) -> SourceRecord:
        """The record of a hit."""
        return cls(
            rank=rank,
            pmid=hit.pmid,
            title=hit.title,
            authors=hit.authors,
            journal=hit.journal,
            year=hit.year,
            doi=hit.doi,
            pmc=hit.pmc,
            pubtypes=list(hit.pubtypes),
            mesh=list(hit.mesh),
            languages=list(hit.languages),
            retracted=hit.retracted,
            has_abstract=hit.has_abstract,
            score=round(hit.score, 4),
            dense_score=round(hit.dense_score, 4),
            bm25_score=round(hit.bm25_score, 4),
            passage_id=hit.passage_id,
            passage=hit.passage,
            evidence=hit.evidence,
            population=list(hit.population),
            cites_retracted=list(hit.cites_retracted),
        )

    def hit(self) -> Hit:
        """The hit again (for the reference exports)."""
        data = self.model_dump(exclude={"rank"})
        for name in ("pubtypes", "mesh", "languages", "population", "cites_retracted"):
            data[name] = tuple(data[name])
        return Hit(**data)


class EvidenceRecord(_Record):
    """One key-evidence sentence, quoted."""

    pmid: Pmid
    section: Name = ""
    text: Text
    score: float = 0.0

    @classmethod
    def of(cls, item: Evidence) -> EvidenceRecord:
        """The record of an evidence sentence."""
        return cls(pmid=item.pmid, section=item.section, text=item.text, score=round(item.score, 4))


class SentenceRecord(_Record):
    """One checked answer sentence: its citations, support label and the quote it rests on."""

    text: Text
    citations: list[Pmid] = Field(default_factory=list, max_length=100)
    support: Support
    quote: Text = ""
    quote_pmid: Pmid | Literal[""] = ""
    score: float = 0.0
    attributed: bool = False
    conflict: Name = ""  # contradicted: the cues that disagree (version 2)

    @classmethod
    def of(cls, sentence: AnswerSentence) -> SentenceRecord:
        """The record of an answer sentence."""
        return cls(
            text=sentence.text,
            citations=list(sentence.citations),
            support=sentence.support,  # type: ignore[arg-type]  # one of rag.support.LABELS
            quote=sentence.quote,
            quote_pmid=sentence.quote_pmid,
            score=round(sentence.score, 4),
            attributed=sentence.attributed,
            conflict=sentence.conflict,
        )


class AnswerBundle(_Record):
    """Schema of an answer bundle file, version 2 (version 1 is read too)."""

    bundle_version: Literal[1, 2] = BUNDLE_VERSION
    created_at: Name
    question: Text
    filters: FiltersRecord = Field(default_factory=FiltersRecord)
    index: IndexRecord
    embedder: ModelRecord
    generator: ModelRecord
    settings: dict[SettingName, Text | bool | int | float | None] = Field(max_length=200)
    abstained: bool
    answer: Text
    citations: list[Pmid] = Field(default_factory=list, max_length=1000)
    evidence: list[EvidenceRecord] = Field(default_factory=list, max_length=1000)
    sentences: list[SentenceRecord] = Field(default_factory=list, max_length=1000)
    sources: list[SourceRecord] = Field(default_factory=list, max_length=1000)
    notices: list[Text] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _labels_of_its_version(self) -> AnswerBundle:
        if self.bundle_version == 1 and any(
            s.support == "contradicted" or s.conflict for s in self.sentences
        ):
            raise ValueError("a version-1 bundle has no contradicted sentences")
        return self


def shaping_settings(rag: RagSettings, settings: Settings) -> dict[str, Any]:
    """The settings that shape ranking and generation, as a bundle records them."""
    shaping = answer_shaping(rag)
    shaping.update({name: getattr(settings, name) for name in INDEX_SHAPING})
    return shaping


def build_bundle(
    answer: Answer, filters: Filters | None, service: AnswerService, created_at: str = ""
) -> AnswerBundle:
    """The bundle of an answer the service gave (model hashes are cached: cheap after once).

    Raises:
        BundleError: the answer holds something a bundle cannot (a PMID that is not digits).
    """
    cache = service.settings.models_dir / "sha256.json"
    loaded = service.generator
    path = getattr(loaded, "path", None) if loaded is not None else None
    if path is None:
        path = generator_file(service.rag, service.settings)
    try:
        generator_sha = file_sha256(Path(path), cache) if path is not None else None
    except OSError:
        generator_sha = None
    try:
        return AnswerBundle(
            created_at=created_at or utcnow(),
            question=answer.question,
            filters=FiltersRecord.of(filters or Filters()),
            index=IndexRecord(version=answer.index_version, published_at=answer.published_at),
            embedder=ModelRecord(
                name=answer.embeddings_model,
                sha256=embedder_sha256(answer.embeddings_model, cache)
                if answer.embeddings_model
                else None,
            ),
            generator=ModelRecord(name=answer.model, sha256=generator_sha),
            settings=shaping_settings(service.rag, service.settings),
            abstained=answer.abstained,
            answer=answer.text,
            citations=list(answer.citations),
            evidence=[EvidenceRecord.of(item) for item in answer.evidence],
            sentences=[SentenceRecord.of(sentence) for sentence in answer.sentences],
            sources=[SourceRecord.of(rank, hit) for rank, hit in enumerate(answer.sources, 1)],
            notices=list(answer.notices),
        )
    except ValidationError as exc:
        raise BundleError(f"the answer cannot be saved as a bundle: {_first_error(exc)}") from None


def bundle_json(bundle: AnswerBundle) -> str:
    """The bundle file's text."""
    return bundle.model_dump_json(indent=2) + "\n"


def bundle_zip(bundle: AnswerBundle, stem: str = "answer-bundle") -> bytes:
    """The bundle's JSON and Markdown in one zip file (``stem.json``, ``stem.md``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{stem}.json", bundle_json(bundle))
        archive.writestr(f"{stem}.md", bundle_markdown(bundle))
    return buffer.getvalue()


def save_bundle(bundle: AnswerBundle, path: Path) -> tuple[Path, Path]:
    """Write the JSON at ``path`` and the Markdown beside it (``.md``); returns both paths.

    Raises:
        BundleError: ``path`` itself ends in ``.md``.
        OSError: the files cannot be written.
    """
    markdown = path.with_suffix(".md")
    if markdown == path:
        raise BundleError(f"{path}: the bundle is JSON; its Markdown goes beside it as .md")
    path.write_text(bundle_json(bundle), encoding="utf-8")
    markdown.write_text(bundle_markdown(bundle), encoding="utf-8")
    return path, markdown


def load_bundle(path: Path) -> AnswerBundle:
    """Read and validate a bundle file.

    Raises:
        BundleError: not a file, too large, not JSON, or not a valid bundle of a version this release reads.
    """
    try:
        if not path.is_file():
            raise BundleError(f"{path}: no such bundle file")
        if path.stat().st_size > MAX_BUNDLE_BYTES:
            raise BundleError(f"{path}: larger than {MAX_BUNDLE_BYTES} bytes, not a bundle")
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"{path}: cannot read the bundle ({exc.strerror or exc})") from None
    try:
        return AnswerBundle.model_validate_json(data)
    except ValidationError as exc:
        raise BundleError(f"{path} is not a valid answer bundle: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    """One printable line about the first problem (keys of a hostile file are cut short)."""
    first = exc.errors()[0]
    where = ".".join(_printable(str(part))[:40] for part in first["loc"]) or "file"
    if first["loc"] == ("bundle_version",) and first["type"] == "literal_error":
        readable = " or ".join(str(version) for version in READABLE_VERSIONS)
        return f"bundle_version must be {readable} (this release reads versions {readable})"
    extra = f" ({len(exc.errors()) - 1} more problems)" if len(exc.errors()) > 1 else ""
    return f"{where}: {first['msg']}{extra}"


def _printable(text: str) -> str:
    return "".join(char if char.isprintable() else "?" for char in text)


def replay_settings(
    bundle: AnswerBundle, rag: RagSettings, settings: Settings
) -> tuple[RagSettings, Settings]:
    """The current settings with the bundle's shaping settings applied (``llm`` stays current).

    A setting the bundle names that this release does not know is left out; the report of the
    replay shows it as changed.

    Raises:
        BundleError: a setting of the bundle is out of range for this release.
    """
    known = {
        name: value
        for name, value in bundle.settings.items()
        if name in RagSettings.model_fields and name not in REPLAY_KEEPS_CURRENT
    }
    try:
        replayed = RagSettings(**{**rag.model_dump(), **known})
    except ValidationError as exc:
        raise BundleError(
            f"the bundle's settings are not valid here: {_first_error(exc)}"
        ) from None
    index_side: dict[str, Any] = {}
    for name in INDEX_SHAPING:
        if name in bundle.settings:
            annotation: Any = Settings.model_fields[name].annotation
            try:
                index_side[name] = TypeAdapter(annotation).validate_python(bundle.settings[name])
            except ValidationError as exc:
                message = exc.errors()[0]["msg"]
                raise BundleError(f"the bundle's setting {name} is not valid: {message}") from None
    return replayed, settings.model_copy(update=index_side)


def replay_bundle(
    bundle: AnswerBundle, rag: RagSettings | None = None, settings: Settings | None = None
) -> AnswerBundle:
    """Ask the bundle's question again, with its filters and settings, on the current index.

    Raises:
        BundleError: the bundle's settings are not valid here.
        SearchError: no index, an empty year range.
        GenerationError: the generator failed.
    """
    replayed, index_settings = replay_settings(
        bundle, rag or RagSettings(), settings or get_settings()
    )
    service = AnswerService(settings=index_settings, rag=replayed)
    filters = bundle.filters.filters()
    return build_bundle(service.answer(bundle.question, filters), filters, service)


def bundle_markdown(bundle: AnswerBundle) -> str:
    """The bundle as a Markdown document; every text of a record or a model is escaped.

    ``[PMID:n]`` tags become ``[rank]`` of the source list, which keeps the search's order.
    """
    rank = {source.pmid: source.rank for source in bundle.sources}

    def cited(text: str) -> str:
        # Split on the tags (odd parts are PMIDs), escape the text between them, keep spaces.
        parts = _CITATION.split(text)
        out = [
            _spaced(part, markdown_escape(part)) if n % 2 == 0 else _ref(part, rank)
            for n, part in enumerate(parts)
        ]
        return " ".join("".join(out).split())

    lines = [f"# {markdown_escape(bundle.question)}", ""]
    lines += [
        f"_Answer bundle v{bundle.bundle_version}, created {markdown_escape(bundle.created_at)}; "
        f"index {markdown_escape(bundle.index.version)} published "
        f"{markdown_escape(bundle.index.published_at) or 'at an unknown time'}_",
        "",
    ]
    if bundle.evidence:
        lines += ["## Key evidence", ""]
        for item in bundle.evidence:
            section = f"({markdown_escape(item.section.title())}) " if item.section else ""
            lines.append(f"- {section}“{markdown_escape(item.text)}” {_ref(item.pmid, rank)}")
        lines.append("")
    lines += ["## Answer", ""]
    if bundle.sentences and not bundle.abstained:
        for sentence in bundle.sentences:
            conflict = f" ({markdown_escape(sentence.conflict)})" if sentence.conflict else ""
            lines.append(f"- {cited(sentence.text)} — _{sentence.support}_{conflict}")
            if sentence.quote:
                lines.append(
                    f"  > {markdown_escape(sentence.quote)} {_ref(sentence.quote_pmid, rank)}"
                )
    else:
        lines.append(cited(bundle.answer))
    lines += ["", "## Sources", ""]
    chosen = set(bundle.citations)
    for source in bundle.sources:
        hit = source.hit()
        mark = " **cited**" if source.pmid in chosen else ""
        lines.append(
            f"{source.rank}. {markdown_escape(reference(hit))} <{hit.url}> "
            f"score {source.score:.4f}{mark}"
        )
    lines += ["", "## How it was made", ""]
    lines += [f"- Filters: {_filters_text(bundle.filters)}"]
    for label, model in (("Embedder", bundle.embedder), ("Generator", bundle.generator)):
        digest = f"sha256 `{model.sha256}`" if model.sha256 else "no model file hashed"
        lines.append(f"- {label}: {markdown_escape(model.name)} ({digest})")
    lines.append("- Settings:")
    for name, value in bundle.settings.items():
        text = str(value) if len(str(value)) <= 120 else str(value)[:117] + "…"
        lines.append(f"  - {markdown_escape(name)}: {markdown_escape(text)}")
    for notice in bundle.notices:
        lines += ["", f"_Note: {markdown_escape(notice)}_"]
    return "\n".join(lines) + "\n"


def _spaced(raw: str, escaped: str) -> str:
    before = " " if raw[:1].isspace() else ""
    return before + escaped + (" " if raw[-1:].isspace() and escaped else "")


def _ref(pmid: str, rank: dict[str, int]) -> str:
    return f"[{rank[pmid]}]" if pmid in rank else (f"(PMID {pmid})" if pmid else "")


def _filters_text(filters: FiltersRecord) -> str:
    active = {
        name: value for name, value in filters.model_dump().items() if value not in (None, False)
    }
    return (
        ", ".join(f"{name} {markdown_escape(str(value))}" for name, value in active.items())
        or "none"
    )
