"""An exercise on a database an operator names (``--db``, the only way on PostgreSQL): its
decisions are made at the exercise clock even where real-time commits came before it, and the
database is then an exercise's: served outside exercise mode it is refused, never decided on
with instants an exercise clock pushed into the future. Every process shows the exercise clock
as stored, not its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gsomia.bootstrap import build
from gsomia.domain.instants import parse_instant
from gsomia.errors import StorageError
from gsomia.services.exchange.audit import audit_rows
from tests.harness import Harness, TestClock, start, start_terminated

LIVE = "2026-12-06T10:00Z"
REHEARSED = "2019-11-22T20:00+09:00"


def _reopened(h: Harness, at: datetime, **settings: object) -> Harness:
    """Another process on ``h``'s database, with ``settings`` changed, its clock at ``at``."""
    clock = TestClock(at)
    app = build(h.app.settings.model_copy(update=settings), clock=clock)
    return Harness(app=app, clock=clock, keys=h.keys, principals=h.principals, tokens=h.tokens)


def test_an_exercise_after_live_traffic_decides_at_its_own_clock(tmp_path: Path) -> None:
    live = start(tmp_path, at=LIVE)
    live.submit("JPN", recipients=["KOR"], id="R-live")  # committed in real time
    live.close()
    exercise = _reopened(live, parse_instant(LIVE, "UTC") + timedelta(seconds=5), exercise_clock=REHEARSED)
    try:
        result = exercise.submit("JPN", recipients=["KOR"], id="R-rehearsed")
        # decided at the exercise clock: it was the last live commit's instant, in 2026
        assert result.body["received_at"].startswith("2019-11-22T11:00"), result.body["received_at"]
    finally:
        exercise.close()


def test_a_database_an_exercise_wrote_to_is_refused_outside_exercise_mode(tmp_path: Path) -> None:
    h = start(tmp_path, at=LIVE, exercise_clock="2999-01-01T00:00Z")
    h.submit("JPN", recipients=["KOR"], id="R-far")
    h.close()
    normal = _reopened(h, parse_instant(LIVE, "UTC"), exercise_clock=None)
    try:
        # live decisions would have been stamped in 2999, after the exercise's last commit
        with pytest.raises(StorageError, match="holds an exercise"):
            normal.submit("JPN", recipients=["KOR"], id="R-live")
        with pytest.raises(StorageError, match="holds an exercise"):
            normal.app.exchange.context.check_database()
    finally:
        normal.close()


def test_every_process_shows_and_previews_the_exercise_clock_as_stored(tmp_path: Path) -> None:
    a = start(tmp_path, at=LIVE, exercise_clock=REHEARSED)
    b = _reopened(a, parse_instant(LIVE, "UTC"))
    try:
        a.submit("JPN", recipients=["KOR"], id="R-a")  # A stores the exercise clock
        moved = a.exchange.operator.advance_clock(a.principals["operator"], "2019-11-23T00:00+09:00")
        # B has written nothing since: what it shows is the stored clock all the same
        with b.client("KOR") as kor:
            shown = kor.exercise()
        assert parse_instant(shown["clock"], "UTC") >= moved
        assert b.exchange.context.check_database() == b.exchange.clock.now() >= moved
        assert shown["whatif"] is None
    finally:
        b.close()
        a.close()


def test_a_seeded_exercise_database_verifies(tmp_path: Path) -> None:
    # the live database of a data directory, seeded into its exercise.db: every key set copied
    # must be found registered in the exercise's ledger (it was called altered, exit 8)
    live = start(tmp_path, at=LIVE, db=f"sqlite:///{tmp_path / 'gsomia.db'}")
    live.submit("JPN", recipients=["KOR"], id="R-live")
    live.close()
    settings = live.app.settings.model_copy(update={"db": None, "exercise_clock": REHEARSED})
    app = build(settings, clock=lambda: datetime(2026, 12, 6, 10, tzinfo=UTC))
    try:
        assert app.exercise_database is not None and app.exercise_database.outcome == "created"
        report = app.ledger.verify()
        assert report.ok, report
        assert audit_rows(app.exchange.context) is None
    finally:
        app.close()
    again = build(settings, clock=lambda: datetime(2026, 12, 6, 11, tzinfo=UTC))
    try:  # reused: nothing ledgered twice
        assert again.exercise_database is not None and again.exercise_database.outcome == "reused"
        assert again.ledger.stored_count() == len(live.keys)
        assert audit_rows(again.exchange.context) is None
    finally:
        again.close()


def test_a_live_process_on_a_database_an_exercise_took_since_shows_nothing_live(tmp_path: Path) -> None:
    # it said there was no exercise and previewed live releases on the rehearsal's record
    live = start(tmp_path, at=LIVE)
    exercise = _reopened(live, parse_instant(LIVE, "UTC"), exercise_clock=REHEARSED)
    try:
        exercise.submit("JPN", recipients=["KOR"], id="R-rehearsed")  # the exercise takes the database
        with live.client("KOR") as kor:
            for path, params in (
                ("/api/v1/exercise", None),
                ("/healthz", None),
                (
                    "/api/v1/route",
                    {"originator": "JPN", "recipient": "KOR", "topic": "dprk.missile.launch", "level": "極秘"}
                    | {"as_exchange": "true"},
                ),
            ):
                answer = kor._http.get(path, params=params)
                assert answer.status_code == 503 and "holds an exercise" in answer.text, (path, answer.text)
    finally:
        exercise.close()
        live.close()


def test_a_database_a_what_if_exercise_wrote_to_is_refused_outside_exercise_mode(tmp_path: Path, db_url: str) -> None:
    # an exercise with a what-if and no exercise clock decides on a changed record: its
    # deliveries must never be served, or added to, as the live exchange's
    h = start_terminated(tmp_path, at=LIVE, db=db_url)
    assert h.submit("JPN", recipients=["KOR"], id="R-whatif").created
    h.close()
    normal = _reopened(h, parse_instant(LIVE, "UTC") + timedelta(seconds=5), exercise_whatif=None)
    try:
        with pytest.raises(StorageError, match="holds an exercise"):
            normal.app.exchange.context.check_database()
        with pytest.raises(StorageError, match="holds an exercise"):
            normal.submit("JPN", recipients=["KOR"], id="R-live")
    finally:
        normal.close()
    # the same exercise, started again, goes on
    again = _reopened(h, parse_instant(LIVE, "UTC") + timedelta(seconds=9))
    try:
        assert again.app.exchange.context.check_database() is None
        assert again.submit("JPN", recipients=["KOR"], id="R-whatif-2").created
    finally:
        again.close()


def test_a_fresh_exercise_database_is_not_said_to_hold_an_exercise_under_way(tmp_path: Path) -> None:
    # the first start seeded exercise.db (registering the keys copied stores the clock), then
    # said "this database's exercise is under way: its clock is kept, not --exercise-clock …"
    live = start(tmp_path, at=LIVE, db=f"sqlite:///{tmp_path / 'gsomia.db'}")
    live.close()
    settings = live.app.settings.model_copy(update={"db": None, "exercise_clock": REHEARSED})
    app = build(settings, clock=lambda: datetime(2026, 12, 6, 10, tzinfo=UTC))
    try:
        assert app.exercise_database is not None and app.exercise_database.outcome == "created"
        assert app.exchange.context.check_database() is None
        assert app.exchange.clock.now() == parse_instant(REHEARSED, "UTC")
    finally:
        app.close()
    # started again an hour later, the exercise is under way: its clock ran on from the first start
    again = build(settings, clock=lambda: datetime(2026, 12, 6, 11, tzinfo=UTC))
    try:
        assert again.exercise_database is not None and again.exercise_database.outcome == "reused"
        assert again.exchange.context.check_database() == parse_instant(REHEARSED, "UTC") + timedelta(hours=1)
    finally:
        again.close()
