"""Entities tagged at ingest (``PUBMED_RAG_NER_MODEL``): a tiny BERT tagger over real records.

No real NER weights can be downloaded here. The model is a real ``BertForTokenClassification``
(one layer, the bundled MiniLM word-piece vocabulary, a BIO label map O / B-Chemical /
I-Chemical / B-Disease / I-Disease) whose weights are set so that what it tags does not depend
on chance: "glucose" is B-Chemical, "breast" B-Disease, "cancer" I-Disease, every other token
O. It is saved to a folder that the setting names, and the product's ingest (txtai's
``Entity`` pipeline, the store's writer) runs it over real PubMed records; search, filters,
counts and the app's source cards then read what it stored.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexing.article import Article, split_list
from indexing.ingest import IngestProgress, ingest_files
from indexing.ner import (
    MIN_SCORE,
    NerModelError,
    TaggerMismatchError,
    clean_name,
    entity_spans,
    label_kinds,
    load_model,
)
from indexing.settings import Settings, get_settings
from indexing.store import open_store
from rag.settings import get_rag_settings
from tests.conftest import METAPUB_PMIDS, clear_settings_env, needs_shared_data
from tests.fixtures_index import parse_samples
from tests.fixtures_pg import BOTH, Backend

pytestmark = needs_shared_data(METAPUB_PMIDS)

LABELS = ("O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease")
# token -> (hidden dimension it lights up, label it is given)
TRIGGERS = {"glucose": (0, 1), "breast": (1, 3), "cancer": (2, 4)}
# Real records: two mention glucose (34751700 is also indexed by NLM with the substance
# Glucose, 37903272 is not), one breast cancer (35649368), the others neither.
PMIDS = (
    "34751700",
    "37903272",
    "35649368",
    "23657305",
    "32490903",
    "36577847",
    "37065682",
    "11618220",
    "11636720",
    "11873782",
    "219391",
    "24084238",
)
FILES = [METAPUB_PMIDS / f"{pmid}.xml" for pmid in PMIDS]


def save_tiny_tagger(
    folder: Path,
    bias: float = 1.0,
    labels: tuple[str, ...] = LABELS,
    triggers: dict[str, tuple[int, int]] = TRIGGERS,
) -> Path:
    """A ``BertForTokenClassification`` folder that tags the :data:`TRIGGERS` and nothing else.

    Only the trigger tokens have a (one-hot) word embedding; position and type embeddings are
    zero and the layer's output projections add nothing, so a token's hidden state is the
    layer norm of its own embedding, whatever surrounds it. The classifier prefers O (its
    ``bias``) unless a trigger's dimension is lit.
    """
    import torch
    from transformers import BertConfig, BertForTokenClassification, BertTokenizerFast

    from indexing.settings import offline_embeddings_path

    tokenizer = BertTokenizerFast.from_pretrained(str(offline_embeddings_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=512,
        id2label=dict(enumerate(labels)),
        label2id={label: n for n, label in enumerate(labels)},
    )
    model = BertForTokenClassification(config).eval()
    with torch.no_grad():
        embeddings = model.bert.embeddings
        for table in (
            embeddings.word_embeddings,
            embeddings.position_embeddings,
            embeddings.token_type_embeddings,
        ):
            table.weight.zero_()
        for layer in model.bert.encoder.layer:
            for dense in (layer.attention.output.dense, layer.output.dense):
                dense.weight.zero_()
                dense.bias.zero_()
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.bias[0] = bias
        for word, (dimension, label) in triggers.items():
            embeddings.word_embeddings.weight[tokenizer.convert_tokens_to_ids(word), dimension] = 1
            model.classifier.weight[label, dimension] = 2.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_tagger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_tagger(tmp_path_factory.mktemp("tiny-ner") / "model")


@pytest.fixture(scope="module")
def articles() -> dict[str, Article]:
    return {pmid: a for pmid, a in parse_samples(tuple(FILES)).items() if pmid in PMIDS}


def mentions(article: Article, phrase: str) -> bool:
    text = " ".join([article.title, *(section.text for section in article.abstract)])
    return re.search(rf"\b{phrase}\b", text, re.IGNORECASE) is not None


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A clean ``PUBMED_RAG_*`` environment (offline models); tests add what they need."""
    clear_settings_env(monkeypatch)
    monkeypatch.setenv("PUBMED_RAG_OFFLINE", "1")
    get_settings.cache_clear()
    get_rag_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()
    get_rag_settings.cache_clear()


def use(env: pytest.MonkeyPatch, data_dir: Path, backend: Backend | None = None, **extra: str):
    """Point the settings (and so the CLIs) at an index."""
    env.setenv("PUBMED_RAG_DATA_DIR", str(data_dir))
    for key, value in {**(backend.env(data_dir) if backend else {}), **extra}.items():
        env.setenv(key, value)
    get_settings.cache_clear()
    get_rag_settings.cache_clear()


def rag(*args: str) -> dict:
    from rag.__main__ import cli

    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def indexing(*args: str):
    from indexing.__main__ import cli

    return CliRunner().invoke(cli, list(args))


def lower(names: list[str]) -> set[str]:
    return {name.casefold() for name in names}


def split_lower(value: str | None) -> set[str]:
    return lower(split_list(value))


def stored_rows(settings: Settings) -> list[dict]:
    """Every passage's entity columns in the published version."""
    from indexing.store import IndexReader

    reader = IndexReader(settings)
    try:
        query = "SELECT pmid, ner_chemicals, ner_diseases, ner_genes FROM txtai"
        return reader.get().search(query, 10000)
    finally:
        reader.store.close()


# -- the real path: ingest, filter, count, show -------------------------------------------------


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_tagged_entities_are_stored_filtered_on_counted_and_shown(
    backend: Backend,
    tiny_tagger: Path,
    articles: dict[str, Article],
    tmp_path: Path,
    env: pytest.MonkeyPatch,
) -> None:
    data_dir = tmp_path / "data"
    settings = backend.settings(data_dir, ner_model=str(tiny_tagger))
    seen: list[IngestProgress] = []

    report = ingest_files(FILES, settings, quiet=True, progress=seen.append)

    assert report.added == len(PMIDS)
    assert seen[-1].tagged == len(PMIDS)  # every new record went through the tagger
    use(env, data_dir, backend, PUBMED_RAG_NER_MODEL=str(tiny_tagger))
    info = json.loads(indexing("info", "--json").stdout)
    assert info["ner_model"] == str(tiny_tagger.resolve())

    glucose = {pmid for pmid, article in articles.items() if mentions(article, "glucose")}
    assert glucose == {"34751700", "37903272"}
    payload = rag("search", "blood glucose and insulin", "--entity", "Glucose")
    found = {source["pmid"] for source in payload["sources"]}
    # 37903272 carries no Glucose in its ChemicalList: only the tagger finds it.
    assert found == glucose
    assert "Glucose" not in articles["37903272"].chemicals
    for source in payload["sources"]:
        assert "glucose" in lower(source["ner_chemicals"])
    (counted,) = [row for row in payload["facets"]["ner_chemicals"] if row[0].lower() == "glucose"]
    assert counted[1] == 2  # one count for both articles, whatever their spelling

    # A two-word entity: B-Disease then I-Disease, merged by the pipeline into one span.
    payload = rag("search", "breast cancer", "--entity", "breast cancer")
    assert {source["pmid"] for source in payload["sources"]} == {"35649368"}
    assert "breast cancer" in lower(payload["sources"][0]["ner_diseases"])

    # Articles that do not mention it never carry it (every passage of the index, read back).
    rows = stored_rows(settings)
    assert {row["pmid"] for row in rows} == set(PMIDS)
    for row in rows:
        assert ("glucose" in split_lower(row["ner_chemicals"])) == (row["pmid"] in glucose)
        assert row["ner_genes"] == ""  # the model has no gene label


def test_tagged_entities_are_listed_and_underlined_in_source_cards(
    tiny_tagger: Path, tmp_path: Path
) -> None:
    from indexing.store import IndexReader
    from rag.display import entities_html, facets_html, source_html
    from rag.search import Filters, entity_counts, search

    settings = Settings(data_dir=tmp_path / "data", offline=True, ner_model=str(tiny_tagger))
    ingest_files(FILES[:3], settings, quiet=True)
    reader = IndexReader(settings)

    hits = search(reader, "glucose", Filters(entity="glucose")).hits

    assert {hit.pmid for hit in hits} == {"34751700", "37903272"}
    card = source_html(1, next(hit for hit in hits if hit.pmid == "37903272"))
    assert re.search(r'class="pubmed-rag-entity"[^>]*>glucose</span>', card, re.IGNORECASE)
    assert "Chemicals (NER): " in entities_html(hits[0])
    assert "Chemicals (NER): " in facets_html(entity_counts(hits))
    reader.store.close()


def test_several_models_each_add_their_kinds(
    tiny_tagger: Path, articles: dict[str, Article], tmp_path: Path
) -> None:
    from indexing.ner import EntityTagger

    genes = save_tiny_tagger(
        tmp_path / "genes", labels=("O", "B-GENE", "I-GENE"), triggers={"insulin": (0, 1)}
    )
    names = [str(tiny_tagger), str(genes)]
    tagger = EntityTagger.load(names, Settings(data_dir=tmp_path, offline=True))
    chosen = [articles["34751700"], articles["35649368"]]  # glucose and insulin; breast cancer

    first, second = tagger.tag(chosen)

    assert tagger.name == ",".join(names) and len(tagger.sha256.split(",")) == 2
    assert lower(list(first.chemicals)) == {"glucose"} and lower(list(first.genes)) == {"insulin"}
    assert "breast cancer" in lower(list(second.diseases)) and second.genes == ()


# -- off by default ------------------------------------------------------------------------------


def test_tagging_is_off_by_default_and_loads_no_model(
    articles: dict[str, Article],
    tmp_path: Path,
    env: pytest.MonkeyPatch,
) -> None:
    def no_model(*args: object) -> None:
        raise AssertionError("a tagging model was loaded")

    env.setattr("indexing.ner.load_model", no_model)
    data_dir = tmp_path / "data"
    use(env, data_dir)
    assert get_settings().ner_model is None

    ingest_files(FILES, get_settings(), quiet=True)

    assert json.loads(indexing("info", "--json").stdout)["ner_model"] is None
    assert "Entities (NER)  off" in indexing("info").stdout
    # Only NLM's own substance list is there to filter on.
    payload = rag("search", "blood glucose and insulin", "--entity", "glucose")
    assert {source["pmid"] for source in payload["sources"]} == {"34751700"}
    for row in stored_rows(get_settings()):
        assert row["ner_chemicals"] == row["ner_diseases"] == row["ner_genes"] == ""
    assert all(not rows for kind, rows in payload["facets"].items() if kind.startswith("ner_"))


# -- refusals: clear, one line, the published index untouched --------------------------------


def test_missing_or_unreadable_model_fails_in_one_line_and_publishes_nothing(
    tiny_tagger: Path, tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    use(env, data_dir, PUBMED_RAG_NER_MODEL=str(tmp_path / "no-such-model"))

    result = indexing("-q", "ingest", "--xml", str(FILES[0]))

    assert result.exit_code == 2
    assert "Traceback" not in result.output
    last = result.stderr.strip().splitlines()[-1]
    assert (
        last
        == f"error: NER model folder {tmp_path / 'no-such-model'} (PUBMED_RAG_NER_MODEL) does not exist"
    )
    assert open_store(get_settings()).current_version() is None

    # A tagged index whose model's files are then damaged: the next ingest stops before
    # writing anything, and the published version stays as it was.
    model = tmp_path / "model"
    shutil.copytree(tiny_tagger, model)
    use(env, data_dir, PUBMED_RAG_NER_MODEL=str(model))
    assert indexing("-q", "ingest", "--xml", str(FILES[0])).exit_code == 0
    before = json.loads(indexing("info", "--json").stdout)
    (model / "config.json").write_text("{not json", encoding="utf-8")

    result = indexing("-q", "ingest", "--xml", str(FILES[1]))

    assert result.exit_code == 2
    assert "cannot read" in result.stderr and "config.json" in result.stderr
    after = json.loads(indexing("info", "--json").stdout)
    assert (after["index_version"], after["articles"]) == (before["index_version"], 1)
    assert after["last_run"]["status"] == "failed"


def test_an_index_keeps_the_tagger_it_was_built_with(
    tiny_tagger: Path, tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    tagged, plain = tmp_path / "tagged", tmp_path / "plain"
    ingest_files(FILES[:1], Settings(data_dir=plain, offline=True), quiet=True)
    model = tmp_path / "model"
    shutil.copytree(tiny_tagger, model)
    ingest_files(
        FILES[:1], Settings(data_dir=tagged, offline=True, ner_model=str(model)), quiet=True
    )

    # Tagging switched on for an index built without it.
    with pytest.raises(TaggerMismatchError, match="built without entity tagging") as refused:
        ingest_files(FILES[1:2], Settings(data_dir=plain, offline=True, ner_model=str(model)))
    assert "Unset PUBMED_RAG_NER_MODEL to update it" in str(refused.value)
    # Tagging switched off (the setting forgotten) for a tagged index.
    with pytest.raises(
        TaggerMismatchError, match=f"PUBMED_RAG_NER_MODEL={re.escape(str(model.resolve()))}"
    ):
        ingest_files(FILES[1:2], Settings(data_dir=tagged, offline=True))
    # The same folder, other weights.
    save_tiny_tagger(model, bias=1.5)
    with pytest.raises(TaggerMismatchError, match="changed since they tagged the index"):
        ingest_files(FILES[1:2], Settings(data_dir=tagged, offline=True, ner_model=str(model)))
    for data_dir in (plain, tagged):
        store = open_store(Settings(data_dir=data_dir, offline=True))
        assert store.manifest().articles == 1 and store.current_version() == "v000001"
        store.close()


def test_a_model_without_a_chemical_disease_or_gene_label_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "species"
    folder.mkdir()
    labels = {"0": "O", "1": "B-Species", "2": "I-Species"}
    config = {"architectures": ["BertForTokenClassification"], "id2label": labels}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")

    with pytest.raises(NerModelError, match="no label naming a chemical, disease or gene"):
        load_model(str(folder), Settings(data_dir=tmp_path, offline=True))

    config["architectures"] = ["BertModel"]
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(NerModelError, match="not a token-classification model"):
        load_model(str(folder), Settings(data_dir=tmp_path, offline=True))


def test_a_hub_model_that_is_not_cached_offline_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(NerModelError, match="not in the local cache and downloads are off"):
        load_model("no-such-org/no-such-ner-model", Settings(data_dir=tmp_path, offline=True))


def test_the_setting_is_a_list_of_models_without_blanks_or_repeats(tmp_path: Path) -> None:
    from pydantic import ValidationError

    assert Settings(data_dir=tmp_path, ner_model=" a/b , c/d ,").ner_model == "a/b,c/d"
    assert Settings(data_dir=tmp_path, ner_model="  ").ner_model is None
    with pytest.raises(ValidationError, match="twice"):
        Settings(data_dir=tmp_path, ner_model="a/b,a/b")


# -- labels and spans ----------------------------------------------------------------------------


def test_labels_of_real_biomedical_models_map_to_kinds() -> None:
    # alvaroalon2/biobert_diseases_ner (a copy of its config.json): "0" is its outside label.
    assert label_kinds({0: "B-DISEASE", 1: "I-DISEASE", 2: "0"}) == {"DISEASE": "diseases"}
    # BC5CDR as tner writes it; BC2GM / JNLPBA style gene labels.
    assert label_kinds(dict(enumerate(LABELS))) == {"Chemical": "chemicals", "Disease": "diseases"}
    assert label_kinds({0: "O", 1: "B-GENE", 2: "I-GENE", 3: "B-protein"}) == {
        "GENE": "genes",
        "protein": "genes",
    }
    # Labels without a B-/I- prefix are taken whole: "No Disease" is not a disease.
    assert label_kinds({0: "No Disease", 1: "Disease", 2: "Disease Continuation"}) == {
        "Disease": "diseases"
    }


def test_spans_keep_the_text_as_written_and_drop_doubtful_or_garbage_ones() -> None:
    text = "Oral 5-fluorouracil (5-FU) and  cisplatin; p53 ... 12"
    kinds = {"Chemical": "chemicals", "Gene": "genes"}

    def span(phrase: str, group: str = "Chemical", score: float = 0.99) -> dict:
        start = text.index(phrase)
        return {"entity_group": group, "score": score, "start": start, "end": start + len(phrase)}

    results = [
        {**span("5-fluorouracil"), "word": "5 - fluorouracil"},
        span("(5-FU)"),
        span("and  cisplatin;"),
        span("p53", "Gene"),
        span("12"),  # no letter
        span("cisplatin", score=MIN_SCORE - 0.01),  # the model hesitates
        span("Oral", "Species"),  # a type this index does not store
    ]

    assert list(entity_spans(text, results, kinds)) == [
        ("chemicals", "5-fluorouracil"),
        ("chemicals", "5-FU"),
        ("chemicals", "and cisplatin"),
        ("genes", "p53"),
    ]
    assert clean_name("(insulin") == "insulin" and clean_name("##mab") == ""
    assert clean_name("X") == "" and clean_name("Fe") == "Fe"
