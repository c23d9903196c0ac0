"""Evaluation: metric arithmetic, BEIR files, label reading, and ``python -m rag eval beir``."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluation.beir import BASELINES, load_beir, read_qrels
from evaluation.errors import EvalDataError
from evaluation.metrics import METRICS, mrr_at_k, ndcg_at_k, recall_at_k, score_query, score_run
from evaluation.pubmedqa import load_pubmedqa, read_label, spread
from rag.__main__ import cli
from tests.conftest import SHARED_DATA, needs_shared_data

SCIFACT = SHARED_DATA / "scifact"

# -- metrics, against values computed by hand ----------------------------------------------------

GRADED = {"a": 1, "c": 2, "d": 1, "z": 0}
# ideal order c(2), a(1), d(1): 2/log2(2) + 1/log2(3) + 1/log2(4)
IDEAL_DCG = 2 + 1 / math.log2(3) + 0.5


def test_ndcg_uses_graded_gains_over_the_ideal_order() -> None:
    # a at rank 1 (gain 1 / log2 2), c at rank 3 (gain 2 / log2 4)
    assert ndcg_at_k(["a", "b", "c"], GRADED, 10) == pytest.approx((1 + 1) / IDEAL_DCG)
    assert ndcg_at_k(["c", "a", "d"], GRADED, 10) == pytest.approx(1.0)


def test_ndcg_counts_a_repeated_document_once_and_stops_at_k() -> None:
    assert ndcg_at_k(["a", "a", "c"], GRADED, 10) == pytest.approx(
        (1 + 2 / math.log2(3)) / IDEAL_DCG
    )
    # cut at k=1: only a counts; the ideal is cut too (c alone: 2)
    assert ndcg_at_k(["a", "c"], GRADED, 1) == pytest.approx(1 / 2)


def test_ndcg_is_zero_without_relevant_documents() -> None:
    assert ndcg_at_k(["a"], {"a": 0}, 10) == 0.0


def test_recall_is_the_share_of_relevant_documents_found_in_the_first_k() -> None:
    ranking = ["x", "a", "c", "d"]
    assert recall_at_k(ranking, GRADED, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranking, GRADED, 3) == pytest.approx(2 / 3)
    assert recall_at_k(ranking, GRADED, 100) == pytest.approx(1.0)
    assert recall_at_k(["z"], GRADED, 10) == 0.0  # judged but not relevant


def test_mrr_is_the_reciprocal_rank_of_the_first_relevant_document() -> None:
    assert mrr_at_k(["x", "y", "c"], GRADED, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["x", "y", "c"], GRADED, 2) == 0.0
    assert mrr_at_k(["z", "x"], GRADED, 10) == 0.0


def test_score_run_averages_judged_queries_and_scores_missing_ones_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}  # q3 has nothing relevant
    top = {"q1": ["a"], "q3": ["c"]}  # q2 missing from the run
    deep = {"q1": ["a"], "q2": ["x"] * 50 + ["b"]}

    scores = score_run(top, qrels, deep)

    assert set(scores) == set(METRICS)
    assert scores["ndcg@10"] == 0.5
    assert scores["mrr@10"] == 0.5
    assert scores["recall@10"] == 0.5
    assert scores["recall@100"] == 1.0


@needs_shared_data(SCIFACT)
@pytest.mark.parametrize("graded", [False, True], ids=["binary", "graded"])
def test_metrics_match_trec_eval_on_the_scifact_qrels(graded: bool) -> None:
    # trec_eval (via ir-measures and pytrec_eval) is the reference BEIR reports against.
    ir_measures = pytest.importorskip("ir_measures")
    qrels = read_qrels(SCIFACT / "qrels-test.tsv")
    if graded:  # every other judgment counts double, to check the linear gain
        qrels = {
            qid: {doc: rel * (1 + n % 2) for n, (doc, rel) in enumerate(rels.items())}
            for qid, rels in qrels.items()
        }
    others = sorted(
        {doc for rels in read_qrels(SCIFACT / "qrels-train.tsv").values() for doc in rels}
    )
    chooser = random.Random(18)
    run: dict[str, list[str]] = {}
    for qid, rels in qrels.items():
        pool = list(rels) + [doc for doc in chooser.sample(others, 130) if doc not in rels]
        chooser.shuffle(pool)
        run[qid] = pool[:120]  # some relevant documents fall below rank 100, some are left out

    measures = [
        ir_measures.nDCG @ 10,
        ir_measures.R @ 10,
        ir_measures.R @ 100,
        ir_measures.RR @ 10,
    ]
    names = dict(zip(map(str, measures), METRICS, strict=True))
    reference_qrels = [
        ir_measures.Qrel(qid, doc, rel) for qid, rels in qrels.items() for doc, rel in rels.items()
    ]
    reference_run = [
        ir_measures.ScoredDoc(qid, doc, float(len(ranking) - rank))  # distinct, best first
        for qid, ranking in run.items()
        for rank, doc in enumerate(ranking)
    ]
    expected: dict[str, dict[str, float]] = {}
    for metric in ir_measures.iter_calc(measures, reference_qrels, reference_run):
        expected.setdefault(metric.query_id, {})[names[str(metric.measure)]] = metric.value

    assert set(expected) == set(qrels)
    for qid, values in expected.items():
        assert score_query(run[qid], run[qid], qrels[qid]) == pytest.approx(values), qid
    aggregate = ir_measures.calc_aggregate(measures, reference_qrels, reference_run)
    assert score_run(run, qrels) == pytest.approx(
        {names[str(measure)]: value for measure, value in aggregate.items()}, abs=1e-4
    )


# -- BEIR files ----------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def beir_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    corpus = write(
        tmp_path / "corpus.jsonl",
        '{"_id": "d1", "title": "T1", "text": "one"}\n\n{"_id": 2, "text": "two"}\n',
    )
    queries = write(tmp_path / "queries.jsonl", '{"_id": "q1", "text": "first"}\n')
    qrels = write(tmp_path / "qrels.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\t2\t0\n")
    return corpus, queries, qrels


def test_load_beir_reads_a_collection_with_graded_judgments(
    beir_files: tuple[Path, Path, Path],
) -> None:
    collection = load_beir(*beir_files)

    assert set(collection.corpus) == {"d1", "2"}  # numeric ids become strings
    assert collection.corpus["d1"].title == "T1"
    assert collection.queries == {"q1": "first"}
    assert collection.qrels == {"q1": {"d1": 2, "2": 0}}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("corpus", '{"_id": "d1", "text": "one"}\n{"_id": "d2", "text": \n', r"corpus.jsonl:2: not JSON"),
        ("corpus", '["d1", "one"]\n', r"corpus.jsonl:1: expected a JSON object"),
        ("corpus", '{"title": "no id", "text": "x"}\n', r"corpus.jsonl:1: missing _id"),
        ("corpus", "\n", r"corpus.jsonl holds no documents"),
        ("queries", '{"_id": "q9", "text": "other"}\n', r"no query of .*qrels.tsv has a text"),
        ("qrels", "query-id\tcorpus-id\tscore\nq1\td1\n", r"qrels.tsv:2: expected 'query-id corpus-id score'"),
        ("qrels", "query-id\tcorpus-id\tscore\nq1\td1\thigh\n", r"qrels.tsv:2: score 'high' is not an integer"),
        ("qrels", "query-id\tcorpus-id\tscore\n", r"qrels.tsv holds no judgments"),
    ],
)  # fmt: skip
def test_malformed_beir_files_fail_with_file_line_and_reason(
    beir_files: tuple[Path, Path, Path], name: str, content: str, message: str
) -> None:
    corpus, queries, qrels = beir_files
    write({"corpus": corpus, "queries": queries, "qrels": qrels}[name], content)

    with pytest.raises(EvalDataError, match=message):
        load_beir(corpus, queries, qrels)


def test_unreadable_beir_file_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(EvalDataError, match="cannot read"):
        read_qrels(tmp_path / "missing.tsv")
    write(tmp_path / "latin1.tsv", "q1\td1\t1\n").write_bytes(b"q\xe91\td1\t1\n")
    with pytest.raises(EvalDataError, match="cannot read"):
        read_qrels(tmp_path / "latin1.tsv")


# -- reading yes/no/maybe ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("Yes, statins lower the risk [PMID:1].", "yes"),
        ("**No.** In a randomized trial [PMID:2] ...", "no"),
        ("  maybe: the evidence is mixed.", "maybe"),
        ("The evidence is unclear [PMID:3]. Yes, one trial found ...", "maybe"),
        ("It is inconclusive whether ...", "maybe"),
        ("Based on [PMID:4], yes it does.", "yes"),
        ("According to the trial, no effect was seen.", "no"),
        ("Nobody has studied this. Yes.", None),  # 'no' only inside 'nobody'; 2nd sentence
        ("Statins reduce LDL cholesterol [PMID:5].", None),
        ("", None),
    ],
)
def test_read_label_takes_the_first_word_or_the_first_sentence(
    answer: str, label: str | None
) -> None:
    assert read_label(answer) == label


# -- python -m rag eval beir, end to end on real SciFact lines ------------------------------------


def tiny_scifact(folder: Path, queries: int = 8, distractors: int = 24) -> tuple[Path, Path, Path]:
    """A BEIR collection of real SciFact lines: a few test queries, their documents, others."""
    qrels_lines = (SCIFACT / "qrels-test.tsv").read_text(encoding="utf-8").splitlines()
    judged: dict[str, list[str]] = {}
    for line in qrels_lines[1:]:
        qid, doc, _ = line.split("\t")
        judged.setdefault(qid, []).append(doc)
    chosen = list(judged)[:queries]
    wanted = {doc for qid in chosen for doc in judged[qid]}
    corpus_lines, extra = [], 0
    with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)["_id"]
            if doc in wanted or extra < distractors:
                extra += doc not in wanted
                corpus_lines.append(line)
    query_lines = [
        line
        for line in (SCIFACT / "queries.jsonl").read_text(encoding="utf-8").splitlines()
        if json.loads(line)["_id"] in chosen
    ]
    qrels = [qrels_lines[0]] + [f"{q}\t{d}\t1" for q in chosen for d in judged[q]]
    return (
        write(folder / "corpus.jsonl", "".join(corpus_lines)),
        write(folder / "queries.jsonl", "\n".join(query_lines) + "\n"),
        write(folder / "qrels.tsv", "\n".join(qrels) + "\n"),
    )


@needs_shared_data(SCIFACT)
def test_eval_beir_writes_product_and_txtai_baseline_metrics(
    tmp_path: Path, settings_env: Path
) -> None:
    corpus, queries, qrels = tiny_scifact(tmp_path)
    out = tmp_path / "result.json"

    result = CliRunner().invoke(
        cli,
        ["eval", "beir", "--corpus", str(corpus), "--queries", str(queries),
         "--qrels", str(qrels), "--out", str(out), "--quiet"],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text(encoding="utf-8"))
    assert set(data) == {
        "product", "product_latency_ms", "ablations", "baselines", "config", "machine"
    }  # fmt: skip
    assert set(data["baselines"]) == set(BASELINES)
    for scores in [data["product"], *data["baselines"].values()]:
        assert set(scores) == set(METRICS)
        assert all(0.0 <= value <= 1.0 for value in scores.values())
    # The relevant abstracts are among a few dozen: real retrieval finds most of them.
    assert data["product"]["recall@10"] >= 0.6
    assert data["baselines"]["txtai-bm25"]["recall@10"] >= 0.6
    assert data["config"]["queries"] == 8
    assert data["config"]["product"]["encoder"]["precision"] in ("bf16", "int8", "fp32")
    assert data["config"]["product"]["keyword_stemmer"] == "english"
    assert data["config"]["product"]["reranker"] is None
    # Each stage switched off in turn, on the same index; no reranker row without a reranker.
    assert set(data["ablations"]) == {
        "without the dense side (BM25 only)", "without BM25 (dense only)"
    }  # fmt: skip
    assert all(set(scores) == set(METRICS) for scores in data["ablations"].values())
    latency = data["product_latency_ms"]
    assert latency["n"] == 8 and 0 < latency["p50"] <= latency["p95"] <= latency["max"]
    assert data["machine"]["cores"]
    assert not list(tmp_path.glob("data/index"))  # the temporary index did not land in data/


def test_eval_beir_reports_a_malformed_file_in_one_line(tmp_path: Path) -> None:
    corpus = write(tmp_path / "corpus.jsonl", "not json\n")
    queries = write(tmp_path / "queries.jsonl", '{"_id": "q1", "text": "x"}\n')
    qrels = write(tmp_path / "qrels.tsv", "q1\td1\t1\n")

    result = CliRunner().invoke(
        cli, ["eval", "beir", "--corpus", str(corpus), "--queries", str(queries),
              "--qrels", str(qrels), "--quiet"],
    )  # fmt: skip

    assert result.exit_code != 0
    assert "corpus.jsonl:1: not JSON" in result.output
    assert "Traceback" not in result.output


@needs_shared_data(SHARED_DATA / "pubmedqa")
def test_a_limited_pubmedqa_run_samples_every_label_of_the_test_split() -> None:
    _, truth = load_pubmedqa(SHARED_DATA / "pubmedqa")
    questions = list(truth)

    sample = spread(questions, 40)

    assert len(sample) == len(set(sample)) == 40 and sample == sorted(sample, key=questions.index)
    # The split is grouped by label: its first 40 questions are all "yes".
    assert {truth[pmid] for pmid in questions[:40]} == {"yes"}
    assert {truth[pmid] for pmid in sample} == {"yes", "no", "maybe"}
    assert spread(questions, 900) == questions


def _pubmedqa_subset(folder: Path, questions: int, others: int) -> list[str]:
    """A small PubMedQA folder from the real files: ``questions`` test questions (spread over
    the split) and ``others`` further abstracts to retrieve among; the test PMIDs."""
    raw = json.loads((SHARED_DATA / "pubmedqa" / "ori_pqal.json").read_text(encoding="utf-8"))
    _, truth = load_pubmedqa(SHARED_DATA / "pubmedqa")
    test = spread(list(truth), questions)
    extra = [pmid for pmid in raw if pmid not in truth][:others]
    folder.mkdir()
    (folder / "ori_pqal.json").write_text(json.dumps({p: raw[p] for p in [*test, *extra]}))
    (folder / "test_ground_truth.json").write_text(json.dumps({p: truth[p] for p in test}))
    return test


@needs_shared_data(SHARED_DATA / "pubmedqa")
def test_pubmedqa_answers_file_resumes_a_run_cut_short_and_refuses_other_settings(
    settings_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBMED_RAG_MAX_ANSWER_TOKENS", "24")
    data = tmp_path / "pubmedqa"
    test = _pubmedqa_subset(data, questions=2, others=4)
    answers, out = tmp_path / "answers.jsonl", tmp_path / "result.json"
    command = ["eval", "pubmedqa", "--data", str(data), "--answers", str(answers), "--quiet"]

    first = CliRunner().invoke(cli, [*command, "--out", str(out)])
    assert first.exit_code == 0, first.output
    lines = answers.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines[1:]]
    assert {(row["setting"], row["pmid"]) for row in rows} == {
        (setting, pmid) for setting in ("retrieval", "gold") for pmid in test
    }
    assert json.loads(out.read_text())["config"]["answers_reused"] == 0

    # Cut short: the header, one answer, and half of the next line a killed run was writing.
    kept = {**rows[0], "answer": {**rows[0]["answer"], "text": "Maybe, the record says."}}
    answers.write_text(
        lines[0] + "\n" + json.dumps(kept) + "\n" + lines[2][: len(lines[2]) // 2],
        encoding="utf-8",
    )
    second = CliRunner().invoke(cli, [*command, "--out", str(out)])
    assert second.exit_code == 0, second.output
    result = json.loads(out.read_text())
    assert result["config"]["answers_reused"] == 1
    resumed = [json.loads(line) for line in answers.read_text(encoding="utf-8").splitlines()]
    assert resumed[1] == kept  # reused as recorded, not generated again
    assert sorted((r["setting"], r["pmid"]) for r in resumed[1:]) == sorted(
        (r["setting"], r["pmid"]) for r in rows
    )
    # The recorded answer is what got scored: its "maybe" is among the predictions.
    assert result[kept["setting"]]["predicted"].get("maybe", 0) >= 1

    before = answers.read_bytes()
    monkeypatch.setenv("PUBMED_RAG_TOP_K", "3")
    refused = CliRunner().invoke(cli, command)
    assert refused.exit_code != 0
    assert "other settings (rag)" in refused.output and "Traceback" not in refused.output
    assert answers.read_bytes() == before


@needs_shared_data(SCIFACT)
def test_dimensions_sweep_writes_one_result_per_width_and_the_table(
    tmp_path: Path, settings_env: Path
) -> None:
    from benchmarks.dimensions import main

    shared = tmp_path / "shared"
    (shared / "scifact").mkdir(parents=True)
    _, _, qrels = tiny_scifact(shared / "scifact", queries=4, distractors=8)
    qrels.rename(qrels.with_name("qrels-test.tsv"))
    out = tmp_path / "results"

    assert main(["--shared-data", str(shared), "--out-dir", str(out), "--offline",
                 "--widths", "full,64"]) == 0  # fmt: skip

    full = json.loads((out / "eval-dims-full-offline.json").read_text(encoding="utf-8"))
    cut = json.loads((out / "eval-dims-64-offline.json").read_text(encoding="utf-8"))
    assert full["config"]["product"]["dimensions"] == 384
    assert cut["config"]["product"]["dimensions"] == 64
    assert cut["config"]["product"]["dimensionality"] == 64
    assert cut["config"]["product"]["vector_bytes"] * 6 == full["config"]["product"]["vector_bytes"]
    assert 0 < cut["config"]["product"]["disk_bytes"] < full["config"]["product"]["disk_bytes"]
    # Serving memory: a fresh process opened each index (the encoder alone is >50 MiB) and
    # searched the queries; the table carries it and the vectors' size at a million passages.
    for result in (full, cut):
        served = result["product_serving"]
        assert served["queries"] == 4 and served["p50_ms"] > 0
        assert 50 < served["peak_rss_loaded_mib"] <= served["peak_rss_serving_mib"]
    table = (out / "eval-dims-offline.md").read_text(encoding="utf-8")
    assert "| full (384-d) |" in table and "| 64 (64-d) |" in table
    assert "serving RSS (MiB)" in table and "| 1464.8 |" in table and "| 244.1 |" in table


@needs_shared_data(SHARED_DATA / "pubmedqa")
def test_eval_pubmedqa_verdicts_reports_accuracy_beside_the_majority_baseline(
    tmp_path: Path, settings_env: Path
) -> None:
    out = tmp_path / "verdicts.json"
    result = CliRunner().invoke(
        cli,
        ["eval", "pubmedqa", "--data", str(SHARED_DATA / "pubmedqa"), "--verdicts", "cues",
         "--limit", "60", "--out", str(out), "--quiet"],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text(encoding="utf-8"))["verdicts"]
    assert scores["model"] == "cues" and scores["questions"] == 60
    assert 0.0 <= scores["accuracy"] <= 1.0
    assert scores["majority_class"] == "yes" and 0.4 < scores["majority_baseline"] < 0.7
    assert sum(sum(row.values()) for row in scores["confusion"].values()) == 60
