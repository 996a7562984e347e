"""What a hostile exchange answers to the sync: numbers beyond what the node stores, cursors that
do not move, an exercise clock that is no instant, streams that fail over and over. Each is the
exchange's error, shown in ``status`` and retried after a growing wait, never a silent stall
nor a crash."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from gsomia.client.stream import ServerSentEvent
from gsomia.errors import ExchangeError
from gsomia.node import sync as sync_module
from gsomia.node.store import NodeStore
from gsomia.node.sync import Syncer, SyncResult
from tests.unit.node.test_sync_pages import _item, _row, _states, _Syncer

BEYOND = 2**63  # the first sequence number a signed 64-bit column cannot hold


class _Pages:
    """An exchange that serves ``pages`` (each its answer, in turn) to ``GET /inbox``, then
    fails the test: a sync that never stops asking."""

    def __init__(self, *pages: dict[str, Any]) -> None:
        self.pages = list(pages)
        self.asked: list[str | None] = []

    def __enter__(self) -> _Pages:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def inbox(self, *, cursor: str | None = None, **_: Any) -> dict[str, Any]:
        self.asked.append(cursor)
        if len(self.asked) > 20:
            raise AssertionError(f"the sync asked for the page after {cursor} {len(self.asked)} times")
        return self.pages[min(len(self.asked), len(self.pages)) - 1]


def _checker(store: NodeStore) -> Syncer:
    return Syncer(store, party="KOR", keyring=None, witness=None, connect=None, publish=lambda k, d: None)  # type: ignore[arg-type]


def _count_waits(monkeypatch: pytest.MonkeyPatch, stop: threading.Event, waited: list[float], rounds: int) -> None:
    """Make ``stop`` record each wait's length in ``waited`` without waiting, and be set once
    ``rounds`` waits were asked for."""

    def wait(timeout: float | None = None) -> bool:
        waited.append(float(timeout or 0))
        return len(waited) >= rounds

    monkeypatch.setattr(stop, "wait", wait)
    monkeypatch.setattr(stop, "is_set", lambda: len(waited) >= rounds)


def _read(syncer: Syncer, ex: _Pages) -> list[list[dict[str, Any]]]:
    return list(syncer._pages(ex))  # type: ignore[arg-type]


# --- sequence numbers the store cannot hold ------------------------------------------------------


@pytest.mark.parametrize("seq", [BEYOND, str(BEYOND), "9" * 5000], ids=["number", "digits", "5000-digits"])
def test_an_inbox_item_numbered_beyond_what_the_store_holds_is_the_exchange_s_error(
    store: NodeStore, seq: object
) -> None:
    # it was taken as an item, and every write of it failed (OverflowError) at every pass
    syncer = _checker(store)
    with pytest.raises(ExchangeError, match="seq"):
        _read(syncer, _Pages({"items": [_item(1) | {"seq": seq}], "next_cursor": None}))
    syncer.close()


def test_the_largest_sequence_number_the_store_holds_is_an_item(store: NodeStore) -> None:
    syncer = _checker(store)
    (page,) = _read(syncer, _Pages({"items": [_item(1) | {"seq": BEYOND - 1}], "next_cursor": None}))
    syncer.close()
    assert [i["seq"] for i in page] == [BEYOND - 1]


class _Stream:
    """An exchange whose event stream carries ``events`` and then ends."""

    def __init__(self, events: list[ServerSentEvent]) -> None:
        self.events_served = events

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def events(self, *, last_event_id: str | None = None, deliveries: bool = False) -> Iterator[ServerSentEvent]:
        yield from self.events_served


@pytest.mark.parametrize("in_data", [True, False], ids=["seq", "event-id"])
def test_an_event_numbered_beyond_what_the_store_holds_is_the_exchange_s_error(store: NodeStore, in_data: bool) -> None:
    # the write of its delivery failed, and the sync logged a traceback at every reconnection
    data = {k: v for k, v in _item(1).items() if k != "seq"} | {"document": {"id": "d-1"}}
    if in_data:
        data["seq"] = BEYOND
    event = ServerSentEvent(event="delivery", id=str(BEYOND), data=data)
    syncer = _Syncer(store, {"d-1": _row(1)}, {})
    syncer.connect = lambda: _Stream([event])  # type: ignore[assignment,return-value]
    with pytest.raises(ExchangeError, match="seq"):
        syncer._follow(threading.Event())
    syncer.close()
    assert _states(store) == {} and store.get("sync.cursor") is None


# --- cursors that do not move ------------------------------------------------------------------------


def test_a_next_cursor_that_does_not_move_ends_the_pass_as_the_exchange_s_error(store: NodeStore) -> None:
    # the node asked for the page after 5 over and over, without a pause, and never got to the stream
    ex = _Pages({"items": [_item(5)], "next_cursor": "5"})
    syncer = _checker(store)
    with pytest.raises(ExchangeError, match="cursor"):
        _read(syncer, ex)
    syncer.close()
    assert ex.asked == [None, "5"]


@pytest.mark.parametrize(
    ("page", "why"),
    [
        ({"items": [], "next_cursor": "7"}, "cursor"),  # back before the cursor sent
        ({"items": [], "next_cursor": "abc"}, "cursor"),
        ({"items": [], "next_cursor": str(BEYOND)}, "cursor"),
        ({"items": [_item(9), _item(8)], "next_cursor": "12"}, "seq"),  # items out of order
        ({"items": [_item(10)], "next_cursor": "12"}, "seq"),  # the item at the cursor sent, again
        ({"items": [_item(11)], "next_cursor": 12.0}, "cursor"),
    ],
    ids=["back", "not-digits", "beyond", "items-out-of-order", "item-at-the-cursor", "not-text"],
)
def test_a_page_that_does_not_move_past_the_cursor_sent_is_the_exchange_s_error(
    store: NodeStore, page: dict[str, Any], why: str
) -> None:
    ex = _Pages({"items": [_item(n) for n in range(1, 11)], "next_cursor": "10"}, page)
    syncer = _checker(store)
    with pytest.raises(ExchangeError, match=why):
        _read(syncer, ex)
    syncer.close()


def test_pages_that_move_on_are_read_to_the_end(store: NodeStore) -> None:
    ex = _Pages(
        {"items": [_item(1), _item(2)], "next_cursor": "2"},
        {"items": [], "next_cursor": 4},  # items another party's traffic took: an empty page moves on
        {"items": [_item(5)], "next_cursor": None},
    )
    syncer = _checker(store)
    pages = _read(syncer, ex)
    syncer.close()
    assert [[i["seq"] for i in page] for page in pages] == [[1, 2], [], [5]]
    assert ex.asked == [None, "2", "4"]


class _Passing(Syncer):
    """A sync whose preparation (keys, witness, ledger) is done: a pass reads the inbox only."""

    def prepare(self, ex: Any) -> None:
        return None


def test_a_cursor_that_does_not_move_shows_in_status_and_is_retried_after_a_growing_wait(
    store: NodeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = _Pages({"items": [], "next_cursor": "5"}, {"items": [], "next_cursor": "5"})
    syncer = _Passing(store, party="KOR", keyring=None, witness=None, connect=lambda: ex, publish=lambda k, d: None)  # type: ignore[arg-type,return-value]
    stop, waited = threading.Event(), list[float]()
    _count_waits(monkeypatch, stop, waited, 3)
    ex.pages *= 10
    syncer.run(stop)
    syncer.close()
    assert waited == [1.0, 2.0, 4.0]
    assert store.get("exchange.reachable") == "false"
    assert "cursor" in (store.get("exchange.error") or "")


# --- the exercise clock --------------------------------------------------------------------------------


class _Exercise:
    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer

    def exercise(self) -> dict[str, Any]:
        return self.answer


@pytest.mark.parametrize(
    "clock",
    [float("inf"), 1e300, 1574384400, None, "yesterday", "2019-11-22T01:00:00", "2019-11-22", ["2019"]],
    ids=["infinity", "float", "epoch", "none", "words", "no-offset", "a-date", "list"],
)
def test_an_exercise_clock_that_is_no_instant_is_the_exchange_s_error(store: NodeStore, clock: object) -> None:
    # infinity was stored, and 'gsomia node status --json' printed it as Infinity: no JSON
    syncer = _checker(store)
    with pytest.raises(ExchangeError, match="clock"):
        syncer._exercise(_Exercise({"exercise": True, "clock": clock}))  # type: ignore[arg-type]
    syncer.close()
    assert store.get_json("exchange.exercise") is None


@pytest.mark.parametrize("clock", ["2019-11-22T01:00:00Z", "2019-11-22T10:00:00.123456+09:00"])
def test_an_exercise_clock_that_is_an_instant_is_kept(store: NodeStore, clock: str) -> None:
    syncer = _checker(store)
    syncer._exercise(_Exercise({"exercise": True, "clock": clock, "whatif": "w"}))  # type: ignore[arg-type]
    syncer._exercise(_Exercise({"exercise": False, "clock": float("inf")}))  # type: ignore[arg-type]  # not shown
    assert store.get_json("exchange.exercise") is None
    syncer._exercise(_Exercise({"exercise": True, "clock": clock, "whatif": "w"}))  # type: ignore[arg-type]
    syncer.close()
    assert store.get_json("exchange.exercise") == {"at": clock, "whatif": "w"}


# --- a stream that fails after every catch-up ---------------------------------------------------------


class _Flaky:
    """An exchange whose catch-up always succeeds and whose stream, at each connection, either
    fails at once or (for the connections in ``live``) carries one new delivery and then
    ends."""

    def __init__(self, live: set[int]) -> None:
        self.live = live
        self.connections = 0

    def __enter__(self) -> _Flaky:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def events(self, *, last_event_id: str | None = None, deliveries: bool = False) -> Iterator[ServerSentEvent]:
        self.connections += 1
        if self.connections not in self.live:
            raise ExchangeError("GET /api/v1/inbox/stream: 500 (an internal error)")
        n = self.connections
        yield ServerSentEvent(event="delivery", id=str(n), data=_item(n) | {"document": {"id": f"d-{n}"}})


class _Looping(_Syncer):
    def once(self) -> SyncResult:
        return SyncResult()


def _run(store: NodeStore, monkeypatch: pytest.MonkeyPatch, live: set[int], rounds: int) -> list[float]:
    syncer = _Looping(store, {f"d-{n}": _row(n) for n in range(1, rounds + 1)}, {})
    exchange = _Flaky(live)
    syncer.connect = lambda: exchange  # type: ignore[assignment,return-value]
    stop, waited = threading.Event(), list[float]()
    _count_waits(monkeypatch, stop, waited, rounds)
    syncer.run(stop)
    syncer.close()
    return waited


def test_a_stream_that_fails_after_every_catch_up_is_retried_after_a_growing_wait(
    store: NodeStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # the wait went back to 1 s after every catch-up: 32 reconnections in 42 s
    caplog.set_level(logging.WARNING, logger="gsomia.node.sync")
    assert _run(store, monkeypatch, set(), 7) == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    failures = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(failures) == 7 and not any(r.exc_info for r in failures)  # the exchange's error, no traceback


def test_a_stream_that_delivered_before_it_failed_is_retried_soon(
    store: NodeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _run(store, monkeypatch, {4}, 6) == [1.0, 2.0, 4.0, 1.0, 2.0, 4.0]
    assert store.get("sync.cursor") == "4"


def test_a_stream_that_stayed_up_a_while_before_it_failed_is_retried_soon(
    store: NodeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync_module, "HEALTHY_STREAM", 0.0)  # any time up is long enough
    assert _run(store, monkeypatch, set(), 3) == [1.0, 1.0, 1.0]


class _Unforeseen(Syncer):
    def once(self) -> SyncResult:
        raise AttributeError("'list' object has no attribute 'get'")


def test_an_unforeseen_error_that_repeats_is_logged_with_its_traceback_once(
    store: NodeStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    syncer = _Unforeseen(store, party="KOR", keyring=None, witness=None, connect=None, publish=lambda k, d: None)  # type: ignore[arg-type]
    stop, waited = threading.Event(), list[float]()
    _count_waits(monkeypatch, stop, waited, 3)
    syncer.run(stop)
    syncer.close()
    logged = [r for r in caplog.records if "unexpected" in r.getMessage()]
    assert len(logged) == 3 and [bool(r.exc_info) for r in logged] == [True, False, False]
    assert waited == [1.0, 2.0, 4.0]


# --- stopping ------------------------------------------------------------------------------------------


def test_the_stream_is_left_when_the_node_stops_even_while_nothing_arrives(store: NodeStore) -> None:
    release = threading.Event()

    class Quiet(_Stream):
        def events(self, *, last_event_id: str | None = None, deliveries: bool = False) -> Iterator[ServerSentEvent]:
            release.wait(30)  # a stream that carries nothing (its keep-alive comments are no events)
            yield from ()

    syncer = _Syncer(store, {}, {})
    syncer.connect = lambda: Quiet([])  # type: ignore[assignment,return-value]
    stop = threading.Event()
    following = threading.Thread(target=syncer._follow, args=(stop,), daemon=True)
    try:
        following.start()
        threading.Timer(0.1, stop.set).start()
        following.join(5)
        assert not following.is_alive()
    finally:
        release.set()
        syncer.close()
