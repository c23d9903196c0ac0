"""``python -m rag`` in-process: search and ask, text and JSON, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexing.evidence_level import article_evidence
from rag.__main__ import cli
from tests.fixtures_index import RETRACTED_PMID, SampleIndex, rag_env, sample_index

__all__ = ["rag_env", "sample_index"]

QUESTION = "Is long-term use of proton pump inhibitors safe?"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_search_json_lists_sources_with_their_fields(rag_env: SampleIndex) -> None:
    code, out, _ = run("search", "proton pump inhibitor safety", "--json", "--limit", "3")

    assert code == 0
    sources = json.loads(out)["sources"]
    assert len(sources) == 3
    assert sources[0]["pmid"] == RETRACTED_PMID
    for source in sources:
        assert {"pmid", "title", "year", "score", "journal", "pubtypes", "passage"} <= set(source)
        assert source["title"] == rag_env.articles[source["pmid"]].title


@pytest.mark.parametrize(
    ("flags", "check"),
    [
        (["--year-from", "2023", "--year-to", "2023"], lambda a: a.year == 2023),
        (["--journal", "physics in medicine"], lambda a: "Physics" in a.journal),
        (["--pubtype", "Review"], lambda a: "Review" in a.publication_types),
        (["--mesh", "humans"], lambda a: "Humans" in {m.descriptor for m in a.mesh_terms}),
        (["--lang", "spa"], lambda a: "spa" in a.languages),
        (["--has-abstract"], lambda a: a.has_abstract),
        (["--exclude-retracted"], lambda a: not a.retracted),
        (
            ["--evidence", "meta-analysis, systematic-review"],
            lambda a: article_evidence(a)[0].id in ("meta-analysis", "systematic-review"),
        ),
        (["--humans"], lambda a: "Humans" in {m.descriptor for m in a.mesh_terms}),
    ],
)
def test_search_filters_return_only_matching_articles(
    rag_env: SampleIndex, flags: list[str], check
) -> None:
    code, out, _ = run("search", "cancer risk in patients", "--json", "--limit", "50", *flags)

    assert code == 0
    pmids = [source["pmid"] for source in json.loads(out)["sources"]]
    assert pmids
    assert all(check(rag_env.articles[pmid]) for pmid in pmids)


def test_search_text_shows_numbered_pubmed_links(rag_env: SampleIndex) -> None:
    code, out, _ = run("search", "Helicobacter pylori", "-n", "2")

    assert code == 0
    assert out.startswith("[1] ")
    assert "https://pubmed.ncbi.nlm.nih.gov/" in out
    assert "[2] " in out and "[3] " not in out


def test_ask_json_has_answer_citations_sources_timings(
    rag_env: SampleIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBMED_RAG_LLM", "scripted:Mostly safe [PMID:{pmid1}] [PMID:123].")

    code, out, _ = run("ask", QUESTION, "--json")

    assert code == 0
    data = json.loads(out)
    assert data["answer"] == f"Mostly safe [PMID:{RETRACTED_PMID}]."
    assert data["citations"] == [RETRACTED_PMID]
    assert data["removed_citations"] == ["123"]
    assert data["abstained"] is False
    assert set(data["citations"]) <= {source["pmid"] for source in data["sources"]}
    assert {"pmid", "title", "year", "score"} <= set(data["sources"][0])
    assert {"retrieval_ms", "first_token_ms", "tokens_per_s", "total_ms"} <= set(data["timings"])


def test_ask_streams_the_answer_then_numbered_sources(
    rag_env: SampleIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBMED_RAG_LLM", "scripted:Bismuth quadruple therapy [PMID:{pmid1}].")

    code, out, err = run("ask", "How should Helicobacter pylori infection be treated?")

    assert code == 0
    evidence, _, rest = out.partition("Answer:\n")
    answer, _, sources = rest.partition("Sources:")
    # The key evidence comes first, quoted with PMIDs; then the streamed answer, then the check.
    assert evidence.startswith("Key evidence:\n  - ") and "[PMID:" in evidence
    assert answer.strip().startswith("Bismuth quadruple therapy [PMID:")
    assert "Checked against the cited abstracts:\n  [supported] Bismuth" in answer
    assert "[1] " in sources and "https://pubmed.ncbi.nlm.nih.gov/" in sources
    assert sources.count("*[") == 1  # the one cited source is marked
    assert "retrieval" in err


def test_ask_abstains_when_filters_remove_the_only_relevant_article(
    rag_env: SampleIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBMED_RAG_LLM", "scripted:must not be used [PMID:{pmid1}]")

    code, out, _ = run("ask", QUESTION, "--exclude-retracted")

    assert code == 0
    assert out.startswith("The indexed literature does not answer this question")
    assert "Closest articles:" in out and RETRACTED_PMID not in out
    assert "must not be used" not in out


def test_ask_off_topic_abstains_and_shows_closest_articles(rag_env: SampleIndex) -> None:
    code, out, _ = run("ask", "How do I change a flat tyre on a racing bicycle?", "--json")

    assert code == 0
    data = json.loads(out)
    assert data["abstained"] is True
    assert "does not answer" in data["answer"]
    assert data["citations"] == []
    assert data["sources"]


def test_ask_with_the_real_offline_model(
    rag_env: SampleIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small prompt and answer keep this under ~10 s on 2 cores.
    monkeypatch.setenv("PUBMED_RAG_MAX_ANSWER_TOKENS", "48")
    monkeypatch.setenv("PUBMED_RAG_TOP_K", "2")
    monkeypatch.setenv("PUBMED_RAG_N_CTX", "2048")

    code, out, err = run(
        "ask", "What are the risks of long-term proton pump inhibitor use?", "--json"
    )

    assert code == 0, err
    data = json.loads(out)
    assert data["answer"] and data["abstained"] is False
    assert set(data["citations"]) <= {source["pmid"] for source in data["sources"]}
    assert data["model"].startswith("offline:SmolLM2")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "   "], "query is empty"),
        (["ask", ""], "query is empty"),
        (["search", "x", "--year-from", "2024", "--year-to", "2000"], "year range"),
        (["search", "x", "--evidence", "rct,nonsense"], "unknown evidence level 'nonsense'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    rag_env: SampleIndex, args: list[str], message: str
) -> None:
    code, out, err = run(*args)

    assert code == 2
    assert err.strip().count("\n") == 0 and message in err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("pmid", ["99999998", "not-a-pmid"])
def test_similar_to_an_unknown_pmid_is_one_error_line_and_exit_2(
    rag_env: SampleIndex, pmid: str
) -> None:
    code, out, err = run("similar", pmid)

    assert code == 2 and out == ""
    # (the encoder's loading bar may precede it on stderr: the index is opened to look)
    assert err.strip().splitlines()[-1] == (
        f"error: PMID {pmid!r} is not in the index (version v000001)"
    )
    assert "Traceback" not in err


def test_missing_index_is_one_line_and_exit_2(
    rag_env: SampleIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from indexing.settings import get_settings

    monkeypatch.setenv("PUBMED_RAG_DATA_DIR", str(tmp_path / "empty"))
    get_settings.cache_clear()

    code, _, err = run("search", "cancer")

    assert code == 2
    assert err.startswith("error: no index has been published")
    assert err.strip().count("\n") == 0


def test_invalid_setting_is_a_usage_error(
    rag_env: SampleIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBMED_RAG_ANSWER_PROMPT", "no placeholders")

    code, _, err = run("ask", QUESTION)

    assert code == 2
    assert "answer_prompt" in err and "Traceback" not in err


def test_help_shows_examples_and_filters() -> None:
    code, out, _ = run("ask", "--help")
    assert code == 0
    for flag in (
        "--year-from",
        "--journal",
        "--pubtype",
        "--mesh",
        "--lang",
        "--exclude-retracted",
        "--evidence",
        "--humans",
        "--rank-by-evidence",
    ):
        assert flag in out
    assert "Examples:" in out
    code, out, _ = run("similar", "--help")
    assert code == 0 and "--evidence" in out and "--limit" in out


def test_search_shows_the_design_level_of_every_source(rag_env: SampleIndex) -> None:
    code, out, _ = run("search", "proton pump inhibitor safety", "--json", "--limit", "5")

    assert code == 0
    for source in json.loads(out)["sources"]:
        level, population = article_evidence(rag_env.articles[source["pmid"]])
        assert source["evidence"] == level.id and source["evidence_label"] == level.label
        assert source["population"] == list(population)
        assert source["cites_retracted"] == []
    code, out, _ = run("search", "proton pump inhibitor safety", "-n", "1")
    assert "[meta-analysis; humans]" in out  # the retracted PPI review is a meta-analysis


def test_rank_by_evidence_flag_reorders_by_design(rag_env: SampleIndex) -> None:
    args = ("search", "cancer risk in patients", "--json", "--limit", "20")
    plain = json.loads(run(*args)[1])["sources"]
    boosted = json.loads(run(*args, "--rank-by-evidence")[1])["sources"]
    off = json.loads(run(*args, "--no-rank-by-evidence")[1])["sources"]

    assert [s["pmid"] for s in off] == [s["pmid"] for s in plain]
    assert [s["score"] for s in boosted] != [s["score"] for s in plain]


def test_similar_json_lists_neighbours_in_the_search_shape(rag_env: SampleIndex) -> None:
    code, out, _ = run("similar", RETRACTED_PMID, "--json", "--limit", "4", "--humans")

    assert code == 0
    payload = json.loads(out)
    assert payload["query"].startswith(f"similar to PMID {RETRACTED_PMID}")
    sources = payload["sources"]
    assert len(sources) == 4 and RETRACTED_PMID not in {s["pmid"] for s in sources}
    assert [s["score"] for s in sources] == sorted((s["score"] for s in sources), reverse=True)
    for source in sources:
        assert {"pmid", "title", "score", "evidence", "population", "url"} <= set(source)
        assert "humans" in source["population"]


def test_similar_text_is_numbered_articles(rag_env: SampleIndex) -> None:
    code, out, _ = run("similar", RETRACTED_PMID, "-n", "2")

    assert code == 0
    assert out.startswith("[1] ") and "\n[2] " in out and "pubmed.ncbi.nlm.nih.gov" in out


def test_search_verdicts_tally_the_top_articles_with_pubmed_links(rag_env: SampleIndex) -> None:
    result = CliRunner().invoke(
        cli, ["search", "proton pump inhibitors", "--verdicts", "cues", "--json"]
    )

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    tally = payload["verdicts"]
    assert tally["model"] == "cues"
    assert [a["pmid"] for a in tally["articles"]] == [s["pmid"] for s in payload["sources"][:6]]
    assert sum(tally["counts"].values()) == len(tally["articles"])
    assert all(a["url"].endswith(f"/{a['pmid']}/") for a in tally["articles"])

    text = CliRunner().invoke(cli, ["search", "proton pump inhibitors", "--verdicts", "cues"])
    assert text.exit_code == 0 and "verdicts (cues): " in text.output
