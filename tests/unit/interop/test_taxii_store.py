"""Adding objects to a TAXII collection: versions added in one call and across calls, in any
order, keep exactly one first and one last version per id; exact duplicates and unversioned
objects (SCOs) seen again are not added (TAXII 2.1 §5.5, STIX 2.1 §6)."""

from __future__ import annotations

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
