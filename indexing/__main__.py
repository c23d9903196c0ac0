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


def _setup_logging(quiet: bool, debug: bool) -> None:
    # The model-loading bars of transformers/huggingface_hub say nothing useful to a user.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in (
        "httpx",
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


def main() -> None:
    """Entry point; ``prog_name`` makes --help show the command users type."""
    from indexing import job

    job.register(cli)
    cli(prog_name="python -m indexing")


if __name__ == "__main__":
    main()
