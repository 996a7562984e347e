"""Bulk inserts inside a write transaction: ``COPY … FROM STDIN`` on PostgreSQL, a Core
``executemany`` elsewhere.

A submission writes about thirty rows (the report, its decisions, deliveries, inbox items and
ledger entries with their readers), and the writer holds the exchange's write lock while it
inserts them. psycopg runs an ``executemany`` as one pipelined ``INSERT`` per row, each row
dumped and sent on its own; ``COPY`` streams every row of a table in one command, formatted in
psycopg's C code, and the server parses no statement per row. The values go through the same
SQLAlchemy bind processors as an ``INSERT`` (``UTCDateTime``, ``JSON``), so the stored rows are
identical; a database error is raised as SQLAlchemy raises it for any statement (an
``IntegrityError``, or an ``OperationalError`` that invalidates a lost connection).

Each run of rows naming the same columns is inserted on its own. COPY needs that no omitted
column has a Python-side default (the server's defaults, such as a sequence, apply as for
``INSERT``); rows that do not qualify, and small batches, take the ``executemany`` path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Insert, Table, insert

__all__ = ["COPY_MIN_ROWS", "insert_rows"]

COPY_MIN_ROWS = 8
"""Fewer rows than this are inserted with ``executemany`` (a COPY has a fixed cost)."""


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``table`` in ``conn``'s open transaction, in order.

    Each run of consecutive rows that name the same columns is one statement: a single
    ``executemany`` would take its columns from the first row and drop a value the first row
    does not name.

    Raises:
        sqlalchemy.exc.DBAPIError: as for an ``INSERT`` (constraint violations, a lost
            connection); the transaction is then to be rolled back by the caller, as after any
            failed statement.
    """
    keys = [tuple(row) for row in rows]
    start = 0
    for end in range(1, len(rows) + 1):
        if end == len(rows) or keys[end] != keys[start]:
            _insert_run(conn, table, rows[start:end], keys[start])
            start = end


def _insert_run(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], columns: tuple[str, ...]) -> None:
    direct = _no_python_default_omitted(table, columns)
    if conn.dialect.name != "postgresql" or len(rows) < COPY_MIN_ROWS or not direct:
        conn.execute(_insert(table), list(rows))
        return
    processors: list[Callable[[Any], Any] | None] = [
        table.c[name].type._cached_bind_processor(conn.dialect)  # the processor an INSERT uses
        for name in columns
    ]
    quoted = ", ".join(conn.dialect.identifier_preparer.quote(name) for name in columns)
    sql = f"COPY {conn.dialect.identifier_preparer.format_table(table)} ({quoted}) FROM STDIN"  # names from the schema, quoted
    raw = conn.connection.driver_connection
    assert raw is not None  # noqa: S101 - an open transaction holds a live connection
    try:
        with raw.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(
                    [
                        value if proc is None else proc(value)
                        for value, proc in zip(row.values(), processors, strict=True)
                    ]
                )
    except conn.dialect.loaded_dbapi.Error as e:
        # What SQLAlchemy does for a failed statement: the matching DBAPIError subclass, and
        # a connection lost meanwhile invalidated so the pool does not hand it out again.
        conn._handle_dbapi_exception(e, sql, {}, None, None)  # always raises


@functools.cache
def _insert(table: Table) -> Insert:
    # One statement per table, kept: building it (its cache key) for every commit cost more
    # than a small commit's rows.
    return insert(table)


@functools.lru_cache(maxsize=256)
def _no_python_default_omitted(table: Table, columns: tuple[str, ...]) -> bool:
    """True if no column left out of ``columns`` has a Python-side default (only a Core
    ``INSERT`` would compute it)."""
    named = set(columns)
    return all(c.default is None for c in table.columns if c.name not in named)
