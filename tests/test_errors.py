"""The one user-error type and the guard every command line runs its work in."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from evaluation.errors import EvalDataError
from indexing.entrez import EntrezError
from indexing.errors import UserError, guarded
from indexing.job import ChecksumError
from indexing.models import ModelUnavailableError
from indexing.pubmed import PubmedXMLError
from indexing.store import IndexStoreError
from rag.errors import RagError


def command(action: object, debug: bool = False, interrupted: str = "interrupted") -> click.Command:
    @click.command()
    def run() -> None:
        guarded(action, debug, interrupted)  # type: ignore[arg-type]

    return run


def fail(exc: BaseException) -> object:
    def action() -> None:
        raise exc

    return action


@pytest.mark.parametrize(
    "error",
    [EntrezError, IndexStoreError, PubmedXMLError, ModelUnavailableError, ChecksumError,
     RagError, EvalDataError],
)  # fmt: skip
def test_every_named_error_is_a_user_error_shown_as_one_line_with_exit_code_2(
    error: type[Exception],
) -> None:
    result = CliRunner().invoke(command(fail(error("the index is locked"))))

    assert issubclass(error, UserError)
    assert result.exit_code == 2
    assert result.output == "error: the index is locked\n"


def test_a_missing_file_or_a_bad_value_reads_the_same() -> None:
    missing = CliRunner().invoke(command(fail(FileNotFoundError("no such file: x.xml"))))
    bad = CliRunner().invoke(command(fail(ValueError("not a date: 2024/13/01"))))

    assert (missing.exit_code, missing.output) == (2, "error: no such file: x.xml\n")
    assert (bad.exit_code, bad.output) == (2, "error: not a date: 2024/13/01\n")


def test_debug_shows_the_traceback_and_reraises() -> None:
    shown = CliRunner().invoke(command(fail(RagError("no index")), debug=True))
    raised = CliRunner().invoke(command(fail(OSError("disk full")), debug=True))

    assert shown.exit_code == 2
    assert "Traceback" in shown.output and shown.output.endswith("error: no index\n")
    assert isinstance(raised.exception, OSError)  # not caught: Python's own traceback


def test_ctrl_c_exits_130_with_the_message_given() -> None:
    result = CliRunner().invoke(command(fail(KeyboardInterrupt()), interrupted="stop"))

    assert result.exit_code == 130
    assert result.output == "stop\n"


def test_a_bug_is_not_a_user_error() -> None:
    result = CliRunner().invoke(command(fail(KeyError("pmid"))))

    assert isinstance(result.exception, KeyError)
