"""Answer bundles: saved by ``rag ask --bundle``, replayed by ``rag replay`` over real indexes."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexing.model_hashes import _HASHES, file_sha256, model_sha256
from indexing.models import OFFLINE_EMBEDDINGS
from indexing.settings import Settings, offline_embeddings_path
from rag.__main__ import cli
from rag.bundle import AnswerBundle, BundleError, bundle_markdown, load_bundle
from tests.app_index import HOSTILE_PMID, app_articles
from tests.conftest import METAPUB_PMIDS, clear_settings_env
from tests.fixtures_index import RETRACTED_PMID, SampleIndex, build_index, rag_env, sample_index

__all__ = ["rag_env", "sample_index"]

QUESTION = "Is long-term use of proton pump inhibitors safe?"
SCRIPT = "scripted:Long-term use carries risks [PMID:{pmid1}]. Fractures are one [PMID:{pmid2}]."


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def scripted(rag_env: SampleIndex, monkeypatch: pytest.MonkeyPatch) -> SampleIndex:
    monkeypatch.setenv("PUBMED_RAG_LLM", SCRIPT)
    return rag_env


@pytest.fixture
def saved(scripted: SampleIndex, tmp_path: Path) -> Path:
    """A bundle of QUESTION on the sample index (the scripted generator answered)."""
    path = tmp_path / "answer.json"
    code, _, err = run("ask", QUESTION, "--bundle", str(path))
    assert code == 0, err
    return path


@pytest.fixture
def own_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A writable index of the app's small real index without the PPI review (and the CLI on it)."""
    from indexing.settings import get_settings
    from rag.settings import get_rag_settings

    if not METAPUB_PMIDS.exists():
        pytest.skip(f"shared data not found at {METAPUB_PMIDS}")
    clear_settings_env(monkeypatch)
    data_dir = tmp_path / "data"
    articles = app_articles()
    del articles[RETRACTED_PMID]
    build_index(data_dir, articles)
    monkeypatch.setenv("PUBMED_RAG_DATA_DIR", str(data_dir))
    monkeypatch.setenv("PUBMED_RAG_OFFLINE", "1")
    monkeypatch.setenv("PUBMED_RAG_LLM", SCRIPT)
    get_settings.cache_clear()
    get_rag_settings.cache_clear()
    yield data_dir
    get_settings.cache_clear()
    get_rag_settings.cache_clear()


def test_ask_bundle_round_trips_everything_that_made_the_answer(saved: Path) -> None:
    bundle = load_bundle(saved)

    assert bundle.bundle_version == 2
    assert bundle.question == QUESTION
    assert bundle.index.version == "v000001" and bundle.index.published_at
    assert bundle.embedder.name == OFFLINE_EMBEDDINGS
    assert bundle.embedder.sha256 == model_sha256(offline_embeddings_path())
    assert bundle.generator.name == "scripted" and bundle.generator.sha256 is None
    assert bundle.settings["top_k"] == 5 and bundle.settings["encoder_precision"] == "auto"
    assert "gpu_layers" not in bundle.settings and "llm_threads" not in bundle.settings
    assert [source.rank for source in bundle.sources] == list(range(1, 11))
    assert bundle.sources[0].pmid == RETRACTED_PMID and bundle.sources[0].score > 0
    assert bundle.evidence and all(item.pmid.isdigit() for item in bundle.evidence)
    assert bundle.sentences[0].citations == [RETRACTED_PMID]
    assert {sentence.support for sentence in bundle.sentences} <= {
        "supported",
        "weak",
        "unsupported",
        "contradicted",
    }
    assert bundle.citations == list(dict.fromkeys(c for s in bundle.sentences for c in s.citations))
    # The file is the schema's own JSON: reading it back gives the same bundle.
    assert AnswerBundle.model_validate_json(bundle.model_dump_json()) == bundle
    markdown = saved.with_suffix(".md").read_text(encoding="utf-8")
    assert markdown.startswith(f"# {QUESTION}\n")
    assert "## Key evidence" in markdown and "## Sources" in markdown
    assert f"<https://pubmed.ncbi.nlm.nih.gov/{RETRACTED_PMID}/>" in markdown
    assert f"sha256 `{bundle.embedder.sha256}`" in markdown


def test_replay_on_the_same_index_is_identical_exit_0(saved: Path) -> None:
    code, out, err = run("replay", str(saved))

    assert code == 0, err
    assert "Identical" in out and "v000001" in out

    code, out, _ = run("replay", str(saved), "--json")

    assert code == 0
    data = json.loads(out)
    assert data["identical"] is True and data["differences"] == {}


def test_replay_with_another_answer_reports_the_sentences_and_citations(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBMED_RAG_LLM", "scripted:Long-term use carries risks [PMID:{pmid2}].")

    code, out, _ = run("replay", str(saved), "--json")

    assert code == 1
    differences = json.loads(out)["differences"]
    assert {"answer", "citations", "settings"} <= set(differences)
    assert not {"index", "models", "sources", "evidence", "filters"} & set(differences)
    assert differences["answer"]["removed"] == ["Fractures are one."]
    old, new = (differences["citations"]["answer"][key] for key in ("old", "new"))
    assert old[0] == RETRACTED_PMID and RETRACTED_PMID not in new
    changed = differences["citations"]["sentences"][0]
    assert changed["sentence"] == "Long-term use carries risks." and changed["old"] == [
        RETRACTED_PMID
    ]
    assert differences["settings"]["llm"]["old"] == SCRIPT  # the generator is the current one


def test_replay_uses_the_bundles_filters(saved: Path) -> None:
    # The same bundle, as if it had been asked without retracted articles.
    data = json.loads(saved.read_text(encoding="utf-8"))
    data["filters"]["exclude_retracted"] = True
    saved.write_text(json.dumps(data), encoding="utf-8")

    code, out, _ = run("replay", str(saved))

    assert code == 1
    assert "sources:" in out and f"removed: {RETRACTED_PMID}" in out
    assert "key evidence:" in out


def test_replay_after_a_new_index_version_reports_what_changed(
    own_index: Path, tmp_path: Path
) -> None:
    path = tmp_path / "before.json"
    assert run("ask", QUESTION, "--bundle", str(path))[0] == 0
    # A new version holds the PPI review as well (an update that found it).
    build_index(own_index, {RETRACTED_PMID: app_articles()[RETRACTED_PMID]})

    code, out, _ = run("replay", str(path), "--json")

    assert code == 1
    differences = json.loads(out)["differences"]
    assert differences["index"]["version"] == {"old": "v000001", "new": "v000002"}
    # Publication times have a resolution of one second: both versions may share one.
    published = differences["index"].get("published_at")
    assert published is None or published["old"] != published["new"]
    assert RETRACTED_PMID in differences["sources"]["added"]
    assert "evidence" in differences and "models" not in differences

    code, out, _ = run("replay", str(path))

    assert code == 1
    assert "version: v000001 → v000002" in out and f"added: {RETRACTED_PMID}" in out


def test_markdown_of_a_hostile_record_is_plain_text(own_index: Path, tmp_path: Path) -> None:
    path = tmp_path / "hostile.json"
    assert run("ask", QUESTION, "--bundle", str(path))[0] == 0
    bundle = load_bundle(path)
    assert HOSTILE_PMID in [source.pmid for source in bundle.sources]

    markdown = bundle_markdown(bundle)

    assert markdown == path.with_suffix(".md").read_text(encoding="utf-8")
    for marker in ("<script", "<img", 'x"><'):
        assert marker not in markdown, marker
    assert "&lt;script&gt;window.\\_\\_pwned = 1&lt;/script&gt;" in markdown
    assert "- Long-term use carries risks [1]. — _" in markdown
    link = bundle.sources[0].model_copy(update={"title": "See [x](javascript:alert(1)) **b**"})
    linked = bundle_markdown(bundle.model_copy(update={"sources": [link]}))
    assert r"See \[x\](javascript:alert(1)) \*\*b\*\*" in linked
    title = bundle.model_copy(update={"question": "Q\u202e? # not a heading"})
    assert "\u202e" not in bundle_markdown(title) and r"\# not a heading" in bundle_markdown(title)


def _tamper(path: Path, change) -> Path:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(bundle_version=3), "bundle_version must be 1 or 2"),
        (lambda d: d.pop("index"), "index: Field required"),
        (lambda d: d.update(surprise=1), "surprise: Extra inputs are not permitted"),
        (lambda d: d["sources"][0].update(pmid="1](javascript:alert(1))"), "sources.0.pmid"),
        (lambda d: d["sources"][0].update(score="0.5"), "sources.0.score"),
        (lambda d: d["sources"][0].update(score=float("nan")), "sources.0.score"),
        (lambda d: d["sentences"][0].update(support="trust me"), "sentences.0.support"),
        (lambda d: d.update(question="x" * 200_000), "question"),
        (lambda d: d["settings"].update({"\x1b[2Jkey": 1}), "settings.?[2Jkey"),
        (lambda d: d["settings"].update(system_prompt="x" * 200_000), "settings.system_prompt"),
        (lambda d: d["settings"].update(top_k=500), "top_k"),
        (lambda d: d["settings"].update(encoder_precision="int3"), "encoder_precision"),
        (lambda d: d["filters"].update(year_from=2024, year_to=2000), "year range is empty"),
    ],
)
def test_a_tampered_bundle_is_one_clear_error_exit_2(saved: Path, change, message: str) -> None:
    _tamper(saved, change)

    code, out, err = run("replay", str(saved))

    assert code == 2, out
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert "\x1b" not in err and "Traceback" not in err


def test_a_version_1_bundle_is_still_read(saved: Path) -> None:
    def as_version_1(data: dict) -> None:
        data["bundle_version"] = 1
        for sentence in data["sentences"]:
            sentence.pop("conflict")

    bundle = load_bundle(_tamper(saved, as_version_1))

    assert bundle.bundle_version == 1 and bundle.sentences


def test_a_contradicted_sentence_is_read_from_version_2_only(saved: Path) -> None:
    conflict = "claim “not”; quote affirms"

    def contradicted(data: dict) -> None:
        data["sentences"][0].update(support="contradicted", conflict=conflict)

    bundle = load_bundle(_tamper(saved, contradicted))

    assert (bundle.sentences[0].support, bundle.sentences[0].conflict) == (
        "contradicted",
        conflict,
    )
    assert f"_contradicted_ ({conflict})" in bundle_markdown(bundle)
    _tamper(saved, lambda d: d.update(bundle_version=1))
    with pytest.raises(BundleError, match="a version-1 bundle has no contradicted sentences"):
        load_bundle(saved)


@pytest.mark.parametrize("content", [b"", b"not json", b"[1, 2]", b"\xff\xfe\x00"])
def test_a_file_that_is_no_bundle_at_all_is_exit_2(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bundle.json"
    path.write_bytes(content)

    with pytest.raises(BundleError, match="is not a valid answer bundle"):
        load_bundle(path)
    code, _, err = run("replay", str(path))
    assert code == 2 and err.startswith("error: ")


def test_replay_text_report_never_prints_control_characters(saved: Path) -> None:
    _tamper(saved, lambda d: d.update(question=QUESTION + "\x1b]0;owned\x07\u202e"))

    code, out, _ = run("replay", str(saved))

    assert code in (0, 1)
    assert "Replayed" in out and "\x1b" not in out and "\x07" not in out and "\u202e" not in out


def test_bundle_path_must_not_be_the_markdown(scripted: SampleIndex, tmp_path: Path) -> None:
    code, _, err = run("ask", QUESTION, "--bundle", str(tmp_path / "answer.md"))

    assert code == 2 and "beside it as .md" in err


def test_model_hashes_are_cached_by_path_size_and_mtime(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    cache = tmp_path / "cache" / "sha256.json"

    first = file_sha256(model, cache)

    assert first == hashlib.sha256(model.read_bytes()).hexdigest()
    stat = model.stat()
    model.write_bytes(b"GGUX" + bytes(range(256)) * 64)  # same size, restored mtime
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    _HASHES.clear()
    assert file_sha256(model, cache) == first  # from the cache file, not read again
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert file_sha256(model, cache) == hashlib.sha256(model.read_bytes()).hexdigest() != first


def test_embedder_folder_hash_covers_weights_and_config_only(tmp_path: Path) -> None:
    folder = tmp_path / "embedder"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "1_Pooling" / "config.json").write_text("{}")
    before = model_sha256(folder)

    (folder / "README.md").write_text("a model card")
    assert model_sha256(folder) == before
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    assert model_sha256(folder) != before


def test_settings_of_the_index_side_are_checked_on_replay(saved: Path) -> None:
    from rag.bundle import replay_settings
    from rag.settings import RagSettings

    bundle = load_bundle(saved)
    settings = Settings(data_dir=saved.parent, offline=True)
    rag, index_settings = replay_settings(
        bundle.model_copy(update={"settings": {**bundle.settings, "top_k": 3, "future": 1}}),
        RagSettings(),
        settings,
    )

    assert rag.top_k == 3 and rag.llm == SCRIPT and index_settings.encoder_precision == "auto"


def test_bundle_keeps_design_filters_and_source_levels() -> None:
    from dataclasses import replace

    from rag.bundle import FiltersRecord, SourceRecord
    from rag.search import Filters
    from tests.test_export import HIT

    filters = Filters(evidence=("rct", "meta-analysis"), humans=True, year_from=2020)
    record = FiltersRecord.model_validate_json(FiltersRecord.of(filters).model_dump_json())
    hit = replace(HIT, evidence="rct", population=("humans",), cites_retracted=("26432142",))
    source = SourceRecord.model_validate_json(SourceRecord.of(1, hit).model_dump_json())

    assert record.filters() == filters
    again = source.hit()
    assert (again.evidence, again.population, again.cites_retracted) == (
        "rct",
        ("humans",),
        ("26432142",),
    )
