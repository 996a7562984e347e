"""The exchange's own traffic replayed under a what-if, through the store (SQLite and
PostgreSQL): reports submitted, decided and stored by the exchange, then read back streamed
and decided again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gsomia.api.app import create_app
from gsomia.domain.record import WhatIf
from gsomia.domain.traffic import TrafficSelection
from gsomia.errors import StorageError
from gsomia.services.analysis import presenters as views
from gsomia.storage.traffic import TrafficReader
from tests.harness import Harness, start

SUSPENSION = WhatIf("no-suspension", drop=("jpn-kor-2019-suspension",))


@pytest.fixture
def traffic(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    """An exchange that decided reports on 22 November 2019 (GSOMIA in force) and after the
    date the notice would have ended it."""
    h = start(tmp_path, db=db_url)
    h.submit("JPN", recipients=("KOR", "USA"), id="before-1")
    h.submit("KOR", recipients=("JPN",), level="군사II급비밀", id="before-2")
    h.clock.set("2019-12-05T10:00+09:00")
    h.submit("JPN", recipients=("KOR",), id="after-1")
    h.submit("JPN", recipients=("KOR",), id="after-2", topic="dprk.military.movement")
    h.submit("KOR", recipients=("JPN", "USA"), level="군사II급비밀", id="after-3")
    h.clock.advance(timedelta(days=30))
    h.submit("JPN", recipients=("KOR",), id="later", rel_to=["KOR"])
    yield h
    h.close()


def test_every_recorded_decision_is_replayed_at_its_instant(traffic: Harness) -> None:
    replay = traffic.app.analysis.traffic(SUSPENSION, keep=5)
    i = replay.impact
    assert i.decisions == 8 and i.drift == 0
    by = {(g.originator, g.recipient, g.topic, g.kind): g for g in i.groups}
    assert set(by) == {
        ("JPN", "KOR", "dprk.missile.launch", "rerouted"),
        ("JPN", "KOR", "dprk.missile.launch", "stopped"),  # REL TO KOR: the hub may not have it
        ("JPN", "KOR", "dprk.military.movement", "stopped"),  # outside TISA's scope
        ("KOR", "JPN", "dprk.missile.launch", "rerouted"),
    }
    rerouted = by[("JPN", "KOR", "dprk.missile.launch", "rerouted")]
    assert rerouted.count == 1 and [k for k, _ in rerouted.reports] == ["JPN/after-1"]
    assert (rerouted.after_via, rerouted.after_delay) == ("USA", timedelta(hours=4))
    assert rerouted.outcomes == {"delivered": 1}
    assert [k for k, _ in by[("JPN", "KOR", "dprk.missile.launch", "stopped")].reports] == ["JPN/later"]
    assert i.unchanged == 4  # before the expiry, and every decision for the United States
    doc = views.traffic_json(replay, traffic.app.analysis.compiled().record)
    assert doc["changed"] == {"stopped": 2, "rerouted": 2, "changed": 0, "released": 0}
    assert doc["groups"][0]["reports"][0]["decided_at"] == "2019-12-05T10:00+09:00"


def test_the_replay_reads_in_pages_and_selects(traffic: Harness) -> None:
    reader = TrafficReader(traffic.app.store)
    pages = list(reader.pages(page_size=2))
    assert [len(p) for p in pages] == [2, 2, 2, 2]
    assert sorted(r[0] for p in pages for r in p) == sorted(
        ["JPN/before-1"] * 2 + ["KOR/before-2", "JPN/after-1", "JPN/after-2"] + ["KOR/after-3"] * 2 + ["JPN/later"]
    )
    # the stored instants compare as the instants do, and read back exactly
    at = traffic.clock()
    assert reader.instant(reader.key(at)) == at
    stored = sorted(r[6] for p in pages for r in p)
    assert reader.key(traffic.clock() - timedelta(days=30)) in stored
    sel = traffic.app.analysis.traffic_selection(parties=["ROK", "JP"], topic="dprk.missile.launch")
    assert sel == TrafficSelection(parties=("KOR", "JPN"), topic="dprk.missile.launch")
    assert reader.count(sel) == 6  # recipients among them; the originator is selected while replaying
    replay = traffic.app.analysis.traffic(SUSPENSION, sel)
    assert replay.impact.decisions == 5
    early = traffic.app.analysis.traffic_selection(end=traffic.app.analysis.instant("2019-12-01"))
    assert traffic.app.analysis.traffic(SUSPENSION, early).impact.decisions == 3


def test_a_decision_without_its_report_is_a_storage_error(traffic: Harness) -> None:
    reader = TrafficReader(traffic.app.store)
    # a row removed behind the exchange's back, foreign keys and all
    with traffic.app.store.engine.connect() as conn:
        if traffic.app.store.dialect == "sqlite":
            conn.exec_driver_sql("COMMIT")  # the pragma applies outside a transaction only
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        else:
            conn.exec_driver_sql("SET session_replication_role = replica")
        conn.exec_driver_sql("DELETE FROM exchange_reports WHERE id = 'JPN/later'")
        conn.commit()
    with pytest.raises(StorageError, match="JPN/later"):
        for _page in reader.pages():
            pass


def test_the_api_replays_for_auditors_and_operators_only(traffic: Harness) -> None:
    client = TestClient(create_app(traffic.app))
    path = "/api/v1/whatif/traffic"
    assert client.get(path, params={"drop": "jpn-kor-2019-suspension"}).status_code == 401
    party = client.get(
        path, params={"drop": "jpn-kor-2019-suspension"}, headers={"Authorization": f"Bearer {traffic.tokens['JPN']}"}
    )
    assert party.status_code == 403 and party.headers["content-type"] == "application/problem+json"
    ok = client.get(
        path,
        params={"drop": "jpn-kor-2019-suspension", "parties": "JPN,ROK", "reports": 1},
        headers={"Authorization": f"Bearer {traffic.tokens['auditor']}"},
    )
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["decisions"] == 6 and body["selection"]["parties"] == ["JPN", "KOR"]
    assert all(len(g["reports"]) <= 1 for g in body["groups"])
    unknown = client.get(
        path, params={"drop": "jpn-kor-2019-suspend"}, headers={"Authorization": f"Bearer {traffic.tokens['operator']}"}
    )
    assert unknown.status_code == 404 and "did you mean jpn-kor-2019-suspension" in unknown.json()["detail"]
