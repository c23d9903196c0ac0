"""``python -m indexing``: build and maintain the PubMed index.

Errors reach the user as one line and exit code 2 (bad input, network, lock) — never a
traceback; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import click

from indexing.cli import INTERRUPTED, WAIT_OPTION
from indexing.errors import guarded
from indexing.settings import get_settings

EXAMPLES = """
\b
Examples:
  python -m indexing ingest --xml ../shared/data/pubmed-xml-samples/metapub/pmid_xml
  python -m indexing ingest --query "metformin AND cancer" --mindate 2020/01/01 --max 500
  python -m indexing update
  python -m indexing update --xml updatefiles/pubmed26n1335.xml.gz
  python -m indexing schedule --cron "0 3 * * *"
  python -m indexing info --json
"""

UPDATE_EXAMPLES = """
\b
Examples:
  python -m indexing update
  python -m indexing update --wait 600
  python -m indexing update --xml updatefiles/pubmed26n1335.xml.gz
  python -m indexing update --xml updatefiles/
"""

SCHEDULE_EXAMPLES = """
\b
Examples:
  python -m indexing schedule --cron "0 3 * * *"
  python -m indexing schedule --cron "30 2 * * *" --xml-dir /srv/pubmed/updatefiles
  python -m indexing schedule --cron "* * * * * */10" --max-runs 3   (6th field: seconds)
"""


def _setup_logging(quiet: bool, debug: bool) -> None:
    # The model-loading bars of transformers/huggingface_hub say nothing useful to a user.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in (
        "httpx",
        "httpx2",
        "urllib3",
        "huggingface_hub",
        "transformers",
        "sentence_transformers",
        "faiss",
    ):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


@click.group(epilog=EXAMPLES)
@click.option(
    "--quiet", "-q", is_flag=True, help="Only warnings and errors, no progress bars (for cron)."
)
@click.option("--debug", is_flag=True, help="Verbose logs and full tracebacks.")
@click.pass_context
def cli(ctx: click.Context, quiet: bool, debug: bool) -> None:
    """Build and keep current a txtai index of PubMed records (see README for settings)."""
    _setup_logging(quiet, debug)
    ctx.obj = {"quiet": quiet, "debug": debug}


@cli.command()
@click.option("--query", "term", help="PubMed query to fetch through E-utilities (then tracked).")
@click.option("--mindate", help="Earliest entrez date, YYYY/MM/DD (with --query).")
@click.option("--maxdate", help="Latest entrez date, YYYY/MM/DD (with --query).")
@click.option("--max", "max_records", type=click.IntRange(min=1), help="At most N records.")
@click.option(
    "--xml",
    "xml_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="PubMed XML file or folder (.xml, .xml.gz); repeatable.",
)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@WAIT_OPTION
@click.pass_context
def ingest(
    ctx: click.Context,
    term: str | None,
    mindate: str | None,
    maxdate: str | None,
    max_records: int | None,
    xml_paths: tuple[Path, ...],
    paths: tuple[Path, ...],
    wait: float,
) -> None:
    """Add records from an NCBI query (--query) or from PubMed XML files (--xml PATH...)."""
    files = list(xml_paths) + list(paths)
    if bool(term) == bool(files):
        raise click.UsageError("give either --query TERM or --xml PATH (not both, not neither)")
    if files and (mindate or maxdate or max_records):
        raise click.UsageError("--mindate/--maxdate/--max apply to --query only")
    from indexing.ingest import ingest_files, ingest_query

    settings = get_settings()
    quiet, debug = ctx.obj["quiet"], ctx.obj["debug"]
    if term:
        report = guarded(
            lambda: ingest_query(
                term,
                settings,
                mindate=mindate,
                maxdate=maxdate,
                max_records=max_records,
                quiet=quiet,
                wait=wait,
            ),
            debug,
            INTERRUPTED,
        )
    else:
        report = guarded(
            lambda: ingest_files(files, settings, quiet=quiet, wait=wait), debug, INTERRUPTED
        )
    click.echo(report.summary())


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(as_json: bool) -> None:
    """What is indexed: articles, passages, model, version, tracked queries, last run."""
    from indexing.store import IndexInfo, index_info

    info: IndexInfo = guarded(lambda: index_info(get_settings()), False, INTERRUPTED)
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2, sort_keys=True, default=str))
        return
    if not info.index_version:
        click.echo(f"No index published yet in {info.location}.")
        click.echo("Build one: python -m indexing ingest --xml PATH  or  --query TERM")
    else:
        click.echo(f"Index version   {info.index_version} (published {info.published_at})")
        click.echo(f"Articles        {info.articles}")
        click.echo(f"Passages        {info.passages}")
        click.echo(f"Embeddings      {info.embeddings_model} ({info.dimensions}-d)")
        click.echo(f"Entities (NER)  {info.ner_model or 'off (facets from the record only)'}")
        click.echo(f"XML files       {info.applied_files} applied")
        for term, query in sorted(info.queries.items()):
            click.echo(f"Query           {term!r} (last success {query.last_success})")
    if info.last_run:
        run = info.last_run
        click.echo(
            f"Last run        {run['kind']} {run['status']} at {run['finished_at']}: "
            f"+{run['added']} ~{run['revised']} -{run['deleted']}"
            + (f" ({run['error']})" if run.get("error") else "")
        )


@cli.command(epilog=UPDATE_EXAMPLES)
@click.option(
    "--xml",
    "xml_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="PubMed update file or folder (.xml, .xml.gz); repeatable. Applied in name order, "
    "each at most once; a .md5 file beside it is checked first.",
)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@WAIT_OPTION
@click.pass_context
def update(
    ctx: click.Context, xml_paths: tuple[Path, ...], paths: tuple[Path, ...], wait: float
) -> None:
    """Bring the index up to date: tracked queries since their last run, or update files (--xml).

    Exit code 1 when some tracked queries failed and the others were applied ("partial").
    """
    from indexing.job import GracefulStop, update_from_xml, update_queries

    settings = get_settings()
    files = list(xml_paths) + list(paths)
    quiet, debug = ctx.obj["quiet"], ctx.obj["debug"]
    with GracefulStop() as stop:
        if files:
            report = guarded(
                lambda: update_from_xml(files, settings, quiet=quiet, wait=wait), debug, INTERRUPTED
            )
        else:
            report = guarded(
                lambda: update_queries(settings, wait=wait, before_publish=stop.defer),
                debug,
                INTERRUPTED,
            )
    click.echo(report.summary())
    if report.status == "partial":
        ctx.exit(1)  # some queries were applied, some failed: a monitor should notice


@cli.command(epilog=SCHEDULE_EXAMPLES)
@click.option(
    "--cron",
    required=True,
    help='When to update, as a cron expression in local time ("0 3 * * *"); an optional '
    "6th field gives seconds.",
)
@click.option(
    "--xml-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also apply new PubMed update files that appear in this folder.",
)
@click.option(
    "--max-runs", type=click.IntRange(min=1), help="Stop after N runs (default: run until stopped)."
)
@click.option(
    "--wait",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds to wait for another scheduler or writer instead of failing.",
)
@click.pass_context
def schedule(
    ctx: click.Context, cron: str, xml_dir: Path | None, max_runs: int | None, wait: float
) -> None:
    """Run the update on a cron schedule in the foreground (for systemd, a container, a shell).

    Each run is logged and recorded in the history; a failed run is logged and the next tick
    tries again. SIGTERM or SIGINT stops the scheduler (exit 0); a run in progress publishes
    nothing.
    """
    from croniter import croniter

    from indexing.job import run_schedule

    if not croniter.is_valid(cron):
        raise click.BadParameter(f"not a cron expression: {cron!r}", param_hint="--cron")
    settings = get_settings()
    guarded(
        lambda: run_schedule(settings, cron, xml_dir=xml_dir, max_runs=max_runs, wait=wait),
        ctx.obj["debug"],
        INTERRUPTED,
    )


def main() -> None:
    """Entry point; ``prog_name`` makes --help show the command users type."""
    cli(prog_name="python -m indexing")


if __name__ == "__main__":
    main()
