"""The Streamlit app's page logic, driven headlessly by Streamlit's AppTest.

Real indexes on disk (the session sample index; a small index with a hostile record), the
scripted generator through ``PUBMED_RAG_LLM=scripted:…`` as a user would configure a model,
and a real local E-utilities server for the Library's ingest form. The browser test
(``test_app_browser.py``) runs the real models in a real Chromium.
"""

from __future__ import annotations

import io
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from indexing.settings import Settings
from rag.generation import ScriptedGenerator, register_generator
from rag.search import Filters
from rag.service import AnswerService
from testkit.eutils_server import EutilsServer
from tests.app_index import (
    HOSTILE_MARKERS,
    HOSTILE_PMID,
    IMG,
    SCRIPT,
    build_app_index,
)
from tests.conftest import ROOT, clear_settings_env
from tests.fixtures_index import RETRACTED_PMID, SampleIndex, build_index, sample_index

__all__ = ["sample_index"]

APP = ROOT / "app.py"
TIMEOUT = 180  # the first run of a session loads the index and its encoder
QUESTION = "Is long-term use of proton pump inhibitors safe?"
OFF_TOPIC = "How do I change a flat tyre on a racing bicycle?"
PUBMED = "https://pubmed.ncbi.nlm.nih.gov/"

# A generator that breaks after a few pieces, registered like any model scheme.
register_generator("failing", lambda spec, rag, settings: ScriptedGenerator(spec, fail_after=4))


def _run_app(app_path: str, page: str) -> None:
    # Executed as the AppTest script: runs app.py afresh on every rerun, as Streamlit does.
    import runpy

    runpy.run_path(app_path)["main"](page)


def open_app(page: str = "ask", **state: object) -> AppTest:
    """The app on ``page``, after its first run (``state`` is put in the session first)."""
    at = AppTest.from_function(_run_app, args=(str(APP), page), default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def ask(at: AppTest, question: str) -> AppTest:
    at.text_area(key="question").input(question)
    next(button for button in at.button if button.label == "Ask").click()
    return at.run()


def html_blocks(at: AppTest) -> list[str]:
    """Bodies of everything rendered with ``unsafe_allow_html``."""
    return [element.value for element in at.markdown if element.allow_html]


def texts(at: AppTest) -> str:
    """Every text element's body, joined (for 'is it shown' checks)."""
    parts: list[str] = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "subheader"):
        parts.extend(str(element.value) for element in at.get(kind))
    parts.extend(str(element.value) for element in at.title)
    return "\n".join(parts)


def source_cards(at: AppTest) -> list[str]:
    return [block for block in html_blocks(at) if 'class="pubmed-rag-source"' in block]


def no_errors(at: AppTest) -> None:
    assert not at.exception, [element.value for element in at.exception]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Offline, every other PUBMED_RAG_* setting at its default."""
    clear_settings_env(monkeypatch)
    monkeypatch.setenv("PUBMED_RAG_OFFLINE", "1")
    yield monkeypatch


@pytest.fixture
def sample_env(env: pytest.MonkeyPatch, sample_index: SampleIndex) -> SampleIndex:
    env.setenv("PUBMED_RAG_DATA_DIR", str(sample_index.data_dir))
    env.setenv("PUBMED_RAG_LLM", "scripted:PPIs raise the risk of fractures [PMID:{pmid1}].")
    return sample_index


_BUILT: dict[str, Path] = {}


@pytest.fixture
def hostile_env(env: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small index with the hostile record (built once per session; read-only)."""
    if "hostile" not in _BUILT:
        data_dir = tmp_path_factory.mktemp("app-index") / "data"
        build_app_index(data_dir)
        _BUILT["hostile"] = data_dir
    env.setenv("PUBMED_RAG_DATA_DIR", str(_BUILT["hostile"]))
    return _BUILT["hostile"]


# -- Ask -------------------------------------------------------------------------------------------


def test_answer_cites_linked_sources_with_metadata_badges_and_highlights(
    sample_env: SampleIndex,
) -> None:
    at = ask(open_app(), QUESTION)

    no_errors(at)
    answer = next(block for block in html_blocks(at) if "PPIs raise the risk" in block)
    # The citation is a numbered link to the cited abstract on PubMed.
    assert f'href="{PUBMED}{RETRACTED_PMID}/"' in answer and ">&#91;1&#93;</a>" in answer
    assert "[PMID:" not in answer
    cards = source_cards(at)
    assert len(cards) == 10  # PUBMED_RAG_SEARCH_LIMIT's default
    first = cards[0]
    article = sample_env.articles[RETRACTED_PMID]
    assert f'data-pmid="{RETRACTED_PMID}"' in first
    assert "RETRACTED" in first and "cited" in first
    assert "Review" in first  # publication type badge
    assert str(article.year) in first
    assert "Chinzon D" in first  # authors
    assert f'href="{PUBMED}{RETRACTED_PMID}/"' in first
    assert 'href="https://doi.org/' in first
    assert re.search(r"<mark[^>]*>long&#45;term</mark>", first)  # the question's terms
    assert "cited" not in cards[1]  # only cited sources carry the badge
    headings = [element.value for element in at.main.subheader]
    assert headings == [f"Sources: 1 cited of {len(cards)} found"]
    assert [button.label for button in at.download_button] == [
        "RIS",
        "BibTeX",
        "CSV",
        "Answer (Markdown)",
        "Save answer bundle",
        "Answer bundle (zip: JSON + Markdown)",
    ]
    assert "model scripted" in texts(at)


def test_answer_can_be_saved_as_a_bundle_that_replays(sample_env: SampleIndex) -> None:
    from rag.bundle import AnswerBundle, bundle_zip

    at = ask(open_app(), QUESTION)

    no_errors(at)
    bundle = AnswerBundle.model_validate_json(at.session_state["last_answer"]["bundle"])
    assert bundle.question == QUESTION and bundle.generator.name == "scripted"
    assert bundle.sources[0].pmid == RETRACTED_PMID
    assert bundle.sentences and bundle.index.version == "v000001"
    with zipfile.ZipFile(io.BytesIO(bundle_zip(bundle, "b"))) as archive:
        assert sorted(archive.namelist()) == ["b.json", "b.md"]
        assert AnswerBundle.model_validate_json(archive.read("b.json")) == bundle


def test_answer_stays_on_screen_across_reruns(sample_env: SampleIndex) -> None:
    at = ask(open_app(), QUESTION)
    before = source_cards(at)

    at.run()  # any widget change reruns the script; the answer must not be asked again

    no_errors(at)
    assert source_cards(at) == before
    assert any("PPIs raise the risk" in block for block in html_blocks(at))


def test_empty_question_gets_a_hint_not_an_error(sample_env: SampleIndex) -> None:
    at = ask(open_app(), "   ")

    no_errors(at)
    assert not at.error
    assert any("Type a question first" in element.value for element in at.info)
    assert not source_cards(at)


def test_overlong_question_is_trimmed_with_a_notice(sample_env: SampleIndex) -> None:
    at = ask(open_app(), QUESTION + " " + "gastric acid suppression " * 80)

    no_errors(at)
    assert any("only the first" in element.value for element in at.info)
    assert source_cards(at)


def test_verdicts_of_the_top_articles_are_tallied_under_the_answer(
    sample_env: SampleIndex, env: pytest.MonkeyPatch
) -> None:
    env.setenv("PUBMED_RAG_VERDICTS", "cues")

    at = ask(open_app(), QUESTION)

    no_errors(at)
    (block,) = [b for b in html_blocks(at) if "pubmed-rag-verdicts" in b]
    shown = re.findall(r'data-pmid="(\d+)" data-label="(yes|no|maybe)"', block)
    sources = [hit.pmid for hit in at.session_state["last_answer"]["sources"]]
    assert shown and [pmid for pmid, _ in shown] == sources[: len(shown)]
    counts = {label: sum(1 for _, got in shown if got == label) for label in ("yes", "no", "maybe")}
    assert "What the top articles say" in block and "(cues)" in block
    for label, count in counts.items():  # the tally counts what each article said
        if count:
            assert re.search(rf"\b{count} (says |say )?{label}\b", block), (label, block)


def test_off_topic_question_abstains_and_lists_the_closest_articles(
    sample_env: SampleIndex, env: pytest.MonkeyPatch
) -> None:
    env.setenv("PUBMED_RAG_LLM", "scripted:must never be shown [PMID:{pmid1}]")

    at = ask(open_app(), OFF_TOPIC)

    no_errors(at)
    assert any("does not answer this question" in element.value for element in at.info)
    assert [element.value for element in at.main.subheader] == ["Closest articles"]
    assert source_cards(at)
    assert "must never be shown" not in texts(at)
    assert "cited" not in "".join(source_cards(at))
    assert "Answer (Markdown)" not in [button.label for button in at.download_button]


@pytest.mark.parametrize(
    ("llm", "offline", "message"),
    [
        ("failing:A partial answer [PMID:{pmid1}] that breaks off", "1", "scripted failure"),
        ("/nowhere/model.gguf", "0", "no such file"),
    ],
    ids=["fails-mid-answer", "model-missing"],
)
def test_generator_failure_is_shown_and_the_sources_are_still_listed(
    sample_env: SampleIndex, env: pytest.MonkeyPatch, llm: str, offline: str, message: str
) -> None:
    env.setenv("PUBMED_RAG_LLM", llm)
    env.setenv("PUBMED_RAG_OFFLINE", offline)

    at = ask(open_app(), QUESTION)

    no_errors(at)
    errors = [element.value for element in at.error]
    assert len(errors) == 1 and "The generator failed" in errors[0] and message in errors[0]
    assert len(source_cards(at)) > 1
    assert "RIS" in [button.label for button in at.download_button]


def test_without_an_index_every_page_points_to_the_library(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("PUBMED_RAG_DATA_DIR", str(tmp_path / "empty"))

    for page in ("ask", "search"):
        at = open_app(page)
        no_errors(at)
        assert any("Nothing is indexed yet" in element.value for element in at.info)
        assert [link.proto.label for link in at.get("page_link")] == ["Open the Library"]
    at = open_app("library")
    no_errors(at)
    assert any("The index is empty" in element.value for element in at.info)
    assert any("python -m indexing ingest --query" in element.value for element in at.code)
    at = open_app("whats_new")
    no_errors(at)
    assert any("Nothing is watched yet" in element.value for element in at.info)


def test_invalid_setting_is_one_clear_error(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("PUBMED_RAG_DATA_DIR", str(tmp_path))
    env.setenv("PUBMED_RAG_TOP_K", "0")

    at = open_app()

    no_errors(at)
    assert len(at.error) == 1 and "top_k" in at.error[0].value


def test_offline_mode_and_models_in_use_are_shown(sample_env: SampleIndex) -> None:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()  # as `streamlit run` does

    no_errors(at)
    assert at.title[0].value == "Ask the literature"
    assert any("Offline mode" in element.value for element in at.warning)
    sidebar = " ".join(element.value for element in at.sidebar.caption)
    assert "offline:sentence-transformers/all-MiniLM-L6-v2" in sidebar  # the index's embedder
    assert "Generator: scripted" in sidebar


# -- Search ----------------------------------------------------------------------------------------


def search(at: AppTest, query: str) -> AppTest:
    at.text_input(key="search_query").input(query)
    return at.run()


def test_search_ranks_articles_and_charts_them_by_year(sample_env: SampleIndex) -> None:
    at = search(open_app("search"), "proton pump inhibitor safety")

    no_errors(at)
    result = at.session_state["last_search"]
    cards = source_cards(at)
    assert len(cards) == len(result.hits) == 20  # the "Articles shown" default
    assert f'data-pmid="{RETRACTED_PMID}"' in cards[0]
    assert at.get("vega_lite_chart")  # results by year
    assert [button.label for button in at.download_button] == ["RIS", "BibTeX", "CSV"]
    # The substances NLM indexed these articles with, counted over the result set.
    facets = [m.body for m in at.markdown if "pubmed-rag-facets" in m.body]
    assert facets and "Substances: " in facets[0] and "Proton Pump Inhibitors (" in facets[0]


@pytest.mark.parametrize(
    ("widget", "key", "value", "check"),
    [
        ("number_input", "f_year_from", 2023, lambda a: a.year is not None and a.year >= 2023),
        ("text_input", "f_journal", "physics in medicine", lambda a: "Physics" in a.journal),
        ("selectbox", "f_pubtype", "Review", lambda a: "Review" in a.publication_types),
        (
            "text_input",
            "f_mesh",
            "Humans",
            lambda a: "Humans" in {m.descriptor for m in a.mesh_terms},
        ),
        ("selectbox", "f_lang", "spa", lambda a: "spa" in a.languages),
        ("checkbox", "f_has_abstract", True, lambda a: a.has_abstract),
        ("checkbox", "f_exclude_retracted", True, lambda a: not a.retracted),
        (
            "text_input",
            "f_entity",
            "Anti-Bacterial Agents",
            lambda a: "Anti-Bacterial Agents" in a.chemicals,
        ),
    ],
    ids=["year", "journal", "pubtype", "mesh", "lang", "abstract", "retracted", "entity"],
)
def test_sidebar_filters_narrow_the_search(
    sample_env: SampleIndex, widget: str, key: str, value: object, check
) -> None:
    at = search(open_app("search"), "cancer risk in patients")
    unfiltered = {hit.pmid for hit in at.session_state["last_search"].hits}

    getattr(at, widget)(key=key).set_value(value)
    at.run()

    no_errors(at)
    hits = at.session_state["last_search"].hits
    assert hits and all(check(sample_env.articles[hit.pmid]) for hit in hits)
    if key != "f_has_abstract":  # the one record without an abstract matches no text at all
        assert {hit.pmid for hit in hits} != unfiltered
    assert len(source_cards(at)) == len(hits)


def test_impossible_year_range_is_explained(sample_env: SampleIndex) -> None:
    at = open_app("search")
    at.number_input(key="f_year_from").set_value(2024)
    at.number_input(key="f_year_to").set_value(2000)
    at.run()

    no_errors(at)
    assert any("year range is empty" in element.value for element in at.sidebar.error)


def test_filters_that_match_nothing_say_so(sample_env: SampleIndex) -> None:
    at = search(open_app("search"), "proton pump inhibitor")
    at.text_input(key="f_mesh").input("No Such Descriptor")
    at.run()

    no_errors(at)
    assert any("No article matches" in element.value for element in at.info)


# -- Export ----------------------------------------------------------------------------------------


def test_export_page_offers_the_last_answer_and_search(sample_env: SampleIndex) -> None:
    service = AnswerService(sample_env.settings())
    result = service.search("proton pump inhibitor", Filters(), 10)
    cited = (result.hits[1].pmid,)
    answer = {
        "question": "Are PPIs safe?",
        "text": f"Mostly [PMID:{cited[0]}].",
        "sources": result.hits,
        "cited": cited,
        "abstained": False,
        "error": "",
        "notices": (),
        "caption": "",
    }

    at = open_app("export", last_answer=answer, last_search=result)

    no_errors(at)
    choice = at.radio(key="export_choice")
    assert len(choice.options) == 2
    assert len(at.dataframe[0].value) == 10
    at.checkbox(key="export_cited_only").check()
    at.run()
    assert list(at.dataframe[0].value["PMID"]) == list(cited)
    at.radio(key="export_choice").set_value(choice.options[1])
    at.run()
    assert len(at.dataframe[0].value) == 10
    assert [button.label for button in at.download_button] == ["RIS", "BibTeX", "CSV"]


def test_export_page_without_results_says_what_to_do(sample_env: SampleIndex) -> None:
    at = open_app("export")

    no_errors(at)
    assert any("Ask a question or run a search first" in element.value for element in at.info)
    assert not at.download_button


# -- Safety ----------------------------------------------------------------------------------------


def _assert_inert(at: AppTest) -> None:
    blocks = html_blocks(at)
    assert blocks
    for block in blocks:
        lowered = block.lower()
        for marker in HOSTILE_MARKERS:
            assert marker.lower() not in lowered, (marker, block[:300])
    for element in at.markdown:  # markdown without HTML must not carry it either
        if not element.allow_html:
            assert "<script" not in element.value.lower()


def test_hostile_abstract_and_model_output_render_as_text(
    hostile_env: Path, env: pytest.MonkeyPatch
) -> None:
    env.setenv(
        "PUBMED_RAG_LLM",
        f"scripted:Kidney harm {SCRIPT} [PMID:{{pmid1}}] {IMG} [x](javascript:alert(1)) $5",
    )

    at = ask(open_app(), f"Is long-term use of proton pump inhibitors safe? {SCRIPT}")

    no_errors(at)
    _assert_inert(at)
    card = next(card for card in source_cards(at) if f'data-pmid="{HOSTILE_PMID}"' in card)
    # Shown as the characters the abstract holds: escaped, never dropped.
    assert "&#60;script&#62;window&#46;&#95;&#95;pwned" in card
    assert "onerror&#61;" in card and "&#36;5" in card
    answer = next(block for block in html_blocks(at) if "Kidney harm" in block)
    assert "&#60;script&#62;" in answer and "&#60;img src&#61;x onerror&#61;" in answer

    at = search(open_app("search"), "proton pump inhibitor kidney risk")
    no_errors(at)
    _assert_inert(at)
    assert any(f'data-pmid="{HOSTILE_PMID}"' in card for card in source_cards(at))


# -- Library ---------------------------------------------------------------------------------------


def test_library_shows_the_index_models_queries_and_history(sample_env: SampleIndex) -> None:
    at = open_app("library")

    no_errors(at)
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Articles"] == f"{len(sample_env.articles):,}"
    assert metrics["Index version"] == "v000001"
    assert "offline:SmolLM2" in texts(at) or "scripted" in texts(at)
    assert any("No tracked query" in element.value for element in at.caption)


def test_library_ingests_a_pubmed_query_with_progress(
    env: pytest.MonkeyPatch, tmp_path: Path, metapub_records: dict[str, bytes]
) -> None:
    subset = dict(sorted(metapub_records.items())[:6])
    with EutilsServer(subset) as server:
        env.setenv("PUBMED_RAG_DATA_DIR", str(tmp_path / "data"))
        env.setenv("PUBMED_RAG_EUTILS_URL", server.url)
        env.setenv("PUBMED_RAG_NCBI_BACKOFF_S", "0.01")
        at = open_app("library")
        at.text_input(key="ingest_term").input("all[sb]")
        at.number_input(key="ingest_max").set_value(5)
        at.run()
        commands = [element.value for element in at.code]
        assert commands == ["python -m indexing ingest --query 'all[sb]' --max 5"]

        at.button(key="ingest_query_go").click()
        at.run()

    no_errors(at)
    assert any("5 added" in element.value for element in at.success)
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Articles"] == "5"
    assert list(at.dataframe[0].value["Query"]) == ["all[sb]"]
    assert list(at.dataframe[1].value["Status"]) == ["ok"]


def test_library_reports_an_unreachable_ncbi_in_one_line(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("PUBMED_RAG_DATA_DIR", str(tmp_path / "data"))
    env.setenv("PUBMED_RAG_EUTILS_URL", "http://127.0.0.1:9/")  # nothing listens there
    env.setenv("PUBMED_RAG_NCBI_MAX_TRIES", "1")

    at = open_app("library")
    at.text_input(key="ingest_term").input("all[sb]")
    at.button(key="ingest_query_go").click()
    at.run()

    no_errors(at)
    assert len(at.error) == 1 and at.error[0].value.startswith("Nothing was added:")
    assert any("The index is empty" in element.value for element in at.info)


def test_library_ingests_a_folder_of_xml_and_rejects_paths_outside_the_import_folder(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.conftest import METAPUB_PMIDS

    folder = tmp_path / "data" / "import" / "xml"  # the default import folder
    folder.mkdir(parents=True)
    for path in sorted(METAPUB_PMIDS.glob("*.xml"))[:3]:
        shutil.copy(path, folder / path.name)
    env.setenv("PUBMED_RAG_DATA_DIR", str(tmp_path / "data"))
    at = open_app("library")
    at.radio(key="ingest_source").set_value("PubMed XML files")
    at.run()
    for given, message in [
        ("missing", "No such file or folder"),
        (str(METAPUB_PMIDS), "outside the import folder"),
        ("xml/../../..", "outside the import folder"),
    ]:
        at.text_input(key="ingest_path").input(given)
        at.run()
        at.button(key="ingest_xml_go").click()
        at.run()
        assert any(message in element.value for element in at.error), given

    at.text_input(key="ingest_path").input(str(folder))
    at.run()
    at.button(key="ingest_xml_go").click()
    at.run()

    no_errors(at)
    assert any("3 added" in element.value for element in at.success)
    assert {metric.label: metric.value for metric in at.metric}["Articles"] == "3"


def test_a_newly_published_version_is_served_without_restart(
    hostile_env: Path, env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from indexing.store.files import FileStore

    data_dir = tmp_path / "data"
    shutil.copytree(hostile_env, data_dir)
    env.setenv("PUBMED_RAG_DATA_DIR", str(data_dir))
    at = search(open_app("search"), "proton pump inhibitor kidney risk")
    assert any(f'data-pmid="{HOSTILE_PMID}"' in card for card in source_cards(at))

    store = FileStore(Settings(data_dir=data_dir, offline=True))
    with store.lock(), store.open_writer() as writer:
        writer.delete_pmids([HOSTILE_PMID])
        writer.publish("test")
    at.run()

    no_errors(at)
    assert "v000002" in at.session_state["last_search"].index_version
    assert not any(f'data-pmid="{HOSTILE_PMID}"' in card for card in source_cards(at))


# -- Study designs and similar articles --------------------------------------------------------


def test_every_source_shows_its_design_and_the_design_filter_narrows(
    sample_env: SampleIndex,
) -> None:
    from indexing.evidence_level import article_evidence

    at = search(open_app("search"), "cancer risk in patients")
    cards = source_cards(at)
    assert cards and all('class="pubmed-rag-evidence-level"' in card for card in cards)

    at.multiselect(key="f_evidence").set_value(["review", "meta-analysis"])
    at.run()

    no_errors(at)
    hits = at.session_state["last_search"].hits
    assert hits and {hit.evidence for hit in hits} <= {"review", "meta-analysis"}
    for hit in hits:
        assert article_evidence(sample_env.articles[hit.pmid])[0].id == hit.evidence
    levels = ('data-level="review"', 'data-level="meta&#45;analysis"')  # attributes escaped
    assert all(any(level in card for level in levels) for card in source_cards(at))


def test_rank_stronger_designs_higher_is_off_by_default_and_reorders_when_on(
    sample_env: SampleIndex,
) -> None:
    at = search(open_app("search"), "cancer risk in patients")
    assert at.toggle(key="f_rank_evidence").value is False
    plain = [(hit.pmid, hit.score) for hit in at.session_state["last_search"].hits]

    at.toggle(key="f_rank_evidence").set_value(True)
    at.run()

    no_errors(at)
    boosted = [(hit.pmid, hit.score) for hit in at.session_state["last_search"].hits]
    assert boosted != plain


def similar_buttons(at: AppTest) -> list:
    return [button for button in at.button if button.label == "Similar articles"]


def test_similar_articles_button_switches_search_to_similar_mode_and_back(
    sample_env: SampleIndex,
) -> None:
    at = search(open_app("search"), "proton pump inhibitor safety")
    first = at.session_state["last_search"].hits[0].pmid
    buttons = similar_buttons(at)
    assert len(buttons) == len(source_cards(at))

    buttons[0].click()
    at.run()

    no_errors(at)
    result = at.session_state["last_search"]
    assert at.session_state["similar_pmid"] == first
    assert f"Similar to PMID {first}" in texts(at)
    pmids = [hit.pmid for hit in result.hits]
    assert pmids and first not in pmids
    assert [c.split('data-pmid="')[1].split('"')[0] for c in source_cards(at)] == pmids

    next(button for button in at.button if button.label == "Back to search").click()
    at.run()

    no_errors(at)
    assert "similar_pmid" not in at.session_state
    assert at.session_state["last_search"].hits[0].pmid == first


def test_similar_articles_from_an_answer_open_the_search_page(sample_env: SampleIndex) -> None:
    at = ask(open_app(), QUESTION)
    buttons = similar_buttons(at)
    assert buttons

    buttons[0].click()
    at.run()

    no_errors(at)
    assert at.session_state["similar_pmid"] == RETRACTED_PMID
    assert f"Similar to PMID {RETRACTED_PMID}" in texts(at)
    assert RETRACTED_PMID not in [hit.pmid for hit in at.session_state["last_search"].hits]


# -- Living searches ---------------------------------------------------------------------------


def test_whats_new_lists_the_articles_an_update_added_linked_and_escaped(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from indexing.store.files import FileStore
    from rag.settings import RagSettings
    from rag.watch.check import add_watch, run_watches
    from rag.watch.store import Watch
    from tests.app_index import app_articles

    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir, offline=True)
    articles = app_articles()
    hostile = articles.pop(HOSTILE_PMID)
    build_index(data_dir, articles, settings)
    env.setenv("PUBMED_RAG_DATA_DIR", str(data_dir))
    service = AnswerService(settings, RagSettings())
    watch = Watch("w1", "search", "proton pump inhibitor kidney risk", created_at="2026-01-01")
    add_watch(service, settings.watches_path, watch, top_n=5, history=10)
    store = FileStore(settings)
    with store.lock(), store.open_writer() as writer:  # the update: the hostile record arrives
        writer.upsert_articles([hostile], source="xml")
        version = writer.publish("test").version
    summary = run_watches(service, settings.watches_path, top_n=5, history=10)
    assert [check.new[0].pmid for _, check in summary.changed] == [HOSTILE_PMID]

    at = open_app("whats_new")

    no_errors(at)
    _assert_inert(at)
    blocks = "\n".join(html_blocks(at))
    assert f'href="{PUBMED}{HOSTILE_PMID}/"' in blocks
    assert "&#60;script&#62;window&#46;&#95;&#95;pwned" in blocks  # the title, as characters
    checked = summary.checked[0][1].checked_at
    assert f"Last checked {checked[:4]}&#45;" in blocks and f"against index {version}" in blocks


def test_watch_buttons_save_the_search_and_the_question(
    hostile_env: Path, env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from rag.watch.store import load

    data_dir = tmp_path / "data"
    shutil.copytree(hostile_env, data_dir)
    env.setenv("PUBMED_RAG_DATA_DIR", str(data_dir))
    env.setenv("PUBMED_RAG_LLM", "scripted:PPIs raise the risk of fractures [PMID:{pmid1}].")

    at = search(open_app("search"), "proton pump inhibitor kidney risk")
    next(button for button in at.button if button.label == "Watch this search").click()
    at.run()
    no_errors(at)
    assert any("Watching this search" in element.value for element in at.success)

    at = ask(open_app(), QUESTION)
    next(button for button in at.button if button.label == "Watch this question").click()
    at.run()
    no_errors(at)

    saved = load(Settings(data_dir=data_dir).watches_path).watches
    assert [(watch.kind, watch.text) for watch in saved] == [
        ("search", "proton pump inhibitor kidney risk"),
        ("question", QUESTION),
    ]
    assert all(watch.last is not None and watch.last.baseline for watch in saved)
    at = open_app("whats_new")
    no_errors(at)
    assert "Nothing new since it was saved" in "\n".join(html_blocks(at))
