"""Where txtai finds the content store of PostgreSQL indexes published before ``indexing.store``.

Their stored configuration names ``indexing.pgcontent.PgContent``; new indexes name
:class:`indexing.store.postgres.content.PgContent`, the same class.
"""

from indexing.store.postgres.content import INTEGER_COLUMNS, PgContent

__all__ = ["INTEGER_COLUMNS", "PgContent"]
