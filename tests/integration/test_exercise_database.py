"""``gsomia serve --exercise-clock`` rehearses on DATA_DIR/exercise.db: the live database and
its ledger are never written, and the tokens and keys of the live exchange work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import start_server
from tests.integration.exchange_support import Exchange, start_exchange

pytestmark = pytest.mark.slow

CLOCK = "2019-11-22T10:00+09:00"


def test_an_exercise_runs_on_its_own_database_seeded_from_the_live_one(tmp_path: Path) -> None:
    live = start_exchange(tmp_path)  # the default live database: DATA_DIR/gsomia.db
    assert live.db == f"sqlite:///{live.data_dir / 'gsomia.db'}"
    assert live.submit("JPN", report_id="live-1", recipients=["KOR"]).status_code == 201
    live_counts = live.counts()
    live.stop()

    server = start_server(None, live.data_dir, {"GSOMIA_EXERCISE_CLOCK": CLOCK})
    rehearsal = Exchange(server, "", live.data_dir, live.client_dir, live.tokens, live.keys)
    try:
        log = server.log.read_text()
        exercise_db = live.data_dir / "exercise.db"
        assert f"exercise database {exercise_db} (created: seeded from {live.data_dir / 'gsomia.db'}" in log
        health = rehearsal.call(None, "GET", "/healthz").json()
        assert health["database"] == f"sqlite:///{exercise_db}" and health["exercise"] is not None
        # the live tokens and keys work; nothing that happened live is there
        assert rehearsal.call("JPN", "GET", "/api/v1/whoami").json()["party"] == "JPN"
        assert rehearsal.call("JPN", "GET", "/api/v1/reports/live-1").status_code == 404
        stats, ledger_size = rehearsal.counts()
        # its ledger holds only the registration of each key set copied from the live database
        assert (stats["reports"], ledger_size) == (0, len(live.keys))
        made = rehearsal.submit("JPN", report_id="rehearsed-1", recipients=["KOR"])
        assert made.status_code == 201, made.text
        (delivery,) = made.json()["recipients"][0]["deliveries"]
        view = rehearsal.call("KOR", "GET", f"/api/v1/deliveries/{delivery['id']}").json()
        assert view["marking"]["banner"].startswith("EXERCISE ")
        # a reset while it is served would leave this server writing to the replaced file
        reset = subprocess.run(
            [sys.executable, "-m", "gsomia", "serve", "--exercise-clock", CLOCK, "--exercise-reset", "--port", "1"],
            env={**os.environ, "GSOMIA_DATA_DIR": str(live.data_dir)},
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert reset.returncode == 4 and "another process is using the exercise database" in reset.stderr, reset
        assert rehearsal.call("JPN", "GET", "/api/v1/reports/rehearsed-1").status_code == 200
    finally:
        rehearsal.stop()

    again = start_server(None, live.data_dir, {"GSOMIA_EXERCISE_CLOCK": CLOCK})
    try:
        assert f"exercise database {live.data_dir / 'exercise.db'} (reused" in again.log.read_text()
        second = Exchange(again, "", live.data_dir, live.client_dir, live.tokens, live.keys)
        assert second.call("JPN", "GET", "/api/v1/reports/rehearsed-1").status_code == 200
    finally:
        again.stop()

    # the exercise's own ledger verifies, rows included (seeded key sets were called altered)
    rehearsed = subprocess.run(
        [sys.executable, "-m", "gsomia", "ledger", "verify"],
        env={**os.environ, "GSOMIA_DATA_DIR": str(live.data_dir), "GSOMIA_EXERCISE_CLOCK": CLOCK},
        capture_output=True,
        text=True,
        check=False,
    )
    assert rehearsed.returncode == 0, rehearsed.stdout + rehearsed.stderr

    # the live exchange is as it was, and its ledger verifies
    back = start_server(live.db, live.data_dir)
    after = Exchange(back, live.db, live.data_dir, live.client_dir, live.tokens, live.keys)
    try:
        assert after.counts() == live_counts
        assert after.call("JPN", "GET", "/api/v1/reports/rehearsed-1").status_code == 404
    finally:
        after.stop()
    verify = subprocess.run(
        [sys.executable, "-m", "gsomia", "ledger", "verify"],
        env={**os.environ, "GSOMIA_DB": live.db, "GSOMIA_DATA_DIR": str(live.data_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
