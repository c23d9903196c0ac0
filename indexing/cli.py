"""What the command-line entry points share: the errors a user can act on, and options."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click


def user_errors() -> tuple[type[Exception], ...]:
    """Failures a user can act on from their message alone (bad input, network, locks, models)."""
    from indexing.entrez import EntrezError
    from indexing.models import ModelUnavailableError
    from indexing.pubmed import PubmedXMLError
    from indexing.store import IndexStoreError

    return (
        EntrezError,
        IndexStoreError,
        PubmedXMLError,
        ModelUnavailableError,
        OSError,
        ValueError,
    )


WAIT_OPTION = click.option(
    "--wait",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds to wait for another writer to finish instead of failing.",
)


def run_guarded(action: Callable[[], Any], debug: bool) -> Any:
    """Run a command body; known failures become one line on stderr and exit code 2."""
    try:
        return action()
    except KeyboardInterrupt:
        click.echo("interrupted: nothing partial was published; rerun to finish", err=True)
        sys.exit(130)
    except user_errors() as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
