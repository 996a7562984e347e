"""The node's delivery feed (CoT out, the TAXII inbox): rows that add nothing to the TAXII inbox
move its cursor without a durable commit each, and the cursor is stored when the feed stops; a
restart continues from the stored cursor."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gsomia.errors import InvalidInput
from gsomia.interop.cot import CotEndpoint
from gsomia.node.cot.bridge import CotIngest, CotOutput
from gsomia.node.interop import Interop, InteropConfig
from gsomia.node.store import NodeStore
from gsomia.node.taxii.store import NewObject, Query, TaxiiStore
from tests.unit.node.support import store_verified


def _verified(store: NodeStore, numbers: range) -> None:
    marking = {"level": "군사II급비밀", "originator_level": "極秘", "banner": "군사II급비밀 (JPN 極秘)"}
    store_verified(
        store,
        numbers,
        marking=json.dumps(marking, ensure_ascii=False),
        received_at="2019-11-22T01:00:00+00:00",
        content_type="application/cot+xml",
        payload=b"<event/>",
    )


def _feed(store: NodeStore) -> Interop:
    """The feed alone: no TAXII inbox, no CoT endpoint (what each row adds is nothing)."""
    feed = Interop.__new__(Interop)
    feed.service = SimpleNamespace(store=store, config=SimpleNamespace(party="KOR"))  # type: ignore[assignment]
    feed.config = InteropConfig(taxii=False)
    feed.store = TaxiiStore(store)
    feed._cot_from = 0
    feed._cursor = None
    return feed


def test_rows_that_add_nothing_move_the_cursor_without_a_commit_each(store: NodeStore, writes: list[int]) -> None:
    feed = _feed(store)
    _verified(store, range(1, 6))
    del writes[:]
    assert feed._drain() is False  # fewer than a full read of 200: nothing more to take
    assert len(writes) == 1  # the first move is stored
    _verified(store, range(6, 11))
    del writes[:]
    assert feed._drain() is False
    assert feed._drain() is False  # nothing new: the cursor in memory is past every row
    assert feed._cursor == 10
    assert writes == []  # the next within a second are not
    assert store.get("interop.cursor") == "5"
    feed._keep_cursor()  # as when the feed stops
    assert store.get("interop.cursor") == "10"


def test_after_a_restart_the_feed_continues_from_the_stored_cursor(store: NodeStore) -> None:
    feed = _feed(store)
    _verified(store, range(1, 4))
    feed._drain()
    taken: list[int] = []
    again = _feed(store)  # a node restarted before the cursor 3 was stored
    store.put("interop.cursor", "2")
    monkey = again._deliver

    def deliver(row: Any) -> list[Any]:
        taken.append(int(row["n"]))
        return monkey(row)

    again._deliver = deliver  # type: ignore[method-assign]
    again._drain()
    assert taken == [3] and again._cursor == 3


def test_a_delivery_that_cannot_be_handed_on_is_skipped_and_the_feed_goes_on(store: NodeStore, caplog: Any) -> None:
    feed = _feed(store)
    _verified(store, range(1, 6))
    taken: list[int] = []
    deliver = feed._deliver

    def failing(row: Any) -> list[Any]:
        if int(row["n"]) == 3:
            raise RecursionError("content nothing foresaw")
        taken.append(int(row["n"]))
        return deliver(row)

    feed._deliver = failing  # type: ignore[method-assign]
    assert feed._drain() is False
    assert taken == [1, 2, 4, 5] and feed._cursor == 5
    assert "delivery d-3: not served over TAXII or CoT" in caplog.text
    assert feed._drain() is False and taken == [1, 2, 4, 5]  # not tried again, not held back


def test_content_the_store_refuses_fails_its_delivery_alone_not_every_later_one(store: NodeStore, caplog: Any) -> None:
    # Rows handed on together are stored in one transaction; if the store refuses what one row
    # brings (its version is no timestamp), the others are stored row by row and the feed goes
    # on, instead of trying the same batch again for ever.
    feed = _feed(store)
    _verified(store, range(1, 5))

    def objects(row: Any) -> list[NewObject]:
        n = int(row["n"])
        version = "2024-01-01T00:00:00" if n == 2 else "2019-11-22T00:58:00.000Z"
        return [NewObject(body={**NOTE, "id": f"note--00000000-0000-4000-8000-{n:012d}", "modified": version})]

    feed._deliver = objects  # type: ignore[method-assign]
    assert feed._drain() is False
    assert feed._cursor == 4
    stored = {row.stix_id for row in feed.store.page("inbox", Query(limit=10)).rows}
    assert stored == {f"note--00000000-0000-4000-8000-{n:012d}" for n in (1, 3, 4)}
    assert "delivery row 2: STIX content not served over TAXII" in caplog.text


NOTE = {"type": "note", "spec_version": "2.1", "created": "2019-11-22T00:58:00.000Z", "content": "TEL movement"}


@pytest.mark.parametrize("text", ["{oops", "[" * 100_000 + "]" * 100_000])
def test_an_interop_json_that_does_not_read_is_refused_naming_the_file(tmp_path: Path, text: str) -> None:
    (tmp_path / "interop.json").write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"cannot read .*interop\.json"):
        InteropConfig.read(tmp_path)


def test_the_cot_bridges_limits_read_from_interop_json() -> None:
    config = InteropConfig.from_doc(
        {"cot": {"max_backlog": 500, "output_queue": 50, "tcp_idle_seconds": 30, "tcp_max_connections": 16}}
    )
    assert (config.max_backlog, config.output_queue, config.tcp_idle_seconds, config.tcp_max_connections) == (
        500,
        50,
        30.0,
        16,
    )
    assert InteropConfig.from_doc({"cot": {"max_backlog_bytes": 1 << 20}}).max_backlog_bytes == 1 << 20
    defaults = InteropConfig.from_doc({})
    assert defaults.max_backlog_bytes == 64 << 20
    assert (defaults.max_backlog, defaults.output_queue) == (10_000, 1000)
    assert defaults.tcp_max_connections == 256 and defaults.tcp_max_per_address == 32
    assert InteropConfig.from_doc({"cot": {"tcp_max_per_address": 4}}).tcp_max_per_address == 4
    for bad in (
        {"max_backlog": 0},
        {"output_queue": 1.5},
        {"tcp_idle_seconds": "60"},
        {"tcp_max_connections": True},
        {"tcp_max_per_address": 0},
        {"tcp_event_seconds": 0},
        {"tcp_event_seconds": "60"},
    ):
        with pytest.raises(InvalidInput, match=f"cot.{next(iter(bad))}"):
            InteropConfig.from_doc({"cot": bad})


def test_a_cot_tcp_connection_waits_minutes_between_events_and_a_minute_for_one() -> None:
    defaults = InteropConfig.from_doc({})
    assert (defaults.tcp_idle_seconds, defaults.tcp_event_seconds) == (900.0, 60.0)
    config = InteropConfig.from_doc({"cot": {"tcp_idle_seconds": 1800, "tcp_event_seconds": 20}})
    assert (config.tcp_idle_seconds, config.tcp_event_seconds) == (1800.0, 20.0)


def test_a_json_track_delivered_long_after_its_creation_is_not_sent_on_and_counted_stale(
    store: NodeStore,
) -> None:
    # The JSON track carries no stale time: its validity runs from the report's signed creation
    # (2019), not from when the feed hands it on.
    feed = _feed(store)
    endpoint = CotEndpoint(name="ops", url="udp://127.0.0.1:9", cleared_to="군사II급비밀", audience=("KOR",))
    feed.config = InteropConfig(taxii=False, outputs=(endpoint,))
    feed.output = CotOutput([endpoint], lambda: {"군사I급비밀": 1, "군사II급비밀": 2})
    feed.ingest = CotIngest(sender=None, rules=())  # type: ignore[arg-type]
    feed.bound = []
    marking = {"level": "군사II급비밀", "originator_level": "極秘", "banner": "군사II급비밀 (JPN 極秘)"}
    store_verified(
        store, range(1, 2), marking=json.dumps(marking, ensure_ascii=False), payload=b'{"track": [[39, 125, 950]]}'
    )
    try:
        assert feed._drain() is False
    finally:
        feed.output.close()
    cot = feed.status()["cot"]
    assert cot["out"] == {"sent": 0, "failed": 0, "dropped": 0, "stale": 1, "withheld": 0, "refused": 0}
    assert cot["in"]["stale"] == 0


def test_stix_content_on_a_track_topic_is_no_cot_and_no_track_refused(store: NodeStore, caplog: Any) -> None:
    # A STIX delivery on dprk.missile is served over TAXII; it is not offered to the TAK
    # endpoints at all (no warning, no refusal counted), while a CoT event on it still is.
    feed = _feed(store)
    endpoint = CotEndpoint(name="ops", url="udp://127.0.0.1:9", cleared_to="군사II급비밀", audience=("KOR",))
    feed.config = InteropConfig(taxii=False, outputs=(endpoint,))
    feed.output = CotOutput([endpoint], lambda: {"군사I급비밀": 1, "군사II급비밀": 2})
    feed.ingest = CotIngest(sender=None, rules=())  # type: ignore[arg-type]
    feed.bound = []
    offered: list[str] = []
    emit = feed.output.emit

    def counting(**kw: Any) -> list[str]:
        offered.append(str(kw["content_type"]))
        return emit(**kw)

    feed.output.emit = counting  # type: ignore[method-assign]
    marking = {"level": "군사II급비밀", "originator_level": "極秘", "banner": "군사II급비밀 (JPN 極秘)"}
    bundle = json.dumps({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000001", "objects": []})
    store_verified(
        store,
        range(1, 3),
        marking=json.dumps(marking, ensure_ascii=False),
        content_type="application/stix+json;version=2.1",
        payload=bundle.encode(),
    )
    store_verified(
        store,
        range(3, 4),
        marking=json.dumps(marking, ensure_ascii=False),
        content_type="application/cot+xml",
        payload=b"<event/>",
    )
    try:
        assert feed._drain() is False
    finally:
        feed.output.close()
    assert offered == ["application/cot+xml"]
    assert feed.status()["cot"]["out"]["refused"] == 1  # the malformed event only
    assert "stix+json" not in caplog.text
