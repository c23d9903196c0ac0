"""``python -m rag eval``: the ``eval`` command group (``rag``'s CLI adds it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from evaluation.beir import BASELINES, evaluate_beir, load_beir
from evaluation.pubmedqa import evaluate_pubmedqa
from evaluation.verdicts import evaluate_verdicts
from indexing.errors import guarded


def _write(payload: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    click.echo(text)


def _guarded(ctx: click.Context, action: Callable[[], Any]) -> None:
    guarded(action, bool((ctx.find_root().obj or {}).get("debug")))


EVAL_EXAMPLES = """
\b
Examples:
  python -m rag eval beir --corpus ../shared/data/scifact/corpus.jsonl \\
      --queries ../shared/data/scifact/queries.jsonl \\
      --qrels ../shared/data/scifact/qrels-test.tsv --out scifact.json
  python -m rag eval pubmedqa --data ../shared/data/pubmedqa --limit 50 --out pqa.json
  python -m rag eval pubmedqa --data ../shared/data/pubmedqa --answers pqa.jsonl  # resumable
  python -m rag eval pubmedqa --data ../shared/data/pubmedqa --verdicts cues     # no generator
  python -m rag eval pubmedqa --data ../shared/data/pubmedqa --answers pqa.jsonl \\
      --rescore-support --out rescored.json   # labels of stored answers checked again
"""


@click.group("eval", epilog=EVAL_EXAMPLES)
def eval_group() -> None:
    """Measure retrieval and answer quality on public benchmarks (temporary indexes)."""


_existing = click.Path(exists=True, dir_okay=False, path_type=Path)


@eval_group.command("beir", epilog=EVAL_EXAMPLES)
@click.option("--corpus", type=_existing, required=True, help="corpus.jsonl (_id, title, text).")
@click.option("--queries", type=_existing, required=True, help="queries.jsonl (_id, text).")
@click.option("--qrels", type=_existing, required=True, help="qrels TSV with a header line.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write JSON here.")
@click.option("--limit-queries", type=click.IntRange(1), help="Score only the first N queries.")
@click.option(
    "--baselines/--no-baselines",
    default=True,
    show_default=True,
    help="Also score plain txtai BM25, dense and hybrid (each indexes the corpus again).",
)
@click.option(
    "--ablations/--no-ablations",
    default=True,
    show_default=True,
    help="Also score the product with each ranking stage switched off in turn (same index).",
)
@click.option(
    "--serving-memory",
    is_flag=True,
    help="Also open the product's index in a fresh process and report its peak RSS while it "
    "searches (adds one process start).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def beir_command(
    ctx: click.Context,
    corpus: Path,
    queries: Path,
    qrels: Path,
    out: Path | None,
    limit_queries: int | None,
    baselines: bool,
    ablations: bool,
    serving_memory: bool,
    quiet: bool,
) -> None:
    """nDCG@10, recall@10/@100 and MRR@10 of the product and of plain txtai baselines.

    The product runs with the current settings (PUBMED_RAG_OFFLINE, PUBMED_RAG_ENCODER_PRECISION,
    PUBMED_RAG_HYBRID_WEIGHT, ...), so one setting can be compared by running twice.
    """

    def body() -> None:
        collection = load_beir(corpus, queries, qrels, limit_queries)
        payload = evaluate_beir(
            collection,
            baselines=BASELINES if baselines else (),
            progress=not quiet,
            with_ablations=ablations,
            with_serving_memory=serving_memory,
        )
        payload["config"]["files"] = {
            "corpus": str(corpus),
            "queries": str(queries),
            "qrels": str(qrels),
        }
        payload["config"]["limit_queries"] = limit_queries
        _write(payload, out)

    _guarded(ctx, body)


@eval_group.command("pubmedqa", epilog=EVAL_EXAMPLES)
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Folder with ori_pqal.json and test_ground_truth.json.",
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    help="Generate answers for N test questions only, spread evenly over the file (for development; official "
    "figures use all 500).",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write JSON here.")
@click.option(
    "--answers",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Record every generated answer in this JSON-lines file as it comes, and reuse the "
    "answers it already holds: a run cut short resumes where it stopped.",
)
@click.option(
    "--settings",
    "answer_settings",
    default="retrieval,gold",
    show_default=True,
    help="Which answers to generate: retrieval (over all abstracts), gold (the gold abstract "
    "given), both, or none (source recall and the support checker only).",
)
@click.option(
    "--verdicts",
    metavar="MODEL",
    help="Instead of generating answers, judge each question against its gold abstract with a "
    "verdict model: cues (model-free baseline), biogpt (microsoft/BioGPT-Large-PubMedQA) or a "
    "local BioGPT folder; reports accuracy beside the majority baseline.",
)
@click.option(
    "--rescore-support",
    is_flag=True,
    help="Generate nothing: check the support labels of the answers in --answers again with "
    "the current support check, and report the labels before and after (with the support "
    "checker's calibration figures).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def pubmedqa_command(
    ctx: click.Context,
    data: Path,
    limit: int | None,
    out: Path | None,
    answers: Path | None,
    answer_settings: str,
    verdicts: str | None,
    rescore_support: bool,
    quiet: bool,
) -> None:
    """Yes/no/maybe accuracy, source recall, citation validity and abstention on PubMedQA."""
    chosen = tuple(part.strip() for part in answer_settings.split(",") if part.strip())
    if chosen == ("none",):
        chosen = ()
    elif not chosen or set(chosen) - {"retrieval", "gold"}:
        raise click.BadParameter(
            "give retrieval, gold, retrieval,gold or none", param_hint="--settings"
        )
    if rescore_support and answers is None:
        raise click.UsageError("--rescore-support needs --answers, the file of stored answers")

    def body() -> None:
        if rescore_support:
            from evaluation.rescore import rescore_support as rescore

            assert answers is not None
            _write(rescore(data, answers, progress=not quiet), out)
            return
        if verdicts:
            _write(evaluate_verdicts(data, verdicts, limit=limit, progress=not quiet), out)
            return
        result = evaluate_pubmedqa(
            data,
            limit=limit,
            progress=not quiet,
            answers_file=answers,
            settings_to_answer=chosen,
        )
        _write(result, out)

    _guarded(ctx, body)
