"""Keyword search on PostgreSQL through the GIN index: match first, then rank only the matches.

txtai's ``pgtext`` scoring ranks every row of its table with ``ts_rank(vector,
plainto_tsquery(query))`` and keeps the best (``ORDER BY rank DESC LIMIT n``); with no ``@@``
condition PostgreSQL cannot use the GIN index on ``vector``, so a search reads and ranks all
passages (778 / 1,026 ms p50 / p95 at 1M). :class:`PgKeywords` keeps that ranking exactly and
changes which rows are ranked: only those the GIN index says can score.

``plainto_tsquery`` joins the query's lexemes with AND, and ``ts_rank`` of an AND query scores a
passage holding just one of several distinct lexemes ``1e-20`` (it ranks pairs of query terms by
their distance), which txtai drops (scores must exceed ``1e-5``). So the passages txtai could
ever return are those holding at least two distinct lexemes of the query (or the one lexeme, of
a one-lexeme query): the match is the OR of every pair, ``(a & b) | (a & c) | (b & c)``, which
the GIN index answers from the lexemes' posting lists. A query of more than
:data:`PAIRED_LEXEMES` distinct lexemes is matched with any lexeme instead (``a | b | …``):
the same passages score, more are read to find them.

The user's text only travels as a bound parameter. The match query is built from PostgreSQL's
own text form of ``plainto_tsquery`` (quoted lexemes joined by `` & ``; a lexeme never holds a
space) and is bound too, cast to ``tsquery`` by the server; nothing of it enters the SQL text.

txtai imports this class by the name in an index's configuration
(``"scoring": {"method": "indexing.store.postgres.keywords.PgKeywords", "terms": true}``;
``terms`` marks it a keyword index for txtai). It reads and writes the same table as
``pgtext``, so indexes built with either search the same rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from txtai.scoring.pgtext import PGText

# Distinct lexemes up to which the match is the OR of their pairs (at most 120 pairs); a longer
# query matches any of its lexemes (same results, more rows ranked).
PAIRED_LEXEMES = 16
# txtai's pgtext keeps scores above this; ``ts_rank`` gives 1e-20 to what cannot match.
MIN_SCORE = 1e-5


def lexemes(tsquery: str) -> list[str]:
    """The distinct quoted lexemes of ``plainto_tsquery``'s text form, in query order."""
    return list(dict.fromkeys(part.strip() for part in tsquery.split(" & ") if part.strip()))


def match_query(tsquery: str) -> str | None:
    """tsquery text matching every passage that ``ts_rank(vector, tsquery)`` scores above 1e-20.

    ``tsquery`` is ``plainto_tsquery``'s text form; None when it holds no lexeme (only stop
    words, or punctuation).
    """
    found = lexemes(tsquery)
    if len(found) <= 1:
        return found[0] if found else None
    if len(found) > PAIRED_LEXEMES:
        return " | ".join(found)
    return " | ".join(
        f"( {first} & {second} )"
        for number, first in enumerate(found)
        for second in found[number + 1 :]
    )


class PgKeywords(PGText):
    """txtai's ``pgtext`` ranking, computed only for the passages the GIN index matches.

    ``searched`` False makes :meth:`search` return nothing: the reader sets it for a search
    whose keyword weight is 0, whose keyword results txtai would compute and then ignore.
    """

    searched = True

    def search(self, query: str, limit: int = 3) -> list[tuple[int, float]]:
        """The ``limit`` best ``(indexid, ts_rank)`` of the passages matching ``query``."""
        if not self.searched:
            return []
        statement = self._ranking(query, limit)
        if statement is None:
            return []
        rows = self.database.execute(*statement)
        return [(int(uid), float(score)) for uid, score in rows if score > MIN_SCORE]

    def explain(self, query: str, limit: int = 3, *, analyze: bool = False) -> list[str]:
        """PostgreSQL's plan of :meth:`search`'s ranking statement (for tests and benchmarks);
        with ``analyze``, run and timed (``EXPLAIN ANALYZE``)."""
        statement = self._ranking(query, limit)
        if statement is None:
            return []
        sql, params = statement
        verb = "EXPLAIN (ANALYZE, BUFFERS)" if analyze else "EXPLAIN"
        rows: Any = self.database.execute(text(f"{verb} {sql.text}"), params)
        return [str(line) for (line,) in rows]

    def _ranking(self, query: str, limit: int) -> tuple[Any, dict[str, Any]] | None:
        """The ranking statement and its parameters; None when the query has no lexeme."""
        params: dict[str, Any] = {"language": self.language, "query": query, "limit": int(limit)}
        tsquery = self.database.execute(
            text(f"SELECT {_PLAIN}::text"), {"language": self.language, "query": query}
        ).scalar()
        params["match"] = match_query(str(tsquery or ""))
        if params["match"] is None:
            return None
        table = self.engine.dialect.identifier_preparer.quote(self.table.name)
        sql = text(
            f"SELECT indexid, ts_rank(vector, {_PLAIN}) AS rank FROM {table} "
            "WHERE vector @@ CAST(:match AS tsquery) ORDER BY rank DESC, indexid LIMIT :limit"
        )
        return sql, params


# The query's lexemes as txtai's pgtext ranks them (the configured text-search language).
_PLAIN = "plainto_tsquery(CAST(:language AS regconfig), :query)"
