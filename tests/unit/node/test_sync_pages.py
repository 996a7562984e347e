"""A page of deliveries is verified concurrently and stored in inbox order, in groups: what was
verified before the exchange went away mid-page is kept, with the cursor right after it, and
nothing after it is stored or skipped."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select

from gsomia.client.stream import ServerSentEvent
from gsomia.errors import ExchangeUnreachable
from gsomia.node.store import NodeStore, deliveries
from gsomia.node.sync import Quarantined, Syncer, SyncResult, shown_name
from gsomia.node.witness import Accepted
from tests.unit.client.test_opening import JPN, KOR, PAYLOAD, registered, view_for
from tests.unit.node.support import store_verified


def _item(n: int) -> dict[str, Any]:
    return {
        "seq": n,
        "type": "delivery",
        "id": f"d-{n}",
        "report": f"R-{n}",
        "originator": "JPN",
        "topic": "dprk.missile.launch",
        "marking": {"banner": "군사II급비밀 (JPN 極秘)", "recipient_level": "군사II급비밀"},
        "created_at": "2019-11-22T01:00:00Z",
    }


def _row(n: int, state: str = "verified") -> dict[str, Any]:
    return {"state": state, "reason": None if state == "verified" else "signature", "detail": None, "search": f"r-{n}"}


class _NoCheckpoint:
    """A witness that holds no checkpoint to store with the results."""

    def keep(self, c: Any) -> None:
        return None

    def kept(self, stored: Any) -> None:
        return None


class _Syncer(Syncer):
    """The real page logic with verification replaced: ``outcomes`` says what each delivery's
    check gives (a row, or an exception), and a delivery's check may wait for an event."""

    def __init__(self, store: NodeStore, outcomes: dict[str, Any], gates: dict[str, threading.Event]) -> None:
        self.published: list[dict[str, Any]] = []
        super().__init__(
            store,
            party="KOR",
            keyring=None,  # type: ignore[arg-type]
            witness=_NoCheckpoint(),  # type: ignore[arg-type]
            connect=None,  # type: ignore[arg-type]
            publish=lambda kind, body: self.published.append(body),
        )
        self.outcomes = outcomes
        self.gates = gates
        self.served_as: dict[str, str] = {}
        self.fetches = 0

    def _fetch_many(self, ex: Any, items: list[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
        self.fetches += 1
        self.fetched_ids = [str(i["id"]) for i in items]
        return {str(i["id"]): {"id": self.served_as.get(str(i["id"]), i["id"])} for i in items}

    def _prove(self, ex: Any, views: list[dict[str, Any]], advanced: Any = None) -> None:
        self.proved_views = len(views)
        self.advanced = advanced.result() if advanced is not None else None

    def check(self, ex: Any, view: dict[str, Any]) -> dict[str, Any]:
        delivery_id = str(view["id"])
        gate = self.gates.get(delivery_id)
        if gate is not None:
            assert gate.wait(10)
        outcome = self.outcomes[delivery_id]
        if isinstance(outcome, Exception):
            raise outcome
        return dict(outcome)


def _states(store: NodeStore) -> dict[str, str]:
    with store.read() as c:
        return {str(i): str(state) for i, state in c.execute(select(deliveries.c.delivery_id, deliveries.c.state))}


def test_a_page_is_stored_in_order_with_its_cursor(store: NodeStore) -> None:
    items = [_item(n) for n in range(1, 41)]
    outcomes = {f"d-{n}": _row(n, "quarantined" if n == 7 else "verified") for n in range(1, 41)}
    # the first delivery's check finishes last: nothing may be stored before it
    gates = {"d-1": threading.Event()}
    syncer = _Syncer(store, outcomes, gates)
    result = SyncResult()
    threading.Timer(0.05, gates["d-1"].set).start()
    syncer._page(None, items, result)  # type: ignore[arg-type]
    syncer.close()
    assert (result.items, result.verified, result.quarantined) == (40, 39, 1)
    assert store.get("sync.cursor") == "40"
    states = _states(store)
    assert states["d-7"] == "quarantined"
    assert sum(1 for s in states.values() if s == "verified") == 39
    assert [p["delivery_id"] for p in syncer.published] == [f"d-{n}" for n in range(1, 41)]
    assert syncer.proved_views == 40  # the page's entries and proofs are asked for together
    assert syncer.fetches == 1  # and its deliveries


def test_the_exchange_going_away_mid_page_keeps_what_was_verified_before_it(store: NodeStore) -> None:
    items = [_item(n) for n in range(1, 21)]
    outcomes: dict[str, Any] = {f"d-{n}": _row(n) for n in range(1, 21)}
    outcomes["d-12"] = ExchangeUnreachable("the exchange went away")
    syncer = _Syncer(store, outcomes, {})
    result = SyncResult()
    with pytest.raises(ExchangeUnreachable):
        syncer._page(None, items, result)  # type: ignore[arg-type]
    syncer.close()
    assert store.get("sync.cursor") == "11"
    states = _states(store)
    assert all(states[f"d-{n}"] == "verified" for n in range(1, 12))
    assert all(states[f"d-{n}"] == "pending" for n in range(12, 21))  # taken again by the next pass
    assert result.verified == 11


def test_a_delivery_served_under_another_id_is_quarantined(store: NodeStore) -> None:
    items = [_item(n) for n in range(1, 4)]
    syncer = _Syncer(store, {f"d-{n}": _row(n) for n in range(1, 4)}, {})
    syncer.served_as["d-2"] = "d-3"  # the exchange answers for d-2 with another delivery
    result = SyncResult()
    syncer._page(None, items, result)  # type: ignore[arg-type]
    syncer.close()
    assert (result.verified, result.quarantined) == (2, 1)
    assert _states(store) == {"d-1": "verified", "d-2": "quarantined", "d-3": "verified"}


class _Witness(_NoCheckpoint):
    """A witness whose latest accepted checkpoint is of ``size``."""

    def __init__(self, size: int) -> None:
        self.size = size

    def latest(self) -> Any:
        return Accepted(self.size, b"\0" * 32, "note") if self.size else None


def test_the_checkpoint_is_brought_up_to_date_while_the_deliveries_are_fetched(store: NodeStore) -> None:
    # The page's inbox items name their ledger entries: a checkpoint that does not cover them
    # yet is fetched at the same time as the deliveries, not after them. Each side waits for
    # the other to have started: done one after the other, the first would wait in vain.
    fetching, advancing = threading.Event(), threading.Event()

    class Concurrent(_Syncer):
        def _fetch_many(self, ex: Any, items: list[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
            fetching.set()
            self.fetch_saw_advance = advancing.wait(10)
            return super()._fetch_many(ex, items)

        def _advance(self, ex: Any, *, cosign: bool = True) -> Any:
            advancing.set()
            self.advance_saw_fetch = fetching.wait(10)
            assert not cosign  # the sync leaves cosigning to the witness's own pace
            return Accepted(100, b"\1" * 32, "new")

    items = [_item(n) | {"leaf_index": 40 + n} for n in range(1, 6)]
    syncer = Concurrent(store, {f"d-{n}": _row(n) for n in range(1, 6)}, {})
    syncer.witness = _Witness(size=42)  # type: ignore[assignment]
    syncer._page(None, items, SyncResult())  # type: ignore[arg-type]
    syncer.close()
    assert syncer.fetch_saw_advance and syncer.advance_saw_fetch
    assert (
        syncer.advanced is not None and syncer.advanced.size == 100
    )  # the proofs are asked against the new checkpoint
    assert store.get("sync.cursor") == "5"

    # entries the accepted checkpoint covers already: no checkpoint is fetched
    fetching.clear()
    advancing.clear()
    covered = [_item(n) | {"leaf_index": n} for n in range(6, 9)]
    again = _Syncer(store, {f"d-{n}": _row(n) for n in range(6, 9)}, {})
    again.witness = _Witness(size=42)  # type: ignore[assignment]
    again._page(None, covered, SyncResult())  # type: ignore[arg-type]
    again.close()
    assert again.advanced is None


def test_deliveries_decided_before_a_restart_are_not_fetched_again(store: NodeStore) -> None:
    items = [_item(n) for n in range(1, 5)]
    syncer = _Syncer(store, {f"d-{n}": _row(n) for n in range(1, 5)}, {})
    syncer._pending_many(items[1:3])  # d-2 decided before the restart, d-3 still pending
    with store.write() as c:
        c.execute(deliveries.update().where(deliveries.c.delivery_id == "d-2").values(state="quarantined"))
    result = SyncResult()
    syncer._page(None, items, result)  # type: ignore[arg-type]
    syncer.close()
    assert syncer.fetched_ids == ["d-1", "d-3", "d-4"]
    assert _states(store) == {"d-1": "verified", "d-2": "quarantined", "d-3": "verified", "d-4": "verified"}
    assert store.get("sync.cursor") == "4"


def test_rows_of_different_shapes_are_stored_together(store: NodeStore) -> None:
    # a delivery the exchange no longer serves gets a row with fewer columns than a verified one
    items = [_item(n) for n in range(1, 5)]
    outcomes: dict[str, Any] = {f"d-{n}": _row(n) for n in range(1, 5)}
    outcomes["d-3"] = {"state": "quarantined", "reason": "missing"}
    syncer = _Syncer(store, outcomes, {})
    syncer._page(None, items, SyncResult())  # type: ignore[arg-type]
    syncer.close()
    assert _states(store) == {"d-1": "verified", "d-2": "verified", "d-3": "quarantined", "d-4": "verified"}
    with store.read() as c:
        found = dict(c.execute(select(deliveries.c.delivery_id, deliveries.c.reason)).all())
        searched = dict(c.execute(select(deliveries.c.delivery_id, deliveries.c.search)).all())
    assert found == {"d-1": None, "d-2": None, "d-3": "missing", "d-4": None}
    assert searched == {"d-1": "r-1", "d-2": "r-2", "d-3": "", "d-4": "r-4"}


def test_which_deliveries_are_decided_is_found_by_their_ids_not_by_walking_every_verified_one(
    store: NodeStore,
) -> None:
    # thousands of verified deliveries, and a page of 12: the lookup must use the unique id
    # (SQLite chose the state index for ``id IN (…) AND state IN (…)``, a walk of them all)
    store_verified(store, range(2000), prefix="old")
    syncer = _Syncer(store, {}, {})
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.append((statement, parameters))

    event.listen(store._engine, "before_cursor_execute", seen)
    try:
        ids = ["old-5", "old-1999", *(f"new-{n}" for n in range(10))]
        assert syncer._finals(ids) == {"old-5", "old-1999"}
    finally:
        event.remove(store._engine, "before_cursor_execute", seen)
        syncer.close()
    (statement, parameters), *_ = [s for s in statements if "deliveries" in s[0]]
    with store.read() as c:
        plan = " ".join(str(row[-1]) for row in c.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
    assert "sqlite_autoindex_deliveries_1 (delivery_id=?)" in plan, plan


def test_deliveries_the_inbox_page_carries_are_not_fetched_again(store: NodeStore) -> None:
    items = [_item(n) | {"document": {"id": f"d-{n}"}} for n in range(1, 6)]
    items[2]["document"] = {"id": "d-5"}  # carried under another id: fetched as the inbox names it
    syncer = _Syncer(store, {f"d-{n}": _row(n) for n in range(1, 6)}, {})
    result = SyncResult()
    syncer._page(None, items, result)  # type: ignore[arg-type]
    assert (syncer.fetches, syncer.fetched_ids) == (1, ["d-3"])
    assert syncer.proved_views == 5 and result.verified == 5

    carried = [_item(n) | {"document": {"id": f"d-{n}"}} for n in range(6, 9)]
    syncer.outcomes |= {f"d-{n}": _row(n) for n in range(6, 9)}
    syncer._page(None, carried, result)  # type: ignore[arg-type]
    syncer.close()
    assert syncer.fetches == 1  # a page that carried every delivery fetched none
    assert syncer.proved_views == 3 and store.get("sync.cursor") == "8"


def test_live_events_are_verified_as_pages_without_reading_the_inbox(store: NodeStore) -> None:
    class Stream:
        """An exchange whose stream carries five deliveries with their documents, then ends."""

        def __init__(self) -> None:
            self.asked: list[tuple[str | None, bool]] = []

        def __enter__(self) -> Stream:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def events(self, *, last_event_id: str | None = None, deliveries: bool = False) -> Iterator[ServerSentEvent]:
            self.asked.append((last_event_id, deliveries))
            yield ServerSentEvent(event="message", id=None, data="not an item")
            for n in range(1, 6):
                yield ServerSentEvent(event="delivery", id=str(n), data=_item(n) | {"document": {"id": f"d-{n}"}})

        def inbox(self, **kwargs: object) -> dict[str, Any]:
            raise AssertionError("a live page is read from the stream, not from the inbox")

    store.put("sync.cursor", "2")  # items 1 and 2 were taken by an earlier page
    syncer = _Syncer(store, {f"d-{n}": _row(n) for n in range(3, 6)}, {})
    stream = Stream()
    syncer.connect = lambda: stream  # type: ignore[assignment,return-value]
    with pytest.raises(ExchangeUnreachable, match="closed the event stream"):
        syncer._follow(threading.Event())
    syncer.close()
    assert stream.asked == [("2", True)]
    assert store.get("sync.cursor") == "5"
    assert _states(store) == {"d-3": "verified", "d-4": "verified", "d-5": "verified"}
    assert syncer.fetches == 0  # each delivery came with its event


def test_a_page_that_carried_its_deliveries_is_stored_in_one_transaction(store: NodeStore, writes: list[int]) -> None:
    items = [_item(n) | {"document": {"id": f"d-{n}"}} for n in range(1, 6)]
    gates = {"d-1": threading.Event()}  # the first check ends last: all are ready at once
    syncer = _Syncer(store, {f"d-{n}": _row(n) for n in range(1, 6)}, gates)
    threading.Timer(0.05, gates["d-1"].set).start()
    syncer._page(None, items, SyncResult())  # type: ignore[arg-type]
    syncer.close()
    assert len(writes) == 1  # no pending rows first: the results and the cursor, together
    assert store.get("sync.cursor") == "5"
    with store.read() as c:
        order = list(c.execute(select(deliveries.c.delivery_id, deliveries.c.seq).order_by(deliveries.c.n)))
    assert order == [(f"d-{n}", n) for n in range(1, 6)]  # the local order is the inbox's


def test_a_carried_page_cut_short_keeps_what_was_verified_and_records_the_rest_as_pending(
    store: NodeStore,
) -> None:
    items = [_item(n) | {"document": {"id": f"d-{n}"}} for n in range(1, 9)]
    outcomes: dict[str, Any] = {f"d-{n}": _row(n) for n in range(1, 9)}
    outcomes["d-5"] = ExchangeUnreachable("the exchange went away")
    syncer = _Syncer(store, outcomes, {})
    syncer._pending_many(items[6:7])  # d-7 recorded as pending by a pass that failed before
    result = SyncResult()
    with pytest.raises(ExchangeUnreachable):
        syncer._page(None, items, result)  # type: ignore[arg-type]
    syncer.close()
    assert store.get("sync.cursor") == "4" and result.verified == 4
    with store.read() as c:
        rows = list(c.execute(select(deliveries.c.delivery_id, deliveries.c.state).order_by(deliveries.c.n)))
    assert rows == [
        ("d-7", "pending"),
        *((f"d-{n}", "verified") for n in range(1, 5)),
        *((f"d-{n}", "pending") for n in (5, 6, 8)),
    ]

    syncer = _Syncer(store, {f"d-{n}": _row(n) for n in range(5, 9)}, {})
    syncer._page(None, items[4:], SyncResult())  # type: ignore[arg-type]  # the next pass
    syncer.close()
    assert _states(store) == {f"d-{n}": "verified" for n in range(1, 9)}
    assert store.get("sync.cursor") == "8"


# --- what a hostile exchange serves: a delivery is quarantined, an item skipped, never a crash --


class _Keys:
    """The node's key ring holding KOR's keys."""

    def get(self, fingerprint: str) -> Any:
        return KOR if fingerprint == KOR.fingerprint() else None


class _Keyserver:
    def __init__(self, keys: Any) -> None:
        self.keys = keys

    def public_keys(self, party: str) -> dict[str, Any]:
        return {"keys": self.keys}


def _checker(store: NodeStore) -> Syncer:
    return Syncer(store, party="KOR", keyring=_Keys(), witness=None, connect=None, publish=lambda k, d: None)  # type: ignore[arg-type]


def _opened_view(**changes: Any) -> dict[str, Any]:
    """A delivery that opens with KOR's key (anyone can encrypt to it), with ``changes``."""
    return view_for() | {"key": KOR.fingerprint(), "profile": KOR.profile.value} | changes


@pytest.mark.parametrize(
    "view",
    [
        _opened_view(origin=None),
        _opened_view(origin=[]),
        _opened_view(origin={"key": JPN.fingerprint(), "report": "r-1"}),
    ],
    ids=["no-origin", "origin-array", "report-text"],
)
def test_a_delivery_that_opens_without_a_signed_report_is_quarantined(store: NodeStore, view: dict[str, Any]) -> None:
    # a KeyError or AttributeError here ended the node's sync thread
    syncer = _checker(store)
    row = syncer.check(_Keyserver(registered(JPN)), view)  # type: ignore[arg-type]
    syncer.close()
    assert (row["state"], row["reason"], row["payload"]) == ("quarantined", "signature", PAYLOAD)


@pytest.mark.parametrize("keys", ["JPN", [5, "x"], 7], ids=["text", "not-objects", "number"])
def test_a_key_history_that_is_not_a_list_of_keys_is_no_key(store: NodeStore, keys: Any) -> None:
    syncer = _checker(store)
    row = syncer.check(_Keyserver(keys), _opened_view())  # type: ignore[arg-type]
    syncer.close()
    assert (row["state"], row["reason"]) == ("quarantined", "key_not_valid")


def _served_view(**changes: Any) -> dict[str, Any]:
    """An opened delivery whose document says what the originator signed, with ``changes``."""
    view = _opened_view(
        topic="dprk.missile.launch",
        content_type="application/json",
        purpose="direct",
        marking={"banner": "군사II급비밀 (JPN 極秘)", "originator": "JPN", "originator_level": "極秘"},
    )
    return view | changes


def test_a_delivery_document_that_says_what_was_signed_passes_to_the_ledger_check(store: NodeStore) -> None:
    syncer = _checker(store)
    view = _served_view()
    syncer._signed_as_served(view, view["origin"]["report"])  # raises nothing
    syncer.close()


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"topic": "dprk.nuclear.test"}, "topic"),  # moved to another topic's collection and feed
        ({"content_type": "text/html"}, "content_type"),
        ({"report": "r-2"}, "id"),  # another report's signed origin under this report's id
        ({"originator": "USA"}, "originator"),
        (
            {"marking": {"banner": "군사II급비밀 (JPN 極秘)", "originator": "JPN", "originator_level": "秘"}},
            "level",
        ),
        ({"marking": {"banner": "-", "originator": "USA", "originator_level": "極秘"}}, "marking.originator"),
        ({"marking": None}, "level"),
    ],
)
def test_a_document_member_the_originator_did_not_sign_so_is_quarantined(
    store: NodeStore, changes: dict[str, Any], named: str
) -> None:
    # (a document naming another report or originator does not open either: the payload's
    # associated data binds them; with another report's signed origin it would)
    syncer = _checker(store)
    view = _served_view(**changes)
    with pytest.raises(Quarantined, match=f"document's .*{named}.* is not what was signed"):
        syncer._signed_as_served(view, view["origin"]["report"])
    if named not in ("id", "originator"):
        row = syncer.check(_Keyserver(registered(JPN)), view)  # type: ignore[arg-type]
        assert (row["state"], row["reason"]) == ("quarantined", "signature"), row
    syncer.close()


def test_a_delivery_to_a_party_the_signed_report_does_not_name_is_quarantined_unless_a_hub_copy(
    store: NodeStore,
) -> None:
    syncer = _checker(store)
    view = _served_view()
    view["origin"]["report"]["recipients"] = ["USA"]  # as if signed so: the signature no longer matters here
    with pytest.raises(Quarantined, match="does not name KOR among its recipients"):
        syncer._signed_as_served(view, view["origin"]["report"])
    syncer._signed_as_served(view | {"purpose": "relay_hub"}, view["origin"]["report"])  # the hub is not named
    syncer.close()


class _Inbox:
    def __init__(self, items: Any) -> None:
        self.items = items

    def inbox(self, **_: Any) -> dict[str, Any]:
        return {"items": self.items}


@pytest.mark.parametrize(
    ("items", "kept"),
    [
        ("abc", []),
        (5, []),
        ([1, "x", None], []),
        ([{"seq": "abc", "id": "d-1"}, {"seq": 1.5, "id": "d-2"}, {"seq": True, "id": "d-3"}, {"seq": -1}], []),
        ([{"seq": 4, "id": ["d-4"]}], []),
        ([{"seq": "7", "id": "d-7", "marking": "TOP SECRET"}], [{"seq": "7", "id": "d-7", "marking": None}]),
    ],
    ids=["text", "number", "not-objects", "seq-not-a-cursor", "id-not-text", "marking-not-an-object"],
)
def test_inbox_items_that_cannot_be_items_are_skipped(store: NodeStore, items: Any, kept: list[Any]) -> None:
    # each of these raised a TypeError, AttributeError or ValueError in the sync thread
    syncer = _checker(store)
    assert next(syncer._pages(_Inbox(items))) == kept  # type: ignore[arg-type]
    syncer.close()


class _Failing(Syncer):
    """A sync whose passes fail with an error no check foresaw, then stop the loop."""

    def __init__(self, store: NodeStore, stop: threading.Event) -> None:
        super().__init__(store, party="KOR", keyring=None, witness=None, connect=None, publish=lambda k, d: None)  # type: ignore[arg-type]
        self.stop, self.passes = stop, 0

    def once(self) -> SyncResult:
        self.passes += 1
        if self.passes == 2:
            self.stop.set()
        raise AttributeError("'list' object has no attribute 'get'")


def test_an_unforeseen_error_does_not_end_the_sync_loop(store: NodeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    syncer = _Failing(store, stop)
    monkeypatch.setattr(stop, "wait", lambda _timeout=None: stop.is_set())
    syncer.run(stop)  # returned only because the second pass stopped it
    syncer.close()
    assert syncer.passes == 2


def test_an_unforeseen_error_does_not_end_the_witness_loop(store: NodeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    stop, rounds = threading.Event(), []

    def connect() -> Any:
        rounds.append(1)
        raise TypeError("'int' object is not iterable")

    syncer = Syncer(store, party="KOR", keyring=None, witness=None, connect=connect, publish=lambda k, d: None)  # type: ignore[arg-type]
    monkeypatch.setattr(stop, "wait", lambda _timeout=None: len(rounds) >= 2)
    syncer.witness_loop(stop, 60.0)  # returned only once the second round was tried
    syncer.close()
    assert len(rounds) == 2


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("termination-took-effect", "termination-took-effect"),
        ("x\u202eDEIFITAR YLLAMROF", "xDEIFITAR YLLAMROF"),  # an override would reverse the node's own words
        ("a\u200bb\u2066c\u2069", "abc"),
        ("two\nlines\tand\x00nul", "two lines andnul"),
        ("w" * 500, "w" * 79 + "…"),  # a name cannot push the marking banner off the screen
        ("", None),
        (None, None),
        (7, None),
    ],
)
def test_a_name_from_the_exchange_is_shown_without_format_characters_and_bounded(
    given: object, shown: str | None
) -> None:
    assert shown_name(given) == shown
