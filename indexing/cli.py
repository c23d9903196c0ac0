"""What the ``python -m indexing`` commands share: options and the message on Ctrl-C.

Errors are rendered by :mod:`indexing.errors` (one line, exit code 2), as for ``rag``.
"""

from __future__ import annotations

import click

# A writer stopped by Ctrl-C publishes nothing; the next run finishes the work.
INTERRUPTED = "interrupted: nothing partial was published; rerun to finish"

WAIT_OPTION = click.option(
    "--wait",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds to wait for another writer to finish instead of failing.",
)
