"""The exercise's own database: seeded from the live database's standing data only, all or
nothing, once."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gsomia.bootstrap import Settings, build
from gsomia.domain.instants import parse_instant
from gsomia.errors import InvalidInput, StorageError, UnknownEntity
from gsomia.storage import exercise
from gsomia.storage.exercise import open_exercise_database
from tests.harness import Harness, TestClock, start

CLOCK = "2019-11-22T10:00+09:00"


def _live(h: Harness) -> Path:
    return Path(h.app.store.engine.url.database or "")


def _count(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608 - constant names
    finally:
        conn.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_exercise_mode_picks_its_own_database_unless_one_is_given(tmp_path: Path) -> None:
    live = Settings(db=None, data_dir=tmp_path)
    assert live.database_url() == f"sqlite:///{tmp_path / 'gsomia.db'}" and live.exercise_database() is None
    rehearsal = Settings(db=None, data_dir=tmp_path, exercise_clock=CLOCK)
    assert rehearsal.exercise_database() == tmp_path / "exercise.db"
    assert rehearsal.database_url() == f"sqlite:///{tmp_path / 'exercise.db'}"
    given = Settings(db="sqlite:////srv/rehearsal.db", data_dir=tmp_path, exercise_clock=CLOCK)
    assert given.exercise_database() is None and given.database_url() == "sqlite:////srv/rehearsal.db"


def test_seeded_with_the_record_principals_and_keys_and_nothing_that_happened(harness: Harness, tmp_path: Path) -> None:
    harness.submit("JPN", id="live-1", recipients=["KOR", "USA"])
    live = _live(harness)
    live_before = {t: _count(live, t) for t in ("exchange_reports", "deliveries", "ledger_entries")}
    assert all(live_before.values())

    made = open_exercise_database(tmp_path / "ex" / "exercise.db", live=live)
    assert made.outcome == "created"
    assert made.copied["principals"] == 5 and made.copied["party_keys"] == 3
    assert made.copied["agreement_events"] == _count(live, "agreement_events")
    for table in ("exchange_reports", "exchange_decisions", "deliveries", "consents", "inbox_events"):
        assert _count(made.path, table) == 0, table
    assert _count(made.path, "ledger_entries") == 0

    app = build(Settings(db=f"sqlite:///{made.path}", data_dir=tmp_path, exercise_clock=CLOCK))
    try:
        jpn = app.exchange.identity.authenticate(harness.tokens["JPN"])  # tokens work
        kor_keys = app.exchange.keys.history(jpn, "KOR")  # and keys
        assert kor_keys[0].keys.fingerprint() == harness.keys["KOR"].public_keys().fingerprint()
        with pytest.raises(UnknownEntity):
            app.exchange.submissions.result(jpn, "live-1")
        assert app.store.summary() == harness.app.store.summary()  # the same record
    finally:
        app.close()
    assert {t: _count(live, t) for t in live_before} == live_before  # the live database is untouched


def test_a_second_start_reuses_it_and_a_reset_seeds_it_afresh(harness: Harness, tmp_path: Path) -> None:
    target = tmp_path / "exercise.db"
    first = open_exercise_database(target, live=_live(harness))
    conn = sqlite3.connect(target)
    conn.execute("DELETE FROM principals WHERE role = 'auditor'")  # as an exercise would change it
    conn.commit()
    conn.close()
    kept = _digest(target)

    again = open_exercise_database(target, live=_live(harness))
    assert (again.outcome, again.copied) == ("reused", {})
    assert _digest(target) == kept

    # a stale WAL of the previous exercise must not be replayed into the new one
    target.with_name("exercise.db-wal").write_bytes(b"stale")
    first.release()
    again.release()
    fresh = open_exercise_database(target, live=_live(harness), reset=True)
    assert fresh.outcome == "reset" and _count(target, "principals") == 5
    assert not target.with_name("exercise.db-wal").exists()
    fresh.release()


def test_a_reset_is_refused_while_another_process_uses_the_exercise(harness: Harness, tmp_path: Path) -> None:
    # a server still serving the exercise would go on writing to the replaced file: what it
    # did after the reset was lost without a word
    target = tmp_path / "exercise.db"
    serving = open_exercise_database(target, live=_live(harness))
    kept = _digest(target)
    with pytest.raises(InvalidInput, match="another process is using the exercise database"):
        open_exercise_database(target, live=_live(harness), reset=True)
    assert _digest(target) == kept
    # a start that only reuses it is not held up by it
    reusing = open_exercise_database(target, live=_live(harness))
    assert reusing.outcome == "reused"
    serving.release()
    with pytest.raises(InvalidInput, match="another process is using"):
        open_exercise_database(target, live=_live(harness), reset=True)
    reusing.release()
    assert open_exercise_database(target, live=_live(harness), reset=True).outcome == "reset"


def test_seeding_is_all_or_nothing(harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_insert = exercise.insert  # type: ignore[attr-defined]

    def failing_insert(table: Any) -> Any:
        if table.__tablename__ == "party_keys":  # the last table: every other row is already written
            raise StorageError("disk full")
        return real_insert(table)

    monkeypatch.setattr(exercise, "insert", failing_insert)
    target = tmp_path / "ex" / "exercise.db"
    with pytest.raises(StorageError, match="disk full"):
        open_exercise_database(target, live=_live(harness))
    assert [p.name for p in target.parent.iterdir()] == [".exercise.db.lock"]  # no half-seeded file

    monkeypatch.setattr(exercise, "insert", real_insert)
    assert open_exercise_database(target, live=_live(harness)).outcome == "created"


def test_no_live_database_no_exercise(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        open_exercise_database(tmp_path / "exercise.db", live=tmp_path / "gsomia.db")
    empty = build(Settings(db=f"sqlite:///{tmp_path / 'gsomia.db'}", data_dir=tmp_path))
    empty.close()
    with pytest.raises(InvalidInput, match="holds no scenario"):
        open_exercise_database(tmp_path / "exercise.db", live=tmp_path / "gsomia.db")
    assert not (tmp_path / "exercise.db").exists()


def test_a_reset_needs_the_exercise_database(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="outside exercise mode"):
        build(Settings(db=None, data_dir=tmp_path), exercise_reset=True)
    with pytest.raises(InvalidInput, match="--db"):
        build(
            Settings(db=f"sqlite:///{tmp_path / 'x.db'}", data_dir=tmp_path, exercise_clock=CLOCK), exercise_reset=True
        )


def test_live_keys_verify_reports_made_at_any_exercise_instant(tmp_path: Path) -> None:
    # Keys registered live today; the exercise replays 2019. A report signed in the exercise is
    # received at the exercise's instant, which must lie inside its key's validity.
    live = start(tmp_path / "live", at="2026-12-01T00:00Z")
    live.app.close()
    made = open_exercise_database(tmp_path / "ex" / "exercise.db", live=_live(live))
    clock = TestClock(parse_instant(CLOCK, "UTC"))
    app = build(Settings(db=f"sqlite:///{made.path}", data_dir=tmp_path / "ex", exercise_clock=CLOCK), clock=clock)
    identity = app.exchange.identity
    principals = {who: identity.authenticate(token) for who, token in live.tokens.items()}
    rehearsal = Harness(app=app, clock=clock, keys=live.keys, principals=principals, tokens=live.tokens)
    try:
        rehearsal.submit("JPN", recipients=["KOR"], payload=b"exercise track")
        (item,) = rehearsal.deliveries("KOR")
        assert rehearsal.open("KOR", item["id"]) == b"exercise track"
    finally:
        app.close()
