"""``python -m rag``: search the index and ask questions from the command line.

Errors reach the user as one line on stderr and exit code 2, never a traceback (``--debug``
shows it): :func:`indexing.errors.guarded`, shared by every command line. Other commands (``eval``) attach to :data:`cli` with ``cli.add_command``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from evaluation.cli import eval_group
from indexing.errors import guarded
from rag.search import Filters, Hit
from rag.verdicts import load_verdict_model, tally_verdicts

EXAMPLES = """
\b
Examples:
  python -m rag search "metformin colorectal cancer" --year-from 2015 --pubtype Review
  python -m rag search "proton pump inhibitors dementia" --mesh Humans --json
  python -m rag ask "Do proton pump inhibitors raise the risk of dementia?"
  python -m rag ask "What treats acute pulmonary embolism?" --exclude-retracted --json
"""

F = TypeVar("F", bound=Callable[..., Any])


def filter_options(command: F) -> F:
    """The metadata filter options shared by ``search`` and ``ask``."""
    options = [
        click.option("--year-from", type=int, help="Only articles published in or after YEAR."),
        click.option("--year-to", type=int, help="Only articles published in or before YEAR."),
        click.option("--journal", help="Journal title or ISO abbreviation contains this text."),
        click.option(
            "--pubtype", help="Publication type, e.g. Review, 'Randomized Controlled Trial'."
        ),
        click.option("--mesh", help="MeSH descriptor, e.g. Humans, 'Lung Neoplasms'."),
        click.option("--lang", help="Language code as in PubMed, e.g. eng, fre."),
        click.option("--has-abstract", is_flag=True, help="Only articles with an abstract."),
        click.option("--exclude-retracted", is_flag=True, help="Leave out retracted articles."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def make_filters(options: dict[str, Any]) -> Filters:
    """Filters from the command's filter options."""
    return Filters(
        year_from=options.get("year_from"),
        year_to=options.get("year_to"),
        journal=options.get("journal"),
        pubtype=options.get("pubtype"),
        mesh=options.get("mesh"),
        lang=options.get("lang"),
        has_abstract=bool(options.get("has_abstract")),
        exclude_retracted=bool(options.get("exclude_retracted")),
    )


def _service(ctx: click.Context) -> Any:
    from pydantic import ValidationError

    from rag.service import AnswerService
    from rag.settings import RagSettings

    try:
        return AnswerService(rag=RagSettings())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        raise click.UsageError(f"invalid setting {where}: {first['msg']}") from None


def _source_line(number: int, hit: Hit) -> str:
    year = f" ({hit.year})" if hit.year else ""
    journal = f" {hit.journal}." if hit.journal else ""
    flag = " [RETRACTED]" if hit.retracted else ""
    return f"[{number}] {hit.title}{year}{journal}{flag}\n    {hit.url}"


def _search_source(hit: Hit) -> dict[str, Any]:
    data = hit.to_dict()
    keys = ("pmid", "title", "year", "score", "journal", "pubtypes", "passage", "url")
    extra = ("authors", "doi", "mesh", "retracted", "dense_score", "bm25_score", "passage_id")
    return {key: data[key] for key in keys + extra}


@click.group(epilog=EXAMPLES)
@click.option("--debug", is_flag=True, help="Verbose logs and full tracebacks.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Search the local PubMed index and get answers that cite their sources."""
    # Model-loading bars of transformers/huggingface_hub would interleave with the answer.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


@cli.command(epilog=EXAMPLES)
@click.argument("query")
@filter_options
@click.option("--limit", "-n", type=click.IntRange(1, 200), help="Articles to show.")
@click.option("--json", "as_json", is_flag=True, help="Print {'sources': [...]} as JSON.")
@click.option(
    "--verdicts",
    metavar="MODEL",
    help="Also judge whether each of the top 6 abstracts answers the query yes, no or maybe, "
    "and count them: cues (model-free), biogpt (microsoft/BioGPT-Large-PubMedQA) or a folder.",
)
@click.pass_context
def search(
    ctx: click.Context,
    query: str,
    limit: int | None,
    as_json: bool,
    verdicts: str | None,
    **options: Any,
) -> None:
    """Hybrid (BM25 + dense) search; one line per article, best first."""

    def body() -> None:
        service = _service(ctx)
        result = service.search(query, make_filters(options), limit)
        for notice in result.notices:
            click.echo(f"note: {notice}", err=True)
        tally = (
            tally_verdicts(query, result.hits, load_verdict_model(verdicts)) if verdicts else None
        )
        if as_json:
            payload = {
                "query": result.query,
                "index_version": result.index_version,
                "elapsed_ms": round(result.elapsed_ms, 1),
                "sources": [_search_source(hit) for hit in result.hits],
            }
            if tally is not None:
                payload["verdicts"] = tally.to_dict()
            click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
            return
        if tally is not None:
            click.echo(f"verdicts ({tally.model}): {tally.summary()}")
            for article in tally.articles:
                click.echo(
                    f"  {article.label:<5} {article.score:.2f}  PMID {article.pmid}  {article.url}"
                )
        if not result.hits:
            click.echo("no articles match (check the filters)")
        for number, hit in enumerate(result.hits, start=1):
            click.echo(f"{_source_line(number, hit)}\n    score {hit.score:.3f}")
        click.echo(f"({len(result.hits)} articles, {result.elapsed_ms:.0f} ms)", err=True)

    guarded(body, ctx.obj["debug"])


def _echo_evidence(evidence: Any, heading: str) -> None:
    """Quoted evidence sentences, each with its PMID."""
    if not evidence:
        return
    click.echo(heading)
    for item in evidence:
        section = f"({item.section}) " if item.section else ""
        click.echo(f"  - {section}\u201c{item.text}\u201d [PMID:{item.pmid}]")
    click.echo("")


def _echo_answer(answer: Any) -> None:
    """After the stream: the abstention or the check of each sentence, notes, sources."""
    if answer.abstained:
        click.echo(answer.text)
        _echo_evidence(answer.evidence, "Closest evidence:")
    click.echo("\n")
    _echo_checked(answer)
    for notice in answer.notices:
        click.echo(f"note: {notice}", err=True)
    if answer.sources:
        click.echo("Sources:" if not answer.abstained else "Closest articles:")
    cited = set(answer.citations)
    for number, hit in enumerate(answer.sources, start=1):
        mark = "*" if hit.pmid in cited else " "
        click.echo(f"{mark}{_source_line(number, hit)}")
    timings = answer.timings
    speed = f", {timings.tokens_per_s:.1f} tok/s" if timings.tokens_per_s else ""
    evidence = f"evidence {timings.evidence_ms:.0f} ms, " if timings.evidence_ms is not None else ""
    click.echo(
        f"(retrieval {timings.retrieval_ms:.0f} ms, {evidence}total {timings.total_ms:.0f} ms"
        f"{speed}; * = cited; model {answer.model})",
        err=True,
    )


def _echo_checked(answer: Any) -> None:
    """Each answer sentence with its support label and the quote it rests on."""
    if not answer.sentences:
        return
    click.echo("Checked against the cited abstracts:")
    for sentence in answer.sentences:
        click.echo(f"  [{sentence.support}] {sentence.text}")
        if sentence.quote:
            click.echo(f"      rests on PMID {sentence.quote_pmid}: {sentence.quote}")
    click.echo("")


@cli.command(epilog=EXAMPLES)
@click.argument("question")
@filter_options
@click.option("--json", "as_json", is_flag=True, help="Print the answer as one JSON object.")
@click.pass_context
def ask(ctx: click.Context, question: str, as_json: bool, **options: Any) -> None:
    """Answer a question from the indexed abstracts, citing PMIDs; streams to the terminal."""
    from rag.service import Answer, Failed, KeyEvidence, Queued, Sources, Token

    def body() -> None:
        service = _service(ctx)
        answer: Answer | None = None
        abstaining = False
        for event in service.ask(question, make_filters(options)):
            if isinstance(event, Sources):
                abstaining = event.abstaining
            elif isinstance(event, KeyEvidence) and not as_json and not abstaining:
                _echo_evidence(event.evidence, "Key evidence:")
                click.echo("Answer:")
            elif isinstance(event, Queued):
                click.echo(f"(busy: {event.position} question(s) ahead)", err=True)
            elif isinstance(event, Token) and not as_json:
                click.echo(event.text, nl=False)
            elif isinstance(event, Failed):
                if not as_json:
                    click.echo("")
                    for number, hit in enumerate(event.sources, start=1):
                        click.echo(_source_line(number, hit))
                raise event.error
            elif isinstance(event, Answer):
                answer = event
        assert answer is not None
        if as_json:
            click.echo(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        else:
            _echo_answer(answer)

    guarded(body, ctx.obj["debug"])


cli.add_command(eval_group)

if __name__ == "__main__":
    cli()
