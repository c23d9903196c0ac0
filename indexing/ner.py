"""Named entities at ingest: chemicals, diseases and genes tagged by token-classification models.

Optional (``PUBMED_RAG_NER_MODEL``, off by default). NLM indexes MEDLINE records with their
substances, gene symbols and concepts (:mod:`indexing.pubmed` stores those), but only weeks to
months after they enter PubMed; a tagger reads the newest records too. Each model runs through
txtai's ``Entity`` pipeline (a Hugging Face token-classification pipeline) over an article's
title and abstract, cut into sentence-bounded chunks that fit the model. The pipeline merges
B-/I- labelled word pieces into words and spans; the type a label names (``Chemical``,
``Disease``, ``Gene``…, see :data:`LABEL_KINDS`) decides the kind a span is stored under, and a
model without any such label is refused when it loads. Spans scored below :data:`MIN_SCORE`,
shorter than :data:`MIN_CHARS` or without a letter are dropped; the rest are deduplicated per
article, case-insensitively, in the order they appear.

The manifest records the models and a hash of their files: an update that names other models,
or none, is refused (:func:`open_tagger`), so that no index is half tagged by one model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexing.article import NER_COLUMNS, Article, TaggedEntities, split_passages
from indexing.errors import UserError
from indexing.model_hashes import model_sha256
from indexing.models import ModelUnavailableError, locate_model
from indexing.settings import Settings

if TYPE_CHECKING:
    from indexing.store.records import Manifest

log = logging.getLogger(__name__)

KINDS = tuple(NER_COLUMNS)  # chemicals, diseases, genes
# Entity types of the usual biomedical NER corpora (BC5CDR, NCBI-disease, BC4CHEMD, BC2GM,
# JNLPBA, CRAFT…) by the kind they are stored under; compared lower-cased, with spaces and
# hyphens as underscores. Any other type (species, cell line, "0" used as the outside label…)
# is ignored.
LABEL_KINDS = {
    **dict.fromkeys(
        ("chemical", "chemicals", "chem", "drug", "drugs", "simple_chemical", "chemical_entity"),
        "chemicals",
    ),
    **dict.fromkeys(
        (
            "disease",
            "diseases",
            "disorder",
            "disease_disorder",
            "disease_or_phenotypic_feature",
            "diso",
        ),
        "diseases",
    ),
    **dict.fromkeys(
        (
            "gene",
            "genes",
            "protein",
            "gene_or_gene_product",
            "gene/protein",
            "gene_protein",
            "ggp",
            "dna",
            "rna",
        ),
        "genes",
    ),
}
# A span's score is the mean probability of its words' labels. Below this the model hesitates
# between labels; a guess, not tuned here (no real weights could be run on this machine).
MIN_SCORE = 0.6
MIN_CHARS = 2  # gene symbols and elements can be two letters (AR, Fe); one letter is noise
MAX_PER_KIND = 50  # per article: a long abstract's 51st chemical is not a facet anyone needs
# Word pieces per chunk given to a model, by the passage splitter's estimate: half of BERT's
# 512 positions, because chemical names split into many more pieces than ordinary words.
# Whatever still exceeds the model's window is cut there by the pipeline.
CHUNK_TOKENS = 256
PIPELINE_BATCH = 16  # chunks per forward pass
STEP_ARTICLES = 32  # articles tagged between two progress updates

TaggedCallback = Callable[[int], None]


class NerModelError(UserError, RuntimeError):
    """A tagging model cannot be used: not found, not readable, or without a label we store."""


class TaggerMismatchError(UserError, RuntimeError):
    """The index was tagged by other models (or none) than the settings name now."""


def model_names(settings: Settings) -> tuple[str, ...]:
    """The tagging models the settings name (local folders as absolute paths); () when off."""
    names = []
    for name in (settings.ner_model or "").split(","):
        folder = Path(name).expanduser()
        if name:
            names.append(str(folder.resolve()) if folder.is_dir() else name)
    return tuple(names)


def label_kinds(id2label: Mapping[Any, Any]) -> dict[str, str]:
    """``entity group -> kind`` for a model's labels, the groups named as the pipeline names them.

    The pipeline drops a ``B-``/``I-`` prefix and keeps any other label whole.
    """
    kinds = {}
    for label in map(str, id2label.values()):
        group = label[2:] if label.startswith(("B-", "I-")) else label
        kind = LABEL_KINDS.get(group.strip().lower().replace(" ", "_").replace("-", "_"))
        if kind is not None:
            kinds[group] = kind
    return kinds


def article_chunks(article: Article) -> list[str]:
    """The texts a model reads for an article: title and abstract in sentence-bounded chunks."""
    parts = [article.title, *(section.text for section in article.abstract)]
    text = "\n".join(part for part in parts if part.strip())
    return split_passages(text, CHUNK_TOKENS) if text else []


def clean_name(span: str) -> str:
    """An entity's name from its span: whitespace normalised, edge punctuation off; "" to drop."""
    name = " ".join(span.split()).strip(".,;:")
    if name[:1] + name[-1:] in ("()", "[]") and not any(c in name[1:-1] for c in "()[]"):
        name = name[1:-1]  # "(5-FU)"
    if name.startswith(("(", "[")) and not any(c in name for c in ")]"):
        name = name[1:]
    if name.endswith((")", "]")) and not any(c in name for c in "(["):
        name = name[:-1]
    name = name.strip()
    if name.startswith("##") or len(name) < MIN_CHARS or not any(c.isalpha() for c in name):
        return ""  # "##" is a word piece cut from its word (slow tokenizers)
    return name


def entity_spans(
    text: str, results: Iterable[Mapping[str, Any]], kinds: Mapping[str, str]
) -> Iterator[tuple[str, str]]:
    """``(kind, name)`` of the spans the pipeline found in ``text`` that are kept."""
    for result in results:
        kind = kinds.get(str(result.get("entity_group", "")))
        if kind is None or float(result.get("score", 0.0)) < MIN_SCORE:
            continue
        start, end = result.get("start"), result.get("end")
        # The pipeline's "word" is rebuilt from word pieces (lower-cased by uncased models,
        # "5 - fluorouracil"); the offsets give the text as the abstract writes it.
        if isinstance(start, int) and isinstance(end, int):
            span = text[start:end]
        else:
            span = str(result.get("word", ""))
        name = clean_name(span)
        if name:
            yield kind, name


def collect(pairs: Iterable[tuple[str, str]]) -> TaggedEntities:
    """One article's entities per kind, each name once (the first spelling), in order."""
    found: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
    for kind, name in pairs:
        names = found[kind]
        if len(names) < MAX_PER_KIND:
            names.setdefault(name.casefold(), name)
    return TaggedEntities(**{kind: tuple(names.values()) for kind, names in found.items()})


@dataclass(frozen=True, slots=True)
class TaggingModel:
    """One loaded model: its name, files, the kinds of its labels and its pipeline."""

    name: str
    path: str
    sha256: str
    kinds: dict[str, str]
    pipeline: Any  # a transformers TokenClassificationPipeline (from txtai's Entity)
    aggregation: str  # "first" (whole words) with a fast tokenizer, else "simple"


def _config_labels(name: str, path: str) -> dict[str, Any]:
    """The ``id2label`` of a token-classification model folder."""
    try:
        config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NerModelError(
            f"NER model {name!r} (PUBMED_RAG_NER_MODEL): cannot read {Path(path) / 'config.json'}: "
            f"{exc}"
        ) from exc
    architectures = config.get("architectures") or []
    labels = config.get("id2label")
    if not isinstance(labels, dict) or (
        architectures and not any(str(a).endswith("ForTokenClassification") for a in architectures)
    ):
        raise NerModelError(
            f"NER model {name!r} (PUBMED_RAG_NER_MODEL) is not a token-classification model "
            f"(architectures: {', '.join(map(str, architectures)) or 'none'})"
        )
    return labels


def load_model(name: str, settings: Settings) -> TaggingModel:
    """Find (or download, unless offline), check and load one tagging model.

    Raises:
        NerModelError: it cannot be found, read or loaded, or none of its labels names a kind.
    """
    if name.startswith(("/", ".", "~")) and not Path(name).expanduser().is_dir():
        raise NerModelError(f"NER model folder {name} (PUBMED_RAG_NER_MODEL) does not exist")
    try:
        path = locate_model(name, allow_download=not settings.offline)
    except ModelUnavailableError as exc:
        raise NerModelError(f"NER model (PUBMED_RAG_NER_MODEL): {exc}") from exc
    labels = _config_labels(name, path)
    kinds = label_kinds(labels)
    if not kinds:
        raise NerModelError(
            f"NER model {name!r} (PUBMED_RAG_NER_MODEL) has no label naming a chemical, disease "
            f"or gene (its labels: {', '.join(sorted(map(str, labels.values())))})"
        )
    try:
        sha256 = model_sha256(Path(path), settings.models_dir / "sha256.json")
        from txtai.pipeline import Entity

        pipeline = Entity(path).pipeline
    except (OSError, ValueError) as exc:
        raise NerModelError(
            f"NER model {name!r} (PUBMED_RAG_NER_MODEL) could not be loaded from {path}: {exc}"
        ) from exc
    aggregation = "first" if getattr(pipeline.tokenizer, "is_fast", False) else "simple"
    log.info("tagging entities with %s (%s)", name, ", ".join(sorted(set(kinds.values()))))
    return TaggingModel(name, path, sha256, kinds, pipeline, aggregation)


class EntityTagger:
    """The tagging models of a run, applied to articles in batches."""

    def __init__(self, models: Sequence[TaggingModel]) -> None:
        self.models = tuple(models)

    @classmethod
    def load(cls, names: Sequence[str], settings: Settings) -> EntityTagger:
        """Load every named model (see :func:`load_model`)."""
        return cls([load_model(name, settings) for name in names])

    @property
    def name(self) -> str:
        """What the manifest records: the models' names, comma-separated."""
        return ",".join(model.name for model in self.models)

    @property
    def sha256(self) -> str:
        """The models' file hashes, comma-separated like :attr:`name`."""
        return ",".join(model.sha256 for model in self.models)

    def tag(
        self, articles: Sequence[Article], on_tagged: TaggedCallback | None = None
    ) -> list[TaggedEntities]:
        """The entities of each article (same order); ``on_tagged(n)`` after each step."""
        tagged: list[TaggedEntities] = []
        for start in range(0, len(articles), STEP_ARTICLES):
            step = articles[start : start + STEP_ARTICLES]
            chunks = [
                (n, chunk) for n, article in enumerate(step) for chunk in article_chunks(article)
            ]
            found: list[list[tuple[str, str]]] = [[] for _ in step]
            texts = [chunk for _, chunk in chunks]
            for model in self.models if texts else ():
                # txtai's Entity.__call__ drops the spans' offsets and runs one text per
                # forward pass; its Hugging Face pipeline gives both.
                outputs = model.pipeline(
                    texts, aggregation_strategy=model.aggregation, batch_size=PIPELINE_BATCH
                )
                for (number, chunk), results in zip(chunks, outputs, strict=True):
                    found[number].extend(entity_spans(chunk, results, model.kinds))
            tagged.extend(collect(pairs) for pairs in found)
            if on_tagged is not None:
                on_tagged(len(step))
        return tagged


def _setting(names: Sequence[str] | str) -> str:
    value = names if isinstance(names, str) else ",".join(names)
    return f"PUBMED_RAG_NER_MODEL={value}" if value else "PUBMED_RAG_NER_MODEL unset"


def open_tagger(settings: Settings, manifest: Manifest | None) -> EntityTagger | None:
    """The tagger a run writes with, checked against the index it writes to (None: off).

    An index that holds articles keeps the models it was tagged with (or none): tagging only
    the records one run writes would leave the others without entities, or with another
    model's, and a facet would then count some articles and not others.

    Raises:
        TaggerMismatchError: the index was tagged by other models, or by none.
        NerModelError: a named model cannot be found, read or used.
    """
    names = model_names(settings)
    recorded = manifest.ner_model if manifest is not None and manifest.articles else None
    fix = (
        f"set {_setting(recorded)}" if recorded else "unset PUBMED_RAG_NER_MODEL"
    ) + " to update it, or build a new index in another PUBMED_RAG_DATA_DIR"
    if recorded is not None and recorded != ",".join(names):
        have = f"tagged by {recorded}" if recorded else "built without entity tagging"
        raise TaggerMismatchError(
            f"the index was {have}, but the settings have {_setting(names)}: its articles "
            f"would not all be tagged alike. {fix[0].upper()}{fix[1:]}"
        )
    if not names:
        return None
    tagger = EntityTagger.load(names, settings)
    if manifest is not None and recorded and manifest.ner_sha256 not in ("", tagger.sha256):
        raise TaggerMismatchError(
            f"the files of the NER model {recorded} changed since they tagged the index "
            f"(sha256 {manifest.ner_sha256[:12]}…, now {tagger.sha256[:12]}…): its articles would "
            "not all be tagged alike. Restore the model's files, or build a new index in another "
            "PUBMED_RAG_DATA_DIR"
        )
    return tagger
