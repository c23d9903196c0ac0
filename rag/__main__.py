"""``python -m rag``: search the index and ask questions from the command line.

Errors reach the user as one line on stderr and exit code 2, never a traceback (``--debug``
shows it): :func:`indexing.errors.guarded`, shared by every command line. Other commands (``eval``) attach to :data:`cli` with ``cli.add_command``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from evaluation.cli import eval_group
from indexing.errors import guarded
from indexing.evidence_level import LEVEL_IDS
from rag.resident import search_payload, source_dict
from rag.search import Filters
from rag.support import CONTRADICTED
from rag.verdicts import load_verdict_model, tally_verdicts

EXAMPLES = """
\b
Examples:
  python -m rag search "metformin colorectal cancer" --year-from 2015 --pubtype Review
  python -m rag search "proton pump inhibitors dementia" --mesh Humans --json
  python -m rag ask "Do proton pump inhibitors raise the risk of dementia?"
  python -m rag ask "What treats acute pulmonary embolism?" --exclude-retracted --json
  python -m rag search "statin myopathy" --evidence rct,meta-analysis --humans
  python -m rag search "statin myopathy" --rank-by-evidence
  python -m rag similar 35830032 --limit 5 --json
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
        click.option(
            "--evidence",
            help="Study designs to keep, comma-separated: " + ", ".join(LEVEL_IDS) + ".",
        ),
        click.option("--humans", is_flag=True, help="Only studies in humans (MeSH Humans)."),
        click.option(
            "--entity",
            help="A substance, gene symbol or supplementary concept NLM indexed the article "
            "with (ChemicalList, GeneSymbolList, SupplMeshList), or a chemical, disease or gene "
            "the ingest's tagger found in it (PUBMED_RAG_NER_MODEL), e.g. Metformin.",
        ),
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
        evidence=parse_levels(options.get("evidence")),
        humans=bool(options.get("humans")),
        entity=options.get("entity"),
    )


def parse_levels(value: str | None) -> tuple[str, ...]:
    """``"rct, meta-analysis"`` → ``("rct", "meta-analysis")``; unknown ids fail in Filters."""
    return tuple(
        dict.fromkeys(part.strip().lower() for part in (value or "").split(",") if part.strip())
    )


RANK_OPTION = click.option(
    "--rank-by-evidence/--no-rank-by-evidence",
    default=None,
    help="Rank stronger study designs higher (a small boost; default: PUBMED_RAG_EVIDENCE_BOOST).",
)


def _service(ctx: click.Context, rank_by_evidence: bool | None = None) -> Any:
    """The answer service; ``rank_by_evidence`` overrides PUBMED_RAG_EVIDENCE_BOOST (as a
    setting, so that an answer bundle records it and a replay ranks the same way)."""
    from pydantic import ValidationError

    from rag.service import AnswerService
    from rag.settings import RagSettings

    try:
        rag = RagSettings()
        if rank_by_evidence is not None:
            rag = rag.model_copy(update={"evidence_boost": rank_by_evidence})
        return AnswerService(rag=rag)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        raise click.UsageError(f"invalid setting {where}: {first['msg']}") from None


def _source_line(number: int, source: dict[str, Any]) -> str:
    year = f" ({source['year']})" if source.get("year") else ""
    journal = f" {source['journal']}." if source.get("journal") else ""
    flag = " [RETRACTED]" if source.get("retracted") else ""
    if source.get("cites_retracted"):
        flag += f" [CITES RETRACTED PMID {', '.join(source['cites_retracted'])}]"
    design = f"[{source.get('evidence_label') or 'design unknown'}"
    population = source.get("population") or []
    design += f"; {', '.join(population)}]" if population else "]"
    return f"[{number}] {source['title']}{year}{journal}{flag}\n    {design} {source['url']}"


def _echo_payload(payload: dict[str, Any], as_json: bool, tally: Any = None) -> None:
    """A search-like payload (:func:`rag.resident.search_payload`): JSON or one block each,
    after the verdict ``tally`` of ``search --verdicts`` when there is one."""
    for notice in payload.pop("notices"):
        click.echo(f"note: {notice}", err=True)
    if as_json:
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    if tally is not None:
        click.echo(f"verdicts ({tally.model}): {tally.summary()}")
        for article in tally.articles:
            click.echo(
                f"  {article.label:<5} {article.score:.2f}  PMID {article.pmid}  {article.url}"
            )
    if not payload["sources"]:
        click.echo("no articles match (check the filters)")
    for number, source in enumerate(payload["sources"], start=1):
        click.echo(f"{_source_line(number, source)}\n    score {source['score']:.3f}")
    count, elapsed = len(payload["sources"]), payload["elapsed_ms"]
    click.echo(f"({count} articles, {elapsed:.0f} ms)", err=True)


def _resident_search(
    query: str, filters: Filters, limit: int | None, rank_by_evidence: bool | None
) -> dict[str, Any] | None:
    """The resident service's answer, or ``None`` (none runs, or with other settings)."""
    from pydantic import ValidationError

    from indexing.settings import Settings
    from rag.resident import remote_search
    from rag.settings import RagSettings

    try:
        settings, rag = Settings(), RagSettings()
    except ValidationError:
        return None  # reported by the in-process path
    return remote_search(settings, rag, query, filters, limit, rank_by_evidence)


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
@RANK_OPTION
@click.option("--limit", "-n", type=click.IntRange(1, 200), help="Articles to show.")
@click.option("--json", "as_json", is_flag=True, help="Print {'sources': [...]} as JSON.")
@click.option(
    "--verdicts",
    metavar="MODEL",
    help="Also judge whether each of the top 6 abstracts answers the query yes, no or maybe, "
    "and count them: cues (model-free), biogpt (microsoft/BioGPT-Large-PubMedQA) or a folder.",
)
@click.option(
    "--resident/--no-resident",
    default=True,
    help="Ask the `rag serve` service of this data folder when one runs (default).",
)
@click.pass_context
def search(
    ctx: click.Context,
    query: str,
    limit: int | None,
    as_json: bool,
    verdicts: str | None,
    resident: bool,
    rank_by_evidence: bool | None,
    **options: Any,
) -> None:
    """Hybrid (BM25 + dense) search; one line per article, best first.

    With a `python -m rag serve` running for the same data folder and settings, the search
    runs there (about a second instead of loading the models); otherwise here.
    """

    def body() -> None:
        filters = make_filters(options)
        # A verdict model runs in this process anyway: then search here too.
        use_service = resident and not verdicts
        payload = _resident_search(query, filters, limit, rank_by_evidence) if use_service else None
        tally = None
        if payload is None:
            service = _service(ctx)
            result = service.search(query, filters, limit, rank_by_evidence=rank_by_evidence)
            payload = search_payload(result)
            if verdicts:
                tally = tally_verdicts(query, result.hits, load_verdict_model(verdicts))
                payload["verdicts"] = tally.to_dict()
        _echo_payload(payload, as_json, tally)

    guarded(body, ctx.obj["debug"])


@cli.command(epilog=EXAMPLES)
@click.argument("pmid")
@filter_options
@click.option("--limit", "-n", type=click.IntRange(1, 200), help="Articles to show.")
@click.option("--json", "as_json", is_flag=True, help="Print {'sources': [...]} as JSON.")
@click.pass_context
def similar(
    ctx: click.Context, pmid: str, limit: int | None, as_json: bool, **options: Any
) -> None:
    """Articles like PMID: its nearest neighbours in the index, nudged by shared MeSH."""

    def body() -> None:
        service = _service(ctx)
        _echo_payload(search_payload(service.similar(pmid, make_filters(options), limit)), as_json)

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
        click.echo(f"{mark}{_source_line(number, hit.to_dict())}")
    timings = answer.timings
    speed = f", {timings.tokens_per_s:.1f} tok/s" if timings.tokens_per_s else ""
    evidence = f"evidence {timings.evidence_ms:.0f} ms, " if timings.evidence_ms is not None else ""
    click.echo(
        f"(retrieval {timings.retrieval_ms:.0f} ms, {evidence}total {timings.total_ms:.0f} ms"
        f"{speed}; * = cited; model {answer.model})",
        err=True,
    )


def _echo_checked(answer: Any) -> None:
    """Each answer sentence with its support label and the quote it rests on (or that says
    otherwise)."""
    if not answer.sentences:
        return
    click.echo("Checked against the cited abstracts:")
    for sentence in answer.sentences:
        click.echo(f"  [{sentence.support}] {sentence.text}")
        if sentence.quote and sentence.support == CONTRADICTED:
            click.echo(
                f"      PMID {sentence.quote_pmid} says otherwise ({sentence.conflict}): "
                f"{sentence.quote}"
            )
        elif sentence.quote:
            click.echo(f"      rests on PMID {sentence.quote_pmid}: {sentence.quote}")
    click.echo("")


@cli.command(epilog=EXAMPLES)
@click.argument("question")
@filter_options
@RANK_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the answer as one JSON object.")
@click.option(
    "--bundle",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also save the answer as a bundle: JSON at PATH, Markdown beside it (.md).",
)
@click.pass_context
def ask(
    ctx: click.Context,
    question: str,
    as_json: bool,
    bundle: Path | None,
    rank_by_evidence: bool | None,
    **options: Any,
) -> None:
    """Answer a question from the indexed abstracts, citing PMIDs; streams to the terminal."""
    from rag.service import Answer, Failed, KeyEvidence, Queued, Sources, Token

    def body() -> None:
        service = _service(ctx, rank_by_evidence)
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
                        click.echo(_source_line(number, source_dict(hit.to_dict())))
                raise event.error
            elif isinstance(event, Answer):
                answer = event
        assert answer is not None
        if bundle is not None:
            _save_bundle(answer, make_filters(options), service, bundle)
        if as_json:
            click.echo(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        else:
            _echo_answer(answer)

    guarded(body, ctx.obj["debug"])


@cli.command(
    epilog="""
\b
Examples:
  python -m rag serve &                        # then:
  python -m rag search "statins myopathy"      # answered by the service
"""
)
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Keep the index and its encoder loaded and answer `rag search` at once (Ctrl-C stops)."""

    def body() -> None:
        import signal

        from rag.resident import serving, warm_up

        service = _service(ctx)
        problem = warm_up(service)
        if problem:
            click.echo(f"note: {problem}", err=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())

        def ready(path: Any) -> None:
            click.echo(f"answering searches on {path} (Ctrl-C stops)", err=True)

        with serving(service, ready), contextlib.suppress(KeyboardInterrupt):
            stop.wait()

    guarded(body, ctx.obj["debug"])


WATCH_EXAMPLES = """
\b
Examples:
  python -m rag watch add "statin myopathy" --year-from 2018
  python -m rag watch add "Do proton pump inhibitors raise the risk of dementia?" --ask
  python -m rag watch list --json
  python -m rag watch run
  python -m rag watch feed ~/feeds/pubmed-rag.xml
  python -m rag watch remove 3f9c2a1b
"""


def _watches_path() -> Any:
    from indexing.settings import get_settings

    return get_settings().watches_path


@cli.group(epilog=WATCH_EXAMPLES)
def watch() -> None:
    """Living searches: saved searches and questions, re-run after every update."""


@watch.command("add", epilog=WATCH_EXAMPLES)
@click.argument("text")
@click.option(
    "--ask", "question", is_flag=True, help="Save it as a question (tracks its cited set)."
)
@filter_options
@click.pass_context
def watch_add(ctx: click.Context, text: str, question: bool, **options: Any) -> None:
    """Save a search (or with --ask a question) to re-run after every update."""
    from indexing.clock import utcnow
    from rag.watch.check import add_watch
    from rag.watch.store import Watch, filters_dict, new_id

    def body() -> None:
        service = _service(ctx)
        kind = "question" if question else "search"
        saved = Watch(new_id(), kind, text.strip(), filters_dict(make_filters(options)), utcnow())
        saved = add_watch(
            service,
            service.settings.watches_path,
            saved,
            top_n=service.rag.watch_top_n,
            history=service.rag.watch_history,
        )
        click.echo(f"saved {kind} {saved.id}: {saved.text}")
        if saved.last is not None:
            click.echo(
                f"baseline: {len(saved.last.top)} articles at index {saved.last.index_version}",
                err=True,
            )

    guarded(body, ctx.obj["debug"])


@watch.command("list", epilog=WATCH_EXAMPLES)
@click.option("--json", "as_json", is_flag=True, help="Print {'watches': [...]} as JSON.")
@click.pass_context
def watch_list(ctx: click.Context, as_json: bool) -> None:
    """The saved searches and questions, and what their last check found new."""
    from rag.watch.store import load
    from rag.watch.text import watch_json, watch_lines

    def body() -> None:
        saved = load(_watches_path())
        if saved.damaged:
            click.echo(f"note: {len(saved.damaged)} damaged entry(ies) kept as they are", err=True)
        if as_json:
            payload = {
                "watches": [watch_json(entry) for entry in saved.watches],
                "damaged": len(saved.damaged),
            }
            click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
            return
        if not saved.watches:
            click.echo('nothing saved yet: python -m rag watch add "TERMS" [--ask]')
        for entry in saved.watches:
            click.echo("\n".join(watch_lines(entry)))

    guarded(body, ctx.obj["debug"])


@watch.command("remove", epilog=WATCH_EXAMPLES)
@click.argument("watch_id")
@click.pass_context
def watch_remove(ctx: click.Context, watch_id: str) -> None:
    """Forget a saved search or question (its id is in `watch list`)."""
    from rag.watch.store import Watches, change

    def body() -> None:
        def drop(content: Watches) -> str:
            gone = content.find(watch_id)
            content.watches.remove(gone)
            return gone.text

        text = change(_watches_path(), drop)
        click.echo(f"removed {watch_id}: {text}")

    guarded(body, ctx.obj["debug"])


@watch.command("run", epilog=WATCH_EXAMPLES)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing unless something failed.")
@click.pass_context
def watch_run(ctx: click.Context, quiet: bool) -> None:
    """Re-run every saved search and question now against the published index.

    The update job runs this after every publish. Exit code 1 when a watch failed.
    """
    from rag.watch.check import run_watches
    from rag.watch.feed import write_feed
    from rag.watch.store import load
    from rag.watch.text import watch_lines

    def body() -> Any:
        service = _service(ctx)
        path = service.settings.watches_path
        summary = run_watches(
            service, path, top_n=service.rag.watch_top_n, history=service.rag.watch_history
        )
        if service.rag.watch_feed is not None:
            write_feed(service.rag.watch_feed, load(path).watches, path)
        for entry, check in summary.failed:
            click.echo(f"watch {entry.id} failed: {check.error}", err=True)
        if not quiet:
            for entry, _ in summary.changed:
                click.echo("\n".join(watch_lines(entry)))
            click.echo(summary.summary(), err=True)
        return summary

    summary = guarded(body, ctx.obj["debug"])
    if summary.failed:
        ctx.exit(1)


@watch.command("feed", epilog=WATCH_EXAMPLES)
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def watch_feed(ctx: click.Context, path: Path) -> None:
    """Write what the saved searches found new as an Atom feed file (PATH)."""
    from rag.watch.feed import write_feed
    from rag.watch.store import load

    def body() -> None:
        source = _watches_path()
        count = write_feed(path, load(source).watches, source)
        click.echo(f"wrote {count} entries to {path}")

    guarded(body, ctx.obj["debug"])


def _save_bundle(answer: Any, filters: Filters, service: Any, path: Path) -> None:
    from rag.bundle import build_bundle, save_bundle

    written = save_bundle(build_bundle(answer, filters, service), path)
    click.echo(f"bundle saved: {written[0]} (Markdown: {written[1]})", err=True)


REPLAY_EXAMPLES = """
\b
Exit codes: 0 the replay is identical, 1 something differs, 2 error (bad bundle, no index).
\b
Examples:
  python -m rag ask "Are statins linked to myopathy?" --bundle statins.json
  python -m rag replay statins.json
  python -m rag replay statins.json --json
"""


@cli.command(epilog=REPLAY_EXAMPLES)
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@click.pass_context
def replay(ctx: click.Context, bundle: Path, as_json: bool) -> None:
    """Ask a saved bundle's question again (its filters and settings) and report what differs.

    Compared: index version, models and their hashes, settings, sources (added, removed,
    reordered, rescored), key evidence, answer sentences, citations and support labels.
    """
    from rag.bundle import load_bundle, replay_bundle
    from rag.bundle_diff import diff_bundles, render_diff

    def body() -> bool:
        saved = load_bundle(bundle)
        diff = diff_bundles(saved, replay_bundle(saved))
        if as_json:
            click.echo(json.dumps(diff.to_dict(), indent=2))  # ASCII: no terminal escapes
        else:
            click.echo(render_diff(diff), nl=False)
        return diff.identical

    ctx.exit(0 if guarded(body, ctx.obj["debug"]) else 1)


cli.add_command(eval_group)

if __name__ == "__main__":
    cli()
