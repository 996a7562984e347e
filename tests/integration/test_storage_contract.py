"""The storage contract: the same suite on SQLite and on a throwaway PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gsomia.bootstrap import Settings, build
from gsomia.errors import Conflict, InvalidInput, StorageError
from gsomia.storage.store import Store, StoredEvent
from tests.conftest import SCENARIO, kst

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def test_load_read_back_equals_the_file(db_url: str) -> None:
    app = build(Settings(db=db_url), clock=clock)
    try:
        loaded, outcome = app.scenarios.load("japan-korea-2019")
        assert outcome.outcome == "created"
        assert app.analysis.compiled().record == loaded.record
        s = outcome.summary
        assert (s.name, s.events, s.reports, s.provisions) == (
            "japan-korea-2019",
            len(loaded.record.events),
            len(loaded.record.reports),
            len(loaded.record.provisions),
        )
    finally:
        app.close()


def test_loading_twice_changes_nothing(db_url: str) -> None:
    app = build(Settings(db=db_url), clock=clock)
    try:
        _, first = app.scenarios.load("japan-korea-2019")
        doc = app.store.read_document()
        _, second = app.scenarios.load(str(SCENARIO))
        assert second.outcome == "unchanged"
        assert second.summary == first.summary  # same loaded_at: nothing was written
        assert app.store.read_document() == doc
    finally:
        app.close()


def test_a_changed_scenario_replaces_it_and_keeps_operator_events(db_url: str, tmp_path: object) -> None:
    from pathlib import Path

    app = build(Settings(db=db_url), clock=clock)
    try:
        app.scenarios.load("japan-korea-2019")
        app.store.add_event(
            StoredEvent(
                id="op-1",
                agreement="TISA",
                kind="amendment",
                at=kst("2024-01-01"),
                origin="operator",
                note="recorded by an operator",
            ),
            now=NOW,
        )
        changed = Path(str(tmp_path)) / "changed.yaml"
        changed.write_text(
            SCENARIO.read_text(encoding="utf-8").replace("relay_delay: PT4H", "relay_delay: PT6H"), encoding="utf-8"
        )
        _, outcome = app.scenarios.load(str(changed))
        assert outcome.outcome == "replaced"
        assert outcome.summary.operator_events == 1
        rec = app.analysis.compiled().record
        assert (
            rec.agreements["TISA"].relay_delay is not None
            and rec.agreements["TISA"].relay_delay.total_seconds() == 6 * 3600
        )
        assert "op-1" in {e.id for e in rec.events}
    finally:
        app.close()


def test_a_failed_load_leaves_nothing(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = build(Settings(db=db_url), clock=clock)
    try:
        app.scenarios.load("japan-korea-2019")
        before = app.store.read_document()
        import gsomia.storage.store as store_mod

        def boom(*_a: object, **_k: object) -> object:
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(store_mod, "_event_row", boom)
        with pytest.raises(RuntimeError):
            app.store.load_scenario(
                name="other",
                title="",
                digest="x",
                definitions={"scenario": {"name": "other"}},
                events=[StoredEvent(id="e", agreement="A", kind="signature", at=NOW)],
                reports=[],
                provisions=[],
                replace=True,
                now=NOW,
            )
        assert app.store.read_document() == before
    finally:
        app.close()


def test_another_scenario_is_refused_without_replace(db_url: str) -> None:
    store = Store(db_url)
    try:
        store.load_scenario(
            name="a", title="", digest="1", definitions={}, events=[], reports=[], provisions=[], now=NOW
        )
        with pytest.raises(Conflict, match="holds scenario 'a'"):
            store.load_scenario(
                name="b", title="", digest="2", definitions={}, events=[], reports=[], provisions=[], now=NOW
            )
        assert (
            store.load_scenario(
                name="b",
                title="",
                digest="2",
                definitions={},
                events=[],
                reports=[],
                provisions=[],
                replace=True,
                now=NOW,
            ).outcome
            == "replaced"
        )
    finally:
        store.close()


def test_events_round_trip_as_aware_utc(db_url: str) -> None:
    store = Store(db_url)
    try:
        store.load_scenario(
            name="a", title="", digest="1", definitions={}, events=[], reports=[], provisions=[], now=NOW
        )
        at = datetime.fromisoformat("2019-08-23T15:30+09:00")
        store.add_event(StoredEvent(id="n", agreement="X", kind="notice", at=at, by="KOR", origin="operator"), now=NOW)
        (e,) = store.events()
        assert e.at == at and e.at.tzinfo is not None and e.by == "KOR"
        with pytest.raises(Conflict):
            store.add_event(StoredEvent(id="n", agreement="X", kind="notice", at=at), now=NOW)
    finally:
        store.close()


def test_migrations_are_idempotent(db_url: str) -> None:
    Store(db_url).close()
    Store(db_url).close()  # second open: already at head


def test_empty_database_says_what_to_do(db_url: str) -> None:
    app = build(Settings(db=db_url), clock=clock)
    try:
        with pytest.raises(StorageError, match="scenario load"):
            app.analysis.compiled()
    finally:
        app.close()


def test_bad_urls_are_clear() -> None:
    with pytest.raises(InvalidInput, match="unsupported database"):
        Store("mysql://x/y")


def test_unreachable_postgres_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="cannot open or migrate"):
        Store("postgresql://nobody@127.0.0.1:1/none")
