"""Several exchange processes over one PostgreSQL database, as several hosts behind a load
balancer run them: whatever one process commits, every other process's very next commit
honours; a stream on one process wakes for items another commits; and batches of signed
reports go through one request. The stream test runs over one SQLite file too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gsomia.crypto import PartyKeys
from tests.integration.conftest import Server, start_server
from tests.integration.exchange_support import Exchange, sse, start_exchange, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _pair(db: str | None, tmp_path: Path) -> Iterator[tuple[Exchange, Server]]:
    """Process A and process B over the database at ``db`` (None: an SQLite file of A's)."""
    env = {"GSOMIA_EXERCISE_CLOCK": "2019-12-01T10:00+09:00", "GSOMIA_STREAM_POLL_SECONDS": "60", "GSOMIA_WORKERS": "1"}
    whatif = "drop: [jpn-kor-2019-suspension]\n"
    a = start_exchange(
        tmp_path,
        db=db,
        exercise_clock=env["GSOMIA_EXERCISE_CLOCK"],
        whatif=whatif,
        extra_env={"GSOMIA_WORKERS": "1"},
    )
    b = start_server(a.db, a.data_dir, {**a.env, **env})  # same KEK and ledger key: one exchange
    try:
        yield a, b
    finally:
        b.stop()
        a.stop()


@pytest.fixture
def pair(fresh_pg: str, tmp_path: Path) -> Iterator[tuple[Exchange, Server]]:
    """Process A (the exchange fixture) and process B over the same database; B's streams
    re-read the store only every minute, so a prompt wake-up can only come from A's commit."""
    yield from _pair(fresh_pg, tmp_path)


@pytest.fixture
def sqlite_pair(tmp_path: Path) -> Iterator[tuple[Exchange, Server]]:
    """The same over one SQLite file: B hears A's commits by watching the file."""
    yield from _pair(None, tmp_path)


def on(ex: Exchange, server: Server) -> Exchange:
    """The same users, talking to another process."""
    return Exchange(server, ex.db, ex.data_dir, ex.client_dir, ex.tokens, ex.keys, ex.env)


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_a_stream_on_one_process_wakes_for_a_commit_on_another(database: str, request: pytest.FixtureRequest) -> None:
    a, b_server = request.getfixturevalue("pair" if database == "postgresql" else "sqlite_pair")
    b = on(a, b_server)
    got: list[dict[str, object]] = []
    done = threading.Event()

    def follow() -> None:
        with sse(b, "USA") as events:
            for event in events:
                got.append(event["data"])
                done.set()
                return

    threading.Thread(target=follow, daemon=True).start()
    wait_for(lambda: b.call("USA", "GET", "/api/v1/whoami").status_code == 200, what="process B")
    health: Callable[[], dict[str, Any]] = lambda: b.call(None, "GET", "/healthz").json()  # noqa: E731 - a probe, read twice
    wait_for(lambda: health()["listening"] is True and health()["streams"] == 1, what="B listening, stream open")
    r = a.submit("JPN", report_id="cross-1", recipients=["USA"])  # committed by process A
    assert r.status_code == 201, r.text
    # B re-reads the store only every 60 s: an event well before then came through LISTEN/NOTIFY
    # (PostgreSQL) or B's watch on the database file (SQLite)
    ok = done.wait(20)
    assert ok, "process B's stream was not woken by process A's commit"
    assert got[0]["report"] == "cross-1"


def test_a_revocation_through_one_process_refuses_the_next_write_on_another(pair: tuple[Exchange, Server]) -> None:
    a, b_server = pair
    b = on(a, b_server)
    assert b.call("JPN", "GET", "/api/v1/whoami").status_code == 200  # B has the token cached now
    listed = json.loads(cli(a, "principals", "list", "--json").stdout)
    jpn = next(p["id"] for p in listed if p["party"] == "JPN")
    cli(a, "principals", "revoke", jpn)
    r = b.submit("JPN", report_id="after-revoke", recipients=["USA"])
    assert r.status_code == 401, r.text
    assert r.json()["type"] == "urn:gsomia:problem:not-authenticated"


def test_an_agreement_event_through_one_process_decides_the_next_grant_on_another(
    pair: tuple[Exchange, Server],
) -> None:
    a, b_server = pair
    b = on(a, b_server)
    r = b.submit("JPN", report_id="relay-1", recipients=["KOR"])
    consent = r.json()["recipients"][0]["consent"]["id"]
    assert b.call("JPN", "GET", "/api/v1/consents").status_code == 200  # B has compiled its record
    ended = a.call("operator", "POST", "/api/v1/agreements/TISA/events", json={"kind": "termination", "id": "tisa-end"})
    assert ended.status_code == 201, ended.text
    answer = b.call("JPN", "POST", f"/api/v1/consents/{consent}", json={"decision": "grant"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"]["relayed"] is False  # decided on the record as committed


def test_a_key_change_through_one_process_is_honoured_by_the_next_submission_on_another(
    pair: tuple[Exchange, Server],
) -> None:
    a, b_server = pair
    b = on(a, b_server)
    assert b.submit("JPN", report_id="k-1", recipients=["USA"]).status_code == 201  # B read JPN's key
    fresh = PartyKeys.generate("JPN")
    assert a.call("JPN", "PUT", "/api/v1/parties/JPN/keys", json=fresh.public_keys().to_dict()).status_code == 201
    stale = b.submit("JPN", report_id="k-2", recipients=["USA"])  # signed with the retired key
    assert stale.status_code == 400 and stale.json()["type"] == "urn:gsomia:problem:bad-signature"
    b.keys["JPN"] = fresh
    assert b.submit("JPN", report_id="k-3", recipients=["USA"]).status_code == 201


def test_the_exercise_clock_moved_through_one_process_moves_every_other(pair: tuple[Exchange, Server]) -> None:
    a, b_server = pair
    b = on(a, b_server)
    moved = a.call("operator", "POST", "/api/v1/exercise/clock", json={"at": "2020-06-01T00:00+09:00"})
    assert moved.status_code == 200, moved.text
    r = b.submit("JPN", report_id="after-move", recipients=["USA"])
    assert r.json()["received_at"].startswith("2020-05-31T15:00")  # B's next commit is on the moved clock


def test_batches_of_signed_reports_one_bad_item_fails_only_itself(pair: tuple[Exchange, Server]) -> None:
    a, _b = pair
    good = a.signed("JPN", report_id="batch-1", recipients=["USA"])
    bad = a.signed("JPN", report_id="batch-2", recipients=["USA"], level="TOP SECRET")
    other = a.signed("JPN", report_id="batch-3", recipients=["USA", "KOR"])
    r = a.call("JPN", "POST", "/api/v1/report-batches", json={"reports": [good, bad, other]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == [201, 422, 201]
    assert results[1]["problem"]["type"] == "urn:gsomia:problem:invalid-input"
    assert r.json()["counts"] == {"stored": 2, "already_stored": 0, "refused": 1}
    again = a.call("JPN", "POST", "/api/v1/report-batches", json={"reports": [good]}).json()
    assert again["results"][0]["status"] == 200 and again["results"][0]["result"] == results[0]["result"]


def test_ledger_indexes_stay_gap_free_and_verify_after_concurrent_writes(pair: tuple[Exchange, Server]) -> None:
    a, b_server = pair
    b = on(a, b_server)

    def load(ex: Exchange, prefix: str) -> None:
        for i in range(15):
            assert ex.submit("JPN", report_id=f"{prefix}-{i}", recipients=["USA", "KOR"]).status_code == 201

    threads = [threading.Thread(target=load, args=(ex, name)) for ex, name in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = json.loads(cli(a, "ledger", "verify", "--json").stdout)
    assert report["ok"] is True and report["rows"]["ok"] is True


def cli(ex: Exchange, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GSOMIA_DB": ex.db, "GSOMIA_DATA_DIR": str(ex.data_dir)}
    p = subprocess.run([sys.executable, "-m", "gsomia", *args], env=env, capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    return p
