"""The one error type a user sees, and the guard every command line runs its work in.

Every error that ``indexing``, ``rag`` and ``evaluation`` raise on purpose (``EntrezError``,
``IndexStoreError``, ``RagError``…) is a :class:`UserError`: its message is one line a user can
act on. ``click`` renders it (``error: …`` on stderr, exit code 2) wherever it escapes a
command, and the app shows the same message with ``st.error``. :func:`guarded` turns the
operating system's and the parsers' errors into the same thing. This module imports nothing
of the project, so both sides (and the app) can use it; ``indexing`` never imports ``rag``.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import IO, Any, TypeVar

import click

T = TypeVar("T")


class UserError(click.ClickException):
    """A failure the user can act on from its message alone; shown as one line, exit code 2."""

    exit_code = 2

    def __init__(self, message: object) -> None:
        super().__init__(str(message))

    def show(self, file: IO[Any] | None = None) -> None:
        """Print ``error: <message>`` on stderr (the one place a user error is rendered)."""
        click.echo(f"error: {self.format_message()}", file=file, err=True)


# Failures a user can act on: ours, and a missing/unreadable file or a malformed value.
USER_ERRORS: tuple[type[Exception], ...] = (UserError, OSError, ValueError)


def guarded(action: Callable[[], T], debug: bool, interrupted: str = "interrupted") -> T:
    """Run a command body; a user error becomes one line on stderr and exit code 2.

    Args:
        action: the command's work.
        debug: show the full traceback as well (``--debug``).
        interrupted: what to print on Ctrl-C (exit code 130).
    """
    try:
        return action()
    except KeyboardInterrupt:
        click.echo(interrupted, err=True)
        sys.exit(130)
    except UserError:
        if debug:
            # click prints only the message of a UserError: show where it came from too.
            click.echo(traceback.format_exc(), err=True, nl=False)
        raise
    except USER_ERRORS as exc:
        if debug:
            raise
        raise UserError(exc) from exc
