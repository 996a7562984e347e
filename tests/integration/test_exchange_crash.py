"""Crash safety: SIGKILL the server in the middle of 1,200 concurrent submissions, restart it,
and check that every submission that was answered 2xx is there with its deliveries and ledger
entries, and that the whole ledger verifies (``gsomia ledger verify``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import start_server
from tests.integration.exchange_support import Exchange, start_exchange, wait_for

pytestmark = pytest.mark.slow

TOTAL = 1200
THREADS = 8
KILL_AFTER = 400  # answered submissions before the kill


def test_sigkill_under_load_loses_nothing_that_was_acknowledged(tmp_path: Path) -> None:
    ex = start_exchange(tmp_path)
    bodies = [
        ex.signed("JPN", report_id=f"load-{i:05d}", recipients=["KOR", "USA"], payload=os.urandom(1024))
        for i in range(TOTAL)
    ]
    answered: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def worker(start: int) -> None:
        with ex.client("JPN") as c:
            for body in bodies[start::THREADS]:
                try:
                    r = c.post("/api/v1/reports", json=body)
                except httpx.TransportError:
                    return  # the server is gone
                if r.is_success:
                    with lock:
                        answered[body["report"]["id"]] = r.json()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
    for t in threads:
        t.start()
    wait_for(lambda: len(answered) >= KILL_AFTER, timeout=120, what=f"{KILL_AFTER} answered submissions")
    ex.server.proc.send_signal(signal.SIGKILL)
    ex.server.proc.wait(timeout=20)
    for t in threads:
        t.join(60)
    acknowledged = dict(answered)
    assert KILL_AFTER <= len(acknowledged) < TOTAL, "the kill did not land in the middle of the load"

    restarted = start_server(ex.db, ex.data_dir, ex.env)
    after = Exchange(restarted, ex.db, ex.data_dir, ex.client_dir, ex.tokens, ex.keys, ex.env)
    try:
        entries = _ledger(after)
        for report_id, result in acknowledged.items():
            stored = after.call("JPN", "GET", f"/api/v1/reports/{report_id}")
            assert stored.status_code == 200, f"{report_id} was acknowledged but is missing"
            assert stored.json() == result
            assert entries[result["leaf_index"]]["report"] == report_id
            assert entries[result["leaf_index"]]["commitment"] == result["commitment"]
            for rec in result["recipients"]:
                assert rec["outcome"] == "delivered", rec
                assert entries[rec["leaf_index"]]["type"] == "decision"
                (delivery,) = rec["deliveries"]
                entry = entries[delivery["leaf_index"]]
                assert (entry["type"], entry["delivery"], entry["recipient"]) == (
                    "delivery",
                    delivery["id"],
                    rec["recipient"],
                )
        # the exchange goes on where it stopped
        assert after.submit("JPN", report_id="after-restart", recipients=["KOR"]).status_code == 201
    finally:
        after.stop()
    verify = subprocess.run(
        [sys.executable, "-m", "gsomia", "ledger", "verify"],
        env={**os.environ, "GSOMIA_DB": ex.db, "GSOMIA_DATA_DIR": str(ex.data_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _ledger(ex: Exchange) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    start: int | None = 0
    while start is not None:
        page = ex.call("auditor", "GET", "/api/v1/ledger/entries", params={"start": start, "limit": 1000}).json()
        for e in page["entries"]:
            out[e["index"]] = e["entry"]
        start = page["next"]
    return out
