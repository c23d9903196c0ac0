"""``make eval``: SciFact and PubMedQA through ``python -m rag eval``, with the offline models.

Runs, each as a user would run it (a ``python -m rag eval`` subprocess, offline models)::

    SciFact (test qrels)  product with the default encoder (bf16 where the CPU has it)
                          + plain txtai BM25 / dense / hybrid    -> eval-scifact.json
    SciFact (test qrels)  product with PUBMED_RAG_ENCODER_PRECISION=fp32
                          (no baselines: they do not change)      -> eval-scifact-fp32.json
    SciFact (test qrels)  product with PUBMED_RAG_KEYWORD_STEMMER=none (the ablation's
                          stemming row: an index property)        -> eval-scifact-nostem.json
    PubMedQA (PQA-L test, 500 questions), retrieval over all 1000 abstracts and with the gold
                          abstract given                          -> eval-pubmedqa.json

and writes ``eval-latest.md``, the summary the README links. ``--limit N`` answers only N
PubMedQA questions (spread over the test split), for development: its files are named
``*-limitN`` and its summary ``eval-dev.md``, so a development run never replaces the
official figures. The PubMedQA answers are recorded one by one in
``eval-pubmedqa*.answers.jsonl`` beside the results, so running it again after an
interruption generates only the missing ones. ``--summarize`` rewrites ``eval-latest.md``
from the files there, taking the largest partial PubMedQA run (labelled as such) when no
full one exists. ``--rescore-support`` generates nothing: it checks the support labels of the
stored PubMedQA answers again with the current support check (``python -m rag eval pubmedqa
--rescore-support`` -> ``eval-pubmedqa-rescored.json``), puts the new label shares and
support-checker figures into ``eval-pubmedqa.json`` (marked as rescored, with the date and
the shares before) and rewrites ``eval-latest.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
# The late-interaction depth of the SciFact runs (chosen on SciFact train: depth 20, weight 0.6).
LATE_DEPTH = 20


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"[eval {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_eval(args: list[str], out: Path, **env: str) -> dict[str, Any]:
    """``python -m rag eval ARGS --out OUT`` offline; the JSON it wrote."""
    environment = {**os.environ, "PUBMED_RAG_OFFLINE": "1", "HF_HUB_OFFLINE": "1", **env}
    environment.setdefault("TOKENIZERS_PARALLELISM", "false")
    command = [sys.executable, "-m", "rag", "eval", *args, "--out", str(out)]
    log(" ".join(f"{k}={v}" for k, v in env.items()) + " " + " ".join(command[1:]))
    began = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"`{' '.join(command[1:])}` failed with exit code {done.returncode}")
    log(f"done in {time.perf_counter() - began:.0f} s -> {out}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    result.setdefault("config", {})["wall_s"] = round(time.perf_counter() - began, 1)
    return result


def _f(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def scifact_table(
    fast: dict[str, Any], fp32: dict[str, Any], nostem: dict[str, Any] | None = None
) -> list[str]:
    """Product (fast and fp32 encoder) beside the plain txtai baselines, then the ablation."""
    product = fast["config"]["product"]
    precision = (product.get("encoder") or {}).get("precision", "?")
    stemmer = product.get("keyword_stemmer") or "none"  # results from before stemming: none
    keywords = "BM25" if stemmer == "none" else f"stemmed BM25 ({stemmer})"
    stages = f"{keywords} + dense, passages, collapse"
    if product.get("reranker"):
        stages += f", second stage: {product['reranker']}"
    rows = [
        (f"**product** ({stages}; encoder {precision})", fast["product"]),
        ("product, encoder fp32 (`PUBMED_RAG_ENCODER_PRECISION=fp32`)", fp32["product"]),
        *((f"plain {name}", scores) for name, scores in fast["baselines"].items()),
    ]
    lines = [
        "| SciFact test (" + f"{fast['config']['queries']} queries, "
        f"{fast['config']['documents']:,} abstracts) | " + " | ".join(METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    lines += [f"| {label} | " + " | ".join(_f(s[m]) for m in METRICS) + " |" for label, s in rows]
    delta = fast["product"]["ndcg@10"] - fp32["product"]["ndcg@10"]
    lines += [
        "",
        f"nDCG@10 of the {precision} encoder minus fp32: **{delta:+.4f}** (the goal: within "
        "±0.005). Baselines index whole documents with txtai's defaults and the same embedder "
        "(fp32).",
    ]
    ablated = dict(fast.get("ablations") or {})
    if nostem is not None:
        ablated = {
            "without stemming (`PUBMED_RAG_KEYWORD_STEMMER=none`)": nostem["product"],
            **ablated,
        }
    if ablated:
        full = fast["product"]["ndcg@10"]
        lines += [
            "",
            "| ablation: the product with one stage off | ndcg@10 | what the stage adds | recall@100 |",
            "|---|---|---|---|",
            f"| product, every stage on | {_f(full)} | – | {_f(fast['product']['recall@100'])} |",
        ]
        lines += [
            f"| {name} | {_f(scores['ndcg@10'])} | {full - scores['ndcg@10']:+.3f} | "
            f"{_f(scores['recall@100'])} |"
            for name, scores in ablated.items()
        ]
    latency = fast.get("product_latency_ms") or {}
    if latency:
        lines += [
            "",
            f"Product search latency over these {latency['n']} queries (limit 10, every stage on): "
            f"p50 {latency['p50']} ms, p95 {latency['p95']} ms.",
        ]
    return lines


PUBMEDQA_ROWS = (
    ("accuracy (yes/no/maybe)", "accuracy", _pct),
    ("majority-class baseline", "majority_baseline", _pct),
    ("accuracy of the answers not abstained", "accuracy_answered", _pct),
    ("answers citing at least one source", "cites_any", _pct),
    ("answers citing the source abstract", "cites_source", _pct),
    ("answers whose citations are all valid", "citations_all_valid", _pct),
    ("answer sentences carrying a valid citation", "sentences_with_valid_citation", _pct),
    ("answers copying the worked example", "copied_from_demonstration", _f),
    ("answer sentences judged supported", ("support", "supported"), _pct),
    ("answer sentences judged weak", ("support", "weak"), _pct),
    ("answer sentences judged unsupported", ("support", "unsupported"), _pct),
    ("answer sentences judged contradicted", ("support", "contradicted"), _pct),
    ("abstention rate", "abstention_rate", _pct),
    ("answers without a readable label", "unparsed_rate", _pct),
    ("median question → key evidence (ms)", "evidence_ms_median", _f),
    ("median question → first token (ms)", "first_token_ms_median", _f),
    ("median prompt tokens", "prompt_tokens_median", _f),
    ("median tokens/s", "tokens_per_s_median", _f),
)
# The figures before answers were grounded by construction, kept for comparison.
PUBMEDQA_BASELINE = "eval-pubmedqa-2026-11-23.json"


def _value(scores: dict[str, Any] | None, key: str | tuple[str, str]) -> Any:
    if scores is None:
        return None
    if isinstance(key, tuple):
        return (scores.get(key[0]) or {}).get(key[1])
    return scores.get(key)


def pubmedqa_table(result: dict[str, Any], before: dict[str, Any] | None = None) -> list[str]:
    """Accuracy beside the majority baseline, retrieval, citation and support figures, both
    settings, each beside the figure of ``before`` (the earlier run) when given."""
    config = result["config"]
    was = f" ({before['machine']['measured_at'][:10]})" if before else ""
    head = "| retrieval over 1000 abstracts | gold abstract given |"
    if before:
        head = f"| retrieval | retrieval{was} | gold abstract | gold abstract{was} |"
    lines = [
        f"| PubMedQA PQA-L test ({config['answered_questions']} of {config['test_questions']} "
        f"questions; generator {config['generator']}) " + head,
        "|---|---|---|" + ("---|---|" if before else ""),
    ]
    settings = ("retrieval", "gold")
    for label, key, fmt in PUBMEDQA_ROWS:
        cells = []
        for setting in settings:
            cells.append(fmt(_value(result[setting], key)))
            if before:
                cells.append(fmt(_value(before.get(setting), key)))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    recall = result["retrieval"].get("source_recall") or {}
    old = (before or {}).get("retrieval", {}).get("source_recall") or {}
    cells = [" / ".join(_pct(recall.get(k)) for k in ("@1", "@5", "@10"))]
    if before:
        cells += [" / ".join(_pct(old.get(k)) for k in ("@1", "@5", "@10")), "–"]
    lines.append(
        "| source abstract retrieved (recall@1 / @5 / @10) | " + " | ".join(cells) + " | – |"
    )
    lines += ["", f"Label rule: {config['label_rule']}."]
    rescored = result["retrieval"].get("support_rescored")
    if rescored:
        was = rescored["support_before"]
        lines += [
            "",
            f"Support labels **rescored on {rescored['on']}** from the stored answers "
            "(`python -m benchmarks.evaluate --rescore-support`: nothing generated again) with "
            "the polarity check, which added `contradicted`; before, as generated: "
            + " / ".join(f"{label} {_pct(was.get(label))}" for label in was)
            + f" of {rescored['sentences_before']} sentences ({rescored['sentences_after']} "
            "after). The support-checker table below was measured again the same day.",
        ]
    checker = result.get("support_checker")
    if checker:
        held = checker["held_out_half"]
        product = checker["product_thresholds"]
        lines += [
            "",
            f"| support checker on PubMedQA ({checker['pairs']} conclusions, `LONG_ANSWER`) | value |",
            "|---|---|",
            f"| AUC, own abstract vs a random other abstract | {checker['auc_random_negative']:.4f} |",
            f"| AUC, own abstract vs the most similar other abstract | {checker['auc_hard_negative']:.4f} |",
            "| thresholds chosen on the first half (supported / weak) | "
            f"{checker['chosen_on_first_half']['supported']} / {checker['chosen_on_first_half']['weak']} |",
            '| held-out half, "supported": precision / recall vs most similar | '
            f"{_pct(held['supported_vs_hard']['precision'])} / {_pct(held['supported_vs_hard']['recall'])} |",
            '| held-out half, "supported": precision / recall vs random | '
            f"{_pct(held['supported_vs_random']['precision'])} / {_pct(held['supported_vs_random']['recall'])} |",
            f'| held-out half, "weak" or better: recall | {_pct(held["weak_vs_hard"]["recall"])} |',
            "| product thresholds "
            f"({product['supported_vs_hard']['threshold']} / {product['weak_vs_hard']['threshold']}), "
            'all pairs, "supported": precision / recall vs most similar | '
            f"{_pct(product['supported_vs_hard']['precision'])} / {_pct(product['supported_vs_hard']['recall'])} |",
        ]
        contradicted = checker.get("contradicted")
        if contradicted:
            lines += [
                "| polarity check: conclusions labelled contradicted by their own abstract "
                f"(false alarms) | {_pct(contradicted['own_abstract'])} |",
                "| polarity check: conclusion sentences, one by one, contradicted by their own "
                f"abstract | {_pct(contradicted.get('own_abstract_per_sentence'))} of "
                f"{contradicted.get('conclusion_sentences', '–')} |",
            ]
    return lines


def summary(results: dict[str, dict[str, Any]], limit: int | None, files: list[str]) -> str:
    """The markdown summary of one ``make eval`` run."""
    machine = next(iter(results.values()))["machine"]
    lines = [
        f"# Evaluation ({machine['measured_at'][:10]}"
        + (f", development run: {limit} PubMedQA answers" if limit else "")
        + ")",
        "",
        f"Offline models (MiniLM-L6 embedder, SmolLM2-135M generator) on {machine['cpu']}, "
        f"{machine['cores']} cores. Produced by `make eval` (`benchmarks/evaluate.py`).",
        "",
    ]
    if "scifact" in results:
        table = scifact_table(
            results["scifact"], results["scifact-fp32"], results.get("scifact-nostem")
        )
        lines += [*table, ""]
    if "pubmedqa" in results:
        pubmedqa = results["pubmedqa"]["config"]
        if pubmedqa["answered_questions"] < pubmedqa["test_questions"]:
            lines += [
                f"**Partial PubMedQA run**: {pubmedqa['answered_questions']} of the "
                f"{pubmedqa['test_questions']} test questions (spread evenly) in each setting, "
                "because all 1,000 answers take about an hour on 2 cores. `make eval` answers "
                "all of them.",
                "",
            ]
        answered = pubmedqa.get("settings_answered") or ["retrieval", "gold"]
        if "gold" not in answered:
            lines += [
                "This run generated the retrieval answers only (`--settings retrieval`); the "
                "gold-abstract column of the earlier run is shown for reference.",
                "",
            ]
        load = results["pubmedqa"]["machine"].get("load_average")
        if load:
            lines += [
                f"Load average when the run ended: {load[0]:.1f} (1 min) on "
                f"{results['pubmedqa']['machine']['cores']} cores: other jobs shared the CPU, so "
                "times and tokens/s are upper and lower bounds of a quiet machine's.",
                "",
            ]
        lines += [*pubmedqa_table(results["pubmedqa"], results.get("pubmedqa-before")), ""]
    lines += ["Full figures (same folder): " + ", ".join(f"`{name}`" for name in files) + ".", ""]
    return "\n".join(lines)


def write_summary(out_dir: Path) -> Path:
    """``eval-latest.md`` from the official JSON files in ``out_dir`` (``--summarize``)."""
    names = ("scifact", "scifact-fp32", "scifact-nostem", "pubmedqa")
    files = {name: f"eval-{name}.json" for name in names}
    if not (out_dir / files["pubmedqa"]).exists() and (partial := largest_partial(out_dir)):
        files["pubmedqa"] = partial.name
    if (out_dir / PUBMEDQA_BASELINE).exists():
        files["pubmedqa-before"] = PUBMEDQA_BASELINE
    results: dict[str, dict[str, Any]] = {}
    for name, file in files.items():
        if (out_dir / file).exists():
            results[name] = json.loads((out_dir / file).read_text(encoding="utf-8"))
    if not results:
        raise SystemExit(f"no eval-*.json in {out_dir}: run `make eval`")
    if "scifact" in results and "scifact-fp32" not in results:
        raise SystemExit("eval-scifact-fp32.json is missing: run `make eval`")
    listed = [files[name] for name in results]
    listed += [name for name in (RESCORED, HAND_CHECK) if (out_dir / name).exists()]
    text = summary(results, None, listed)
    (out_dir / "eval-latest.md").write_text(text, encoding="utf-8")
    log(f"wrote {out_dir / 'eval-latest.md'}")
    return out_dir / "eval-latest.md"


RESCORED = "eval-pubmedqa-rescored.json"
# The hand check of the sentences the polarity check labels contradicted (README).
HAND_CHECK = "support-polarity-check.md"


def merge_rescored(result: dict[str, Any], rescored: dict[str, Any]) -> dict[str, Any]:
    """``result`` (an ``eval-pubmedqa.json``) with the label shares and support-checker figures
    of a ``--rescore-support`` run; the shares before are kept beside them."""
    merged = json.loads(json.dumps(result))
    for setting, figures in rescored["settings"].items():
        scores = merged.setdefault(setting, {})
        earlier = scores.get("support_rescored") or {}
        scores["support"] = figures["support_after"]
        scores["support_rescored"] = {
            "on": rescored["rescored_at"],
            "rule": rescored["rule"],
            # Rescoring twice keeps the shares as generated, not those of the last rescore.
            "support_before": earlier.get("support_before", figures["support_before"]),
            "sentences_before": earlier.get("sentences_before", figures["sentences_before"]),
            "sentences_after": figures["sentences_after"],
        }
    if rescored.get("support_checker"):
        merged["support_checker"] = {
            **rescored["support_checker"],
            "measured_on": rescored["rescored_at"],
        }
    return merged


def largest_partial(out_dir: Path) -> Path | None:
    """The ``eval-pubmedqa-limitN.json`` with the most questions, if any."""
    partial = {
        int(found.group(1)): path
        for path in out_dir.glob("eval-pubmedqa-limit*.json")
        if (found := re.fullmatch(r"eval-pubmedqa-limit(\d+)", path.stem))
    }
    return partial[max(partial)] if partial else None


def main(argv: list[str] | None = None) -> int:
    """Run the evaluations and write the JSON files and the summary."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.evaluate", description=__doc__)
    parser.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument(
        "--limit",
        type=int,
        help="Answer only N PubMedQA questions, spread over the test split (development).",
    )
    parser.add_argument("--only", choices=("scifact", "pubmedqa"), help="Run one benchmark.")
    parser.add_argument(
        "--summarize",
        action="store_true",
        help="Run nothing: rewrite eval-latest.md from the official JSON files in --out-dir.",
    )
    parser.add_argument(
        "--rescore-support",
        action="store_true",
        help="Generate nothing: check the support labels of the stored PubMedQA answers again, "
        "update eval-pubmedqa.json and rewrite eval-latest.md.",
    )
    args = parser.parse_args(argv)
    shared: Path = args.shared_data.resolve()
    out_dir: Path = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = f"-limit{args.limit}" if args.limit else ""
    results: dict[str, dict[str, Any]] = {}
    if args.rescore_support:
        official = out_dir / "eval-pubmedqa.json"
        if not official.exists():
            raise SystemExit(f"{official} is missing: run `make eval` first")
        rescored = run_eval(
            [
                "pubmedqa",
                "--data",
                str(shared / "pubmedqa"),
                "--answers",
                str(out_dir / "eval-pubmedqa.answers.jsonl"),
                "--rescore-support",
            ],
            out_dir / RESCORED,
        )
        merged = merge_rescored(json.loads(official.read_text(encoding="utf-8")), rescored)
        official.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n", "utf-8")
        log(f"updated {official}")
        write_summary(out_dir)
        return 0
    if args.summarize:
        write_summary(out_dir)
        return 0
    if args.only in (None, "scifact"):
        # Every SciFact run has the offline second stage on (off by default in the product: it
        # costs one encoder pass over 20 passages per search); the ablation shows its share.
        second = {"PUBMED_RAG_LATE_INTERACTION": str(LATE_DEPTH)}
        scifact = shared / "scifact"
        collection = ["--corpus", str(scifact / "corpus.jsonl"), "--queries",
                      str(scifact / "queries.jsonl"), "--qrels", str(scifact / "qrels-test.tsv")]  # fmt: skip
        results["scifact"] = run_eval(
            ["beir", *collection],
            out_dir / "eval-scifact.json",
            PUBMED_RAG_ENCODER_PRECISION="auto",
            **second,
        )
        results["scifact-fp32"] = run_eval(
            ["beir", *collection, "--no-baselines", "--no-ablations"],
            out_dir / "eval-scifact-fp32.json",
            PUBMED_RAG_ENCODER_PRECISION="fp32",
            **second,
        )
        results["scifact-nostem"] = run_eval(
            ["beir", *collection, "--no-baselines", "--no-ablations"],
            out_dir / "eval-scifact-nostem.json",
            PUBMED_RAG_KEYWORD_STEMMER="none",
            **second,
        )
    if args.only in (None, "pubmedqa"):
        limit = ["--limit", str(args.limit)] if args.limit else []
        # Answers are recorded as they come: `make eval` again resumes a run cut short.
        answers = out_dir / f"eval-pubmedqa{suffix}.answers.jsonl"
        results["pubmedqa"] = run_eval(
            ["pubmedqa", "--data", str(shared / "pubmedqa"), *limit, "--answers", str(answers)],
            out_dir / f"eval-pubmedqa{suffix}.json",
        )
    files = {
        "scifact": "eval-scifact.json",
        "scifact-fp32": "eval-scifact-fp32.json",
        "scifact-nostem": "eval-scifact-nostem.json",
        "pubmedqa": f"eval-pubmedqa{suffix}.json",
    }
    text = summary(results, args.limit, [files[name] for name in results])
    md = out_dir / ("eval-dev.md" if args.limit or args.only else "eval-latest.md")
    md.write_text(text, encoding="utf-8")
    log(f"wrote {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
