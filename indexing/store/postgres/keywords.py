"""Keyword search on PostgreSQL through the GIN index: match first, then rank only the matches.

txtai's ``pgtext`` scoring ranks every row of its table with ``ts_rank(vector,
plainto_tsquery(query))`` and keeps the best (``ORDER BY rank DESC LIMIT n``); with no ``@@``
condition PostgreSQL cannot use the GIN index on ``vector``, so a search reads and ranks all
passages (778 / 1,026 ms p50 / p95 at 1M). :class:`PgKeywords` keeps that ranking (the same
``ts_rank``, normalisation 0) and changes which rows are ranked: only those the GIN index says
can score, and, for queries of very common words, only those that also hold a rarer one.

``plainto_tsquery`` joins the query's lexemes with AND, and ``ts_rank`` of an AND query scores a
passage holding just one of several distinct lexemes ``1e-20`` (it ranks pairs of query terms by
their distance), which txtai drops (scores must exceed ``1e-5``). So the passages txtai could
ever return are those holding at least two distinct lexemes of the query (or the one lexeme, of
a one-lexeme query): the match is the OR of every pair, ``(a & b) | (a & c) | (b & c)``, which
the GIN index answers from the lexemes' posting lists. A query of more than
:data:`PAIRED_LEXEMES` distinct lexemes is matched with any lexeme instead (``a | b | …``):
the same passages score, more are read to find them.

Up to this point the results are exactly pgtext's. But ranking costs about 4 µs a matched
passage (measured at 100k), and a pair of common words can match much of the table. So when ``pg_stats`` (the planner's per-lexeme
shares, collected by the ANALYZE the writer runs at publish) estimates more than
:data:`RANKED_ROWS` matches, the commonest lexemes stop pairing with each other: a passage
must then hold a rarer lexeme of the query too (and of a long query, the
:data:`PAIRED_LEXEMES` rarest are paired). That bounds the work, and it is where results
differ from pgtext's: a passage holding only the query's commonest words, which ``ts_rank``
(no IDF) may rank first, is not ranked at all. Measured on the bench's synthetic 100k
passages, whose Zipf-distributed words make most queries hit this (65 of 100), the top 10
keep 51% of pgtext's (25% of the narrowed queries'), and the keyword statement takes 12 / 123
ms p50 / p95 instead of 88 / 116 (``benchmarks/results/bench-2026-12-02-postgres.json``); no
retrieval-quality benchmark runs on PostgreSQL yet to say whether that is worse or better.

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
# Passages one keyword search should rank at most, by the planner's statistics: above it the
# pairs of the query's commonest lexemes are not matched (:func:`pairs_within`).
RANKED_ROWS = 20_000
# txtai's pgtext keeps scores above this; ``ts_rank`` gives 1e-20 to what cannot match.
MIN_SCORE = 1e-5


def lexemes(tsquery: str) -> list[str]:
    """The distinct quoted lexemes of ``plainto_tsquery``'s text form, in query order."""
    return list(dict.fromkeys(part.strip() for part in tsquery.split(" & ") if part.strip()))


def unquote(lexeme: str) -> str:
    """A lexeme as ``pg_stats`` lists it: without tsquery's quotes and escapes."""
    return lexeme[1:-1].replace("''", "'").replace("\\\\", "\\")


def match_query(
    tsquery: str, frequency: dict[str, float] | None = None, rows: float = 0.0
) -> str | None:
    """tsquery text matching the passages that ``ts_rank(vector, tsquery)`` scores above 1e-20.

    ``tsquery`` is ``plainto_tsquery``'s text form; None when it holds no lexeme (only stop
    words, or punctuation). With ``frequency`` (lexeme -> share of the ``rows`` passages
    holding it) the pairs of the most common lexemes are left out while the estimated matches
    exceed :data:`RANKED_ROWS` (see :func:`pairs_within`).
    """
    found = lexemes(tsquery)
    frequency = frequency or {}
    if frequency and len(found) > 1:
        # a lexeme no passage holds pairs with nothing; one lexeme left cannot score
        found = [lexeme for lexeme in found if shares([lexeme], frequency)[lexeme] > 0]
        if len(found) < 2:
            return None
    if len(found) <= 1:
        return found[0] if found else None
    if len(found) > PAIRED_LEXEMES:
        share = shares(found, frequency)
        if not share or rows * sum(share.values()) <= RANKED_ROWS:
            return " | ".join(found)
        found = sorted(found, key=lambda lexeme: share[lexeme])[:PAIRED_LEXEMES]
    pairs = pairs_within(found, frequency, rows)
    return " | ".join(f"( {first} & {second} )" for first, second in pairs)


def shares(found: list[str], frequency: dict[str, float]) -> dict[str, float]:
    """Each lexeme's share of passages; one ``pg_stats`` does not list counts as its rarest."""
    if not frequency:
        return {}
    floor = min(frequency.values())
    return {lexeme: frequency.get(unquote(lexeme), floor) for lexeme in found}


def pairs_within(
    found: list[str], frequency: dict[str, float], rows: float
) -> list[tuple[str, str]]:
    """The pairs of ``found`` to match: all, or without those of the commonest lexemes.

    The estimate of a pair's passages is ``rows · f(a) · f(b)`` (independent lexemes; a lexeme
    ``pg_stats`` does not list is taken to be as rare as the rarest it lists). While the sum
    exceeds :data:`RANKED_ROWS`, the commonest lexeme still paired with another common one
    stops pairing with the common ones: a passage must then also hold a rarer lexeme. The
    rarest lexeme keeps every pair, so something always matches.
    """
    every = [(a, b) for number, a in enumerate(found) for b in found[number + 1 :]]
    share = shares(found, frequency)
    if not share or rows <= 0:
        return every
    common: set[str] = set()
    by_share = sorted(found, key=lambda lexeme: -share[lexeme])
    pairs = every
    for lexeme in by_share[:-1]:
        if rows * sum(share[a] * share[b] for a, b in pairs) <= RANKED_ROWS:
            break
        common.add(lexeme)
        pairs = [(a, b) for a, b in every if not (a in common and b in common)]
    return pairs


class PgKeywords(PGText):
    """txtai's ``pgtext`` ranking, computed only for the passages the GIN index matches."""

    def search(self, query: str, limit: int = 3) -> list[tuple[int, float]]:
        """The ``limit`` best ``(indexid, ts_rank)`` of the passages matching ``query``."""
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
        frequency, rows = self.statistics()
        table = self.engine.dialect.identifier_preparer.quote(self.table.name)
        found = lexemes(str(tsquery or ""))
        unlisted = [lexeme for lexeme in found if unquote(lexeme) not in frequency]
        if frequency and rows > 0 and len(found) > 1 and unlisted:
            # Lexemes pg_stats does not list are rare: count them (cheap through the index),
            # so that one found nowhere is not the one a narrowed match depends on.
            counts = ", ".join(
                f"(SELECT count(*) FROM (SELECT 1 FROM {table} WHERE vector @@ "
                f"CAST(:l{number} AS tsquery) LIMIT :cap) AS s{number})"
                for number in range(len(unlisted))
            )
            found_in = self.database.execute(
                text(f"SELECT ARRAY[{counts}]"),
                {"cap": RANKED_ROWS, **{f"l{n}": lexeme for n, lexeme in enumerate(unlisted)}},
            ).scalar()
            frequency = {
                **frequency,
                **{
                    unquote(lexeme): int(count) / rows
                    for lexeme, count in zip(unlisted, found_in, strict=True)
                },
            }
        params["match"] = match_query(str(tsquery or ""), frequency, rows)
        if params["match"] is None:
            return None
        sql = text(
            f"SELECT indexid, ts_rank(vector, {_PLAIN}) AS rank FROM {table} "
            "WHERE vector @@ CAST(:match AS tsquery) ORDER BY rank DESC, indexid LIMIT :limit"
        )
        return sql, params

    def match_every_pair(self, query: str) -> str | None:
        """The match without the row budget (every pair): what :meth:`search` narrows."""
        tsquery = self.database.execute(
            text(f"SELECT {_PLAIN}::text"), {"language": self.language, "query": query}
        ).scalar()
        return match_query(str(tsquery or ""))

    def statistics(self) -> tuple[dict[str, float], float]:
        """``pg_stats``' commonest lexemes of the table (share of passages), and its rows.

        Read once: a published version never changes (the writer runs ANALYZE before it
        publishes). Empty before the table was analyzed: then every pair is matched.
        """
        if self._statistics is None:
            row = self.database.execute(text(_STATISTICS), {"table": self.table.name}).first()
            frequency: dict[str, float] = {}
            rows = 0.0
            if row is not None:
                rows = max(float(row[0] or 0.0), 0.0)
                if row[1] and row[2]:
                    frequency = dict(zip(row[1], (float(f) for f in row[2]), strict=False))
            self._statistics = (frequency, rows)
        return self._statistics

    _statistics: tuple[dict[str, float], float] | None = None


# The most common lexemes of the keyword table and their shares of its rows (the frequencies
# list ends with three more numbers, min, max and null share, which zip() leaves out).
_STATISTICS = (
    "SELECT c.reltuples, s.most_common_elems::text::text[], s.most_common_elem_freqs "
    "FROM pg_class c LEFT JOIN pg_stats s ON s.schemaname = c.relnamespace::regnamespace::text "
    "AND s.tablename = c.relname AND s.attname = 'vector' WHERE c.oid = to_regclass(:table)"
)
# The query's lexemes as txtai's pgtext ranks them (the configured text-search language).
_PLAIN = "plainto_tsquery(CAST(:language AS regconfig), :query)"
