"""The error of a benchmark file that cannot be used."""

from __future__ import annotations

from indexing.errors import UserError


class EvalDataError(UserError, ValueError):
    """A benchmark file is missing or malformed."""
