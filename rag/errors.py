"""Named errors of the read side; the CLI and the app turn them into one-line messages."""

from __future__ import annotations

from indexing.errors import UserError


class RagError(UserError, RuntimeError):
    """Base class of every error ``rag`` raises on purpose."""


class SearchError(RagError):
    """A search could not run."""


class EmptyQueryError(SearchError):
    """The query is empty or only whitespace."""


class IndexMissingError(SearchError):
    """No index has been published yet."""


class EmptyIndexError(SearchError):
    """The published index holds no articles."""


class GenerationError(RagError):
    """The generator failed; the retrieved sources are still valid."""


class GeneratorBusyError(GenerationError):
    """Other questions held the shared generator for longer than the wait allows."""


class GeneratorUnavailableError(GenerationError):
    """The generator model cannot be found, downloaded or loaded."""


class VerdictModelError(RagError):
    """The named verdict model (yes/no/maybe per article) cannot be loaded."""


class RerankerUnavailableError(SearchError):
    """The cross-encoder (``PUBMED_RAG_RERANKER``) cannot be found, downloaded or loaded."""
