"""A TAXII client polling a collection for ever (``added_after`` = the last page's
``X-TAXII-Date-Added-Last``, TAXII 2.1 §3.4) sees every object once, whatever the writers do
meanwhile: writers overlapping in time, a clock set back, a bulk load."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event

from gsomia.errors import InvalidInput
from gsomia.node.taxii.store import EngineTransactions, NewObject, Query, TaxiiStore, from_us, to_us

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def _ind(n: int) -> dict[str, Any]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--00000000-0000-4000-8000-{n:012d}",
        "created": "2019-11-22T00:58:00.000Z",
        "modified": "2019-11-22T00:58:00.000Z",
        "name": f"i{n}",
        "pattern": "[ipv4-addr:value = '198.51.100.1']",
        "pattern_type": "stix",
        "valid_from": "2019-11-22T00:58:00Z",
    }


@pytest.fixture
def store(tmp_path: Path) -> TaxiiStore:
    engine = create_engine(f"sqlite:///{tmp_path / 'taxii.db'}", connect_args={"check_same_thread": False})
    return TaxiiStore(EngineTransactions(engine))


class Poller:
    """What a MISP or OpenCTI connector does: pages of ``limit`` from the last page's
    X-TAXII-Date-Added-Last on."""

    def __init__(self, store: TaxiiStore, collection: str = "inbox") -> None:
        self.store, self.collection = store, collection
        self.after: int | None = None
        self.seen: list[str] = []

    def poll(self) -> None:
        while True:
            page = self.store.page(self.collection, Query(after_us=self.after, limit=2))
            if not page.rows:
                return
            self.seen += [r.stix_id for r in page.rows]
            # the header is a TAXII timestamp; the client sends it back as it came
            self.after = to_us(datetime.fromisoformat(from_us(page.rows[-1].date_added).replace("Z", "+00:00")))
            if not page.more:
                return


def test_a_bulk_load_behind_what_a_poller_read_is_refused_whole(store: TaxiiStore) -> None:
    store.add("inbox", [NewObject(body=_ind(1))], now=T0)
    poller = Poller(store)
    poller.poll()
    # rows dated before the object the poller has read: it would never see them
    early = to_us(T0 - timedelta(days=1))
    rows = [(_ind(n)["id"], "indicator", "2019-11-22T00:58:00.000Z", early + n, "t", "{}") for n in (2, 3)]
    with pytest.raises(InvalidInput, match="not after"):
        store.bulk_load("inbox", rows)
    assert store.count("inbox") == 1
    # out of order within the load: refused too, nothing stored
    start = store.next_added("inbox", now=T0 - timedelta(days=1))
    rows = [(_ind(n)["id"], "indicator", "2019-11-22T00:58:00.000Z", start + 5 - n, "t", "{}") for n in (2, 3)]
    with pytest.raises(InvalidInput, match="row 1"):
        store.bulk_load("inbox", rows)
    assert store.count("inbox") == 1
    # from next_added() on, the poller sees every row once
    rows = [(_ind(n)["id"], "indicator", "2019-11-22T00:58:00.000Z", start + n, "t", "{}") for n in (2, 3)]
    store.bulk_load("inbox", rows)
    store.add("inbox", [NewObject(body=_ind(4))], now=T0 - timedelta(days=2))
    poller.poll()
    assert poller.seen == [_ind(n)["id"] for n in (1, 2, 3, 4)]


def test_a_write_committing_after_a_later_started_one_is_never_behind_a_poller(store: TaxiiStore) -> None:
    """Two writers (the feed and a POST's results) overlap: the first holds its transaction open
    while the second, stamped earlier by a clock set back, waits; a poller reads in between.
    Whatever order they commit in, date_added follows the commits, so nothing is behind the
    poller's boundary."""
    inside, release = threading.Event(), threading.Event()
    store.add("inbox", [NewObject(body=_ind(1))], now=T0)

    def slow_feed() -> None:
        with store.writing() as w:
            w.add("inbox", [NewObject(body=_ind(2)), NewObject(body=_ind(3))], now=T0 + timedelta(seconds=5))
            inside.set()
            assert release.wait(10)

    feed = threading.Thread(target=slow_feed)
    feed.start()
    assert inside.wait(10)
    poster = threading.Thread(target=lambda: store.add("inbox", [NewObject(body=_ind(4))], now=T0 - timedelta(hours=1)))
    poster.start()
    poller = Poller(store)
    poller.poll()  # the feed's rows are not committed yet, the POST's waits behind them
    assert poller.seen == [_ind(1)["id"]]
    release.set()
    feed.join(10)
    poster.join(10)
    poller.poll()
    assert poller.seen == [_ind(n)["id"] for n in (1, 2, 3, 4)]
    added = [r.date_added for r in store.page("inbox", Query(limit=10)).rows]
    assert added == sorted(set(added))


def test_a_bulk_load_is_refused_if_another_process_wrote_after_its_check(tmp_path: Path) -> None:
    """Another process's writer (its own connection, its own locks) commits between the bulk
    load's check and its insert: the load would land behind that writer's objects."""
    path = tmp_path / "taxii.db"
    engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})
    store = TaxiiStore(EngineTransactions(engine))
    other = TaxiiStore(EngineTransactions(create_engine(f"sqlite:///{path}")))
    store.add("inbox", [NewObject(body=_ind(1))], now=T0)
    start = store.next_added("inbox", now=T0)
    rows = [(_ind(n)["id"], "indicator", "2019-11-22T00:58:00.000Z", start + n, "t", "{}") for n in (2, 3)]
    fired: list[str] = []

    def interleave(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO taxii_object") and not fired:
            fired.append(statement)
            other.add("inbox", [NewObject(body=_ind(9))], now=T0 + timedelta(hours=1))

    event.listen(engine, "before_cursor_execute", interleave)
    with pytest.raises(InvalidInput, match="another writer"):
        store.bulk_load("inbox", rows)
    assert fired
    assert [r.stix_id for r in store.page("inbox", Query(limit=10)).rows] == [_ind(1)["id"], _ind(9)["id"]]
