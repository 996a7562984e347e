"""Bulk inserts store exactly what an INSERT stores, on both backends (COPY on PostgreSQL), and
fail as an INSERT fails: a constraint violation is SQLAlchemy's IntegrityError, and the rows
of a failed bulk insert are not stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from sqlalchemy import Table, Text, insert, select
from sqlalchemy import cast as cast_
from sqlalchemy.exc import IntegrityError

from gsomia import jsontext
from gsomia.errors import StorageError
from gsomia.storage.bulk import COPY_MIN_ROWS, insert_rows
from gsomia.storage.exchange import InboxEventRow, SubmittedReportRow
from gsomia.storage.store import Store

KST = timezone(timedelta(hours=9))


def _report(n: int) -> dict[str, Any]:
    return {
        "id": f"JPN/R-{n}",
        "originator": "JPN",
        "topic": "dprk.missile.launch",
        "level": "極秘",
        "caveats": {"rel_to": ["KOR", "USA"], "noforn": False, "orcon": n % 2 == 0, "note": "é\t\\\n\"'"},
        "created": "2019-11-22T10:00:00+09:00",
        "recipients": ["KOR", "USA"] if n % 3 else None,
        "content_type": "application/octet-stream",
        "payload_size": n,
        "digest": f"{n:064x}",
        "key": "fp",
        "signature": "c2ln",
        # every byte value, a backslash and COPY's own separators among them
        "payload": bytes(range(256)) + b"\\\t\n\r" + n.to_bytes(4, "big"),
        "sealed_key": b"\x00" * 60,
        "received_at": datetime(2019, 11, 22, 10, 0, n % 60, 123456, tzinfo=KST),
        "leaf_index": n,
        "signed_report": '{"id":"R"}',
        "salt": bytes([n % 256]) * 32,
    }


def _stored(store: Store) -> list[tuple[Any, ...]]:
    table = cast(Table, SubmittedReportRow.__table__)
    with store.reading() as s:
        return [tuple(r) for r in s.execute(select(table).order_by(table.c.leaf_index))]


@pytest.mark.parametrize("count", [1, COPY_MIN_ROWS, 40])
def test_a_bulk_insert_stores_what_an_insert_stores(db_url: str, tmp_path: Any, count: int) -> None:
    table = cast(Table, SubmittedReportRow.__table__)
    rows = [_report(n) for n in range(count)]
    bulk = Store(db_url)
    plain = Store(f"sqlite:///{tmp_path / 'reference.db'}")
    try:
        with bulk.writing("test") as s:
            insert_rows(s.connection(), table, rows)
        with plain.writing("test") as s:
            s.connection().execute(insert(table), rows)
        stored = _stored(bulk)
        assert stored == _stored(plain)
        assert len(stored) == count
        received = list(table.c).index(table.c.received_at)
        assert stored[0][received] == rows[0]["received_at"].astimezone(UTC)
    finally:
        bulk.close()
        plain.close()


def test_server_defaults_apply_and_rows_keep_their_order(db_url: str) -> None:
    table = cast(Table, InboxEventRow.__table__)
    at = datetime(2019, 11, 22, tzinfo=UTC)
    rows = [
        {"party": "KOR", "kind": "delivery", "ref": f"d-{n}", "body": {"n": n}, "created_at": at} for n in range(30)
    ]
    store = Store(db_url)
    try:
        with store.writing("test") as s:
            insert_rows(s.connection(), table, rows)
        with store.reading() as s:
            got = s.execute(select(table.c.seq, table.c.ref, table.c.body).order_by(table.c.seq)).all()
        assert [r.ref for r in got] == [f"d-{n}" for n in range(30)]
        assert [r.body for r in got] == [{"n": n} for n in range(30)]
        assert len({r.seq for r in got}) == 30
    finally:
        store.close()


def test_a_violated_constraint_is_an_integrity_error_and_stores_nothing(db_url: str) -> None:
    table = cast(Table, SubmittedReportRow.__table__)
    rows = [_report(n) for n in range(20)]
    rows[15] = _report(3)  # a second report under an id already in this bulk insert
    store = Store(db_url)
    try:
        with pytest.raises(StorageError) as raised, store.writing("test") as s:
            insert_rows(s.connection(), table, rows)
        assert isinstance(raised.value.__cause__, IntegrityError)
        assert _stored(store) == []
        with store.writing("test") as s:  # the connection is usable again
            insert_rows(s.connection(), table, rows[:10])
        assert len(_stored(store)) == 10
    finally:
        store.close()


@pytest.mark.parametrize("count", [1, COPY_MIN_ROWS])
def test_json_columns_hold_compact_utf8_text_that_reads_back_as_the_value(db_url: str, count: int) -> None:
    table = cast(Table, InboxEventRow.__table__)
    at = datetime(2019, 11, 22, tzinfo=UTC)
    body = {"banner": "군사II급비밀 (JPN 極秘)", "n": [1, 2.5, None, True], "q": 'a"\n\\', "deep": {"x": {}}}
    rows = [{"party": "KOR", "kind": "delivery", "ref": f"d-{n}", "body": body, "created_at": at} for n in range(count)]
    store = Store(db_url)
    try:
        with store.writing("test") as s:
            insert_rows(s.connection(), table, rows)
        with store.reading() as s:
            raw = s.execute(select(cast_(table.c.body, Text))).scalars().all()
            values = s.execute(select(table.c.body)).scalars().all()
        assert raw == [jsontext.compact(body)] * count  # one spelling, as the stream sends it
        assert values == [body] * count
    finally:
        store.close()


def test_rows_naming_different_columns_still_go_in_as_an_insert_would_put_them(db_url: str) -> None:
    table = cast(Table, SubmittedReportRow.__table__)
    rows = [_report(n) for n in range(12)]
    for n in range(0, 12, 3):
        del rows[n]["recipients"]  # a nullable column left out of some rows only
    store = Store(db_url)
    try:
        with store.writing("test") as s:
            insert_rows(s.connection(), table, rows)
        stored = _stored(store)
        column = list(table.c).index(table.c.recipients)
        assert [r[column] for r in stored] == [None if n % 3 == 0 else ["KOR", "USA"] for n in range(12)]
    finally:
        store.close()
