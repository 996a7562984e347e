"""Adding objects to a TAXII collection: versions added in one call and across calls, in any
order, keep exactly one first and one last version per id; exact duplicates and unversioned
objects (SCOs) seen again are not added (TAXII 2.1 §5.5, STIX 2.1 §6)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from gsomia.node.taxii.store import EngineTransactions, NewObject, TaxiiStore, objects

NOW = datetime(2019, 11, 22, 1, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TaxiiStore]:
    engine = create_engine(f"sqlite:///{tmp_path / 'taxii.db'}")
    yield TaxiiStore(EngineTransactions(engine))
    engine.dispose()


def _sdo(oid: str, minute: int) -> NewObject:
    ts = f"2019-11-22T00:{minute:02d}:00.000Z"
    return NewObject(body={"type": "indicator", "spec_version": "2.1", "id": oid, "created": ts, "modified": ts})


def _rows(store: TaxiiStore) -> list[tuple[Any, ...]]:
    c = objects.c
    with store._read() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(c.stix_id, c.version, c.is_first, c.is_last).order_by(c.stix_id, c.version_us)
            ).all()
        ]


def test_versions_in_one_call_and_across_calls_keep_one_first_and_one_last(store: TaxiiStore) -> None:
    a, b = "indicator--0000000a-0000-4000-8000-000000000000", "indicator--0000000b-0000-4000-8000-000000000000"
    first = store.add("outbox", [_sdo(a, 20), _sdo(a, 10), _sdo(b, 5), _sdo(a, 30), _sdo(a, 20)], now=NOW)
    assert [added for _, _, added in first] == [True, True, True, True, False]
    store.add("outbox", [_sdo(a, 40), _sdo(a, 1), _sdo(b, 5), _sdo(b, 3)], now=NOW)
    assert _rows(store) == [
        (a, "2019-11-22T00:01:00.000Z", True, False),
        (a, "2019-11-22T00:10:00.000Z", False, False),
        (a, "2019-11-22T00:20:00.000Z", False, False),
        (a, "2019-11-22T00:30:00.000Z", False, False),
        (a, "2019-11-22T00:40:00.000Z", False, True),
        (b, "2019-11-22T00:03:00.000Z", True, False),
        (b, "2019-11-22T00:05:00.000Z", False, True),
    ]


def test_an_unversioned_object_seen_again_is_the_same_object(store: TaxiiStore) -> None:
    sco = NewObject(body={"type": "ipv4-addr", "spec_version": "2.1", "id": "ipv4-addr--1", "value": "198.51.100.7"})
    (_, version, added), (_, again, added_again) = store.add("outbox", [sco, sco], now=NOW)
    assert (added, added_again, again) == (True, False, version)
    assert store.add("outbox", [sco], now=NOW)[0] == ("ipv4-addr--1", version, False)
    assert len(_rows(store)) == 1


def test_many_ids_in_one_call(store: TaxiiStore) -> None:
    many = [_sdo(f"indicator--{n:08d}-0000-4000-8000-000000000000", n % 60) for n in range(1_200)]
    assert all(added for _, _, added in store.add("outbox", many, now=NOW))
    assert all(not added for _, _, added in store.add("outbox", many, now=NOW))
    assert len(_rows(store)) == 1_200
    assert store.bodies("outbox", [many[7].stix_id]) == {many[7].stix_id: dict(many[7].body)}


def test_adds_in_one_transaction_keep_order_and_versions_as_separate_calls_do(
    store: TaxiiStore, tmp_path: Path
) -> None:
    a, b = "indicator--0000000a-0000-4000-8000-000000000000", "indicator--0000000b-0000-4000-8000-000000000000"
    calls = [[_sdo(a, 20), _sdo(b, 5)], [_sdo(a, 10), _sdo(a, 30), _sdo(b, 5)], [_sdo(a, 40), _sdo(b, 3)]]
    with store.writing() as w:
        together = [w.add("outbox", call, now=NOW) for call in calls]
    engine = create_engine(f"sqlite:///{tmp_path / 'apart.db'}")
    apart = TaxiiStore(EngineTransactions(engine))
    try:
        assert together == [apart.add("outbox", call, now=NOW) for call in calls]
        assert _rows(store) == _rows(apart)
        # date_added follows the order of the calls, then of the objects in each call
        c = objects.c
        with store._read() as conn:
            order = [(r.stix_id, r.version) for r in conn.execute(select(c.stix_id, c.version).order_by(c.date_added))]
        assert order == [
            (o.stix_id, o.body["modified"])
            for call, added in zip(calls, together, strict=True)
            for o, (_, _, new) in zip(call, added, strict=True)
            if new
        ]
    finally:
        engine.dispose()


def test_a_transaction_that_fails_keeps_neither_objects_nor_statuses(store: TaxiiStore) -> None:
    a = "indicator--0000000a-0000-4000-8000-000000000000"
    store.put_status("s-1", "analyst", {"status": "pending"}, now=NOW)

    def fail_before_commit() -> None:
        with store.writing() as w:
            w.add("outbox", [_sdo(a, 20)], now=NOW)
            w.update_status("s-1", {"status": "complete"})
            w.put_status("s-2", "analyst", {"status": "complete"}, now=NOW)
            raise RuntimeError("the process fails before the commit")

    with pytest.raises(RuntimeError):
        fail_before_commit()
    assert _rows(store) == []
    assert store.status("s-1") == ("analyst", {"status": "pending"})
    assert store.status("s-2") is None


def test_a_stored_text_is_kept_as_given(store: TaxiiStore) -> None:
    body = _sdo("indicator--0000000a-0000-4000-8000-000000000000", 20).body
    # the members in another order than json.dumps(body) would write them: the text is kept
    text = json.dumps({k: body[k] for k in reversed(list(body))}, separators=(",", ":"))
    store.add("outbox", [NewObject(body=body, text=text)], now=NOW)
    assert store.bodies("outbox", [str(body["id"])]) == {body["id"]: dict(body)}
    c = objects.c
    with store._read() as conn:
        assert conn.execute(select(c.body)).scalar() == text


def test_rows_go_to_sqlite_without_a_value_its_driver_must_adapt(store: TaxiiStore) -> None:
    # The driver binds int, float and str directly and looks up an adapter for anything else
    # (None and bool too), which cost more per row than SQLite's own insert: booleans go as
    # 0/1 and a NULL column is left out of the statement. The rows read back as they were.
    from sqlalchemy import event

    bound: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.startswith("INSERT INTO taxii_object"):
            bound.append((statement, parameters if executemany else [parameters]))

    a, b = "indicator--0000000a-0000-4000-8000-000000000000", "indicator--0000000b-0000-4000-8000-000000000000"
    engine = store.db.engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", seen)
    try:
        store.add(
            "inbox",
            [
                NewObject(body=_sdo(a, 10).body, topic="t", delivery="d-1"),
                NewObject(body=_sdo(b, 10).body, topic="t"),
                NewObject(body=_sdo(a, 20).body, topic="t"),
            ],
            now=NOW,
        )
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    values = [v for _, rows in bound for row in rows for v in row]
    assert values and all(type(v) in (int, str) for v in values), {type(v) for v in values}
    assert len(bound) == 2  # one statement with the delivery column, one without
    c = objects.c
    with store._read() as conn:
        stored = conn.execute(select(c.stix_id, c.version, c.delivery, c.is_first, c.is_last).order_by(c.seq)).all()
    assert [tuple(r) for r in stored] == [
        (a, "2019-11-22T00:10:00.000Z", "d-1", True, False),
        (b, "2019-11-22T00:10:00.000Z", None, True, True),
        (a, "2019-11-22T00:20:00.000Z", None, False, True),
    ]


def _from(origin: str, oid: str, minute: int, **kw: Any) -> NewObject:
    return NewObject(body=_sdo(oid, minute).body, origin=origin, **kw)


def test_an_id_another_origin_holds_is_neither_versioned_nor_hidden(store: TaxiiStore) -> None:
    a, b = "indicator--0000000a-0000-4000-8000-000000000000", "indicator--0000000b-0000-4000-8000-000000000000"
    assert store.add("inbox", [_from("JPN", a, 10)], now=NOW)[0][2] is True
    # USA's later version of JPN's object, in its own call and in one call with its own
    later = store.add("inbox", [_from("USA", a, 30)], now=NOW)
    together = store.add("inbox", [_from("USA", b, 5), _from("USA", a, 40), _from("JPN", b, 50)], now=NOW)
    assert [added for _, _, added in [*later, *together]] == [False, True, False, False]
    assert store.add("inbox", [_from("JPN", a, 20)], now=NOW)[0][2] is True  # its originator's next version
    assert _rows(store) == [
        (a, "2019-11-22T00:10:00.000Z", True, False),
        (a, "2019-11-22T00:20:00.000Z", False, True),
        (b, "2019-11-22T00:05:00.000Z", True, True),
    ]


def test_a_marking_definition_or_an_object_the_node_makes_is_stored_once(store: TaxiiStore) -> None:
    marking = {"type": "marking-definition", "spec_version": "2.1", "id": "marking-definition--1"}
    made = {"type": "identity", "spec_version": "2.1", "id": "identity--1", "name": "JPN"}
    first = [
        NewObject(body={**marking, "created": "2026-01-01T00:00:00.000Z"}, origin="JPN"),
        NewObject(body={**made, "modified": "2026-01-01T00:00:00.000Z"}, versioned=False),
    ]
    later = [
        NewObject(body={**marking, "created": "2027-01-01T00:00:00.000Z", "name": "wider"}, origin="JPN"),
        NewObject(body={**made, "modified": "2099-01-01T00:00:00.000Z", "name": "renamed"}, versioned=False),
    ]
    assert [added for _, _, added in store.add("inbox", first, now=NOW)] == [True, True]
    assert [added for _, _, added in store.add("inbox", later, now=NOW)] == [False, False]
    assert store.bodies("inbox", ["marking-definition--1", "identity--1"]) == {o.stix_id: o.body for o in first}


def test_a_table_an_earlier_version_made_gets_the_originator_of_each_row(tmp_path: Path) -> None:
    # Rows stored before the table had origins take their delivery's originator, read from the
    # marking the node made for it; what the node made itself is no originator's.
    from sqlalchemy import MetaData, Table, insert

    from gsomia.interop.stix import DeliveredMarking, NationalMarking
    from gsomia.node.taxii.service import inbox_objects

    def delivered(party: str, delivery: str) -> list[NewObject]:
        marking = DeliveredMarking(
            recipient="KOR",
            level="군사II급비밀",
            originator=NationalMarking(party=party, level="SECRET"),
            common_level="SECRET",
            banner="banner",
            agreement=None,
            delivery=delivery,
            ledger_index=1,
        )
        bundle = {"type": "bundle", "id": "bundle--1", "objects": [_sdo(a, 10 if party == "JPN" else 30).body]}
        return inbox_objects(
            delivered=marking,
            topic="dprk.missile.launch",
            content_type="application/stix+json;version=2.1",
            payload=json.dumps(bundle).encode(),
            created=NOW,
        )

    a = "indicator--0000000a-0000-4000-8000-000000000000"
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    old = Table(objects.name, MetaData(), *[c._copy() for c in objects.c if c.name != "origin"])
    old.create(engine)
    with engine.begin() as conn:
        for n, o in enumerate([*delivered("JPN", "d-1"), *delivered("USA", "d-2")]):
            version = str(o.body.get("modified") or o.body["created"])
            row = {"collection": "inbox", "stix_id": o.stix_id, "stix_type": o.body["type"], "version": version}
            row |= {
                "version_us": n,
                "spec_version": "2.1",
                "date_added": n,
                "topic": o.topic,
                "body": json.dumps(o.body),
            }
            conn.execute(insert(old).values(**row, is_last=True, is_first=True, delivery=o.delivery))
    store = TaxiiStore(EngineTransactions(engine))
    c = objects.c
    with store._read() as conn:
        origins = {(r.delivery, r.stix_type, r.origin) for r in conn.execute(select(c.delivery, c.stix_type, c.origin))}
    assert ("d-1", "indicator", "JPN") in origins and ("d-2", "indicator", "USA") in origins
    assert {o for d, kind, o in origins if kind != "indicator"} == {""}
    later = store.add("inbox", [_from("JPN", a, 50), _from("USA", a, 55)], now=NOW)
    assert [added for _, _, added in later] == [True, False]
    engine.dispose()
