"""What a hostile party tried against a live exchange (the bundled scenario, over a real socket):
each finding with the test that keeps it closed. The in-process ones are in
tests/unit/services/exchange/test_exchange_trust.py."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.exchange_support import Exchange, sse, start_exchange, wait_for

pytestmark = pytest.mark.slow

LEDGER = "/api/v1/ledger"


@pytest.fixture(scope="module")
def ex(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    """JPN has sent one report to KOR, and tried a 機密 one (denied); KOR filed an incident."""
    exchange = start_exchange(tmp_path_factory.mktemp("trust"), exercise_clock="2019-11-22T10:00+09:00")
    r = exchange.submit("JPN", report_id="jk-1", recipients=["KOR"])
    assert r.status_code == 201, r.text
    denied = exchange.submit("JPN", report_id="jk-kimitsu", recipients=["KOR"], level="機密")
    assert denied.json()["recipients"][0]["outcome"] == "denied"
    delivery = r.json()["recipients"][0]["deliveries"][0]["id"]
    inc = exchange.call(
        "KOR", "POST", f"/api/v1/deliveries/{delivery}/incidents", json={"kind": "loss", "description": "x"}
    )
    assert inc.status_code == 201, inc.text
    yield exchange
    exchange.stop()


def readable(ex: Exchange, who: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    start: int | None = 0
    while start is not None:
        page = ex.call(who, "GET", f"{LEDGER}/entries", params={"start": start, "limit": 1000}).json()
        out += page["entries"]
        start = page["next"]
    return out


def test_another_partys_ledger_entries_are_not_served(ex: Exchange) -> None:
    everything = readable(ex, "auditor")
    about_jpn = {e["index"] for e in everything if e["entry"].get("originator") == "JPN"}
    usa = readable(ex, "USA")
    assert {e["entry"]["type"] for e in usa} == {"key"}  # public keys only
    assert not about_jpn & {e["index"] for e in usa}
    kor = readable(ex, "KOR")
    assert {e["entry"]["type"] for e in kor} == {"key", "submission", "delivery", "incident"}
    assert "jk-kimitsu" not in json.dumps([e["entry"] for e in kor])
    assert len(readable(ex, "operator")) == len(everything)


# role × ledger endpoint × another party's entry: what each may read
def test_the_ledger_endpoints_answer_by_role_and_ownership(ex: Exchange) -> None:
    everything = readable(ex, "auditor")
    decision = next(e["index"] for e in everything if e["entry"]["type"] == "decision")  # JPN's alone
    delivery = next(e["index"] for e in everything if e["entry"]["type"] == "delivery")  # JPN's and KOR's
    expected = {
        "JPN": {decision: 200, delivery: 200},
        "KOR": {decision: 404, delivery: 200},
        "USA": {decision: 404, delivery: 404},
        "operator": {decision: 200, delivery: 200},
        "auditor": {decision: 200, delivery: 200},
    }
    for who, by_index in expected.items():
        for index, status in by_index.items():
            one = ex.call(who, "GET", f"{LEDGER}/entries/{index}")
            proof = ex.call(who, "GET", f"{LEDGER}/proof/inclusion", params={"index": index})
            assert (one.status_code, proof.status_code) == (status, status), (who, index)
            if status == 404:  # the same answer as for an index that does not exist
                assert one.json()["type"] == "urn:gsomia:problem:not-found"
        # the batch: the same answers, item by item, in words that do not tell "another's" from "none"
        size = len(everything)
        batch = ex.call(
            who, "GET", f"{LEDGER}/proof/inclusions", params={"index": [decision, delivery, 10**6], "size": size}
        )
        assert batch.status_code == 200, (who, batch.text)
        items = batch.json()["items"]
        assert [i["index"] for i in items] == [decision, delivery, 10**6]
        for item in items[:2]:
            proved = item["entry"] is not None and item["proof"]["size"] == size
            assert proved is (by_index[item["index"]] == 200), (who, item)
        assert items[2]["error"] == f"ledger entry {10**6} does not exist or is not yours to read"
        if by_index[decision] == 404:
            assert items[0]["error"] == f"ledger entry {decision} does not exist or is not yours to read"
            assert (items[0]["entry"], items[0]["proof"]) == (None, None)
        # checkpoints and consistency proofs say nothing about anyone's entries: everyone may read them
        assert ex.call(who, "GET", f"{LEDGER}/checkpoint").status_code == 200
        assert ex.call(who, "GET", f"{LEDGER}/proof/consistency", params={"old": 1}).status_code == 200
    for path in ("/checkpoint", "/entries", f"/entries/{delivery}", "/key", "/proof/inclusions?index=1&size=1"):
        assert ex.call(None, "GET", LEDGER + path).status_code == 401


def test_a_party_verifies_the_entries_it_may_read(ex: Exchange, tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text(ex.call("KOR", "GET", f"{LEDGER}/key").text)
    p = gsomia(ex, "KOR", "ledger", "verify", "--url", ex.url, "--key", str(key), "--json")
    report = json.loads(p.stdout)
    assert report["ok"] is True and report["entries"] >= 3
    assert any("readable here are in the signed log" in c for c in report["checks"])


def test_a_revoked_token_ends_its_open_event_stream(ex: Exchange) -> None:
    token = gsomia(ex, None, "principals", "add", "--role", "party", "--party", "KOR", "--name", "short-lived").stdout
    principal = json.loads(gsomia(ex, None, "principals", "list", "--json").stdout)[-1]["id"]
    ex.tokens["KOR-2"] = token.strip()
    ended = threading.Event()
    received: list[str] = []

    def follow() -> None:
        with sse(ex, "KOR-2") as events:
            for event in events:
                received.append(event["data"].get("report", ""))
        ended.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    wait_for(lambda: ex.call("KOR-2", "GET", "/api/v1/whoami").status_code == 200, what="the stream's token")
    gsomia(ex, None, "principals", "revoke", principal)
    assert ended.wait(15), "the stream of a revoked token stayed open"
    ex.submit("JPN", report_id="after-revoke", recipients=["KOR"])
    assert "after-revoke" not in received


def test_a_rewritten_delivery_row_is_named_by_verify(ex: Exchange, tmp_path: Path) -> None:
    kept = tmp_path / "kept.txt"
    gsomia(ex, None, "ledger", "checkpoint", "--out", str(kept))
    copy = tmp_path / "copy.db"
    source = sqlite3.connect(ex.db.removeprefix("sqlite:///"))
    with sqlite3.connect(copy) as target:
        source.backup(target)
    source.close()
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE deliveries SET recipient = 'USA', marking = json_set(marking, '$.recipient', 'USA')")
    p = gsomia(ex, None, "ledger", "verify", "--since", str(kept), db=f"sqlite:///{copy}", code=8)
    assert "delivery row d-" in p.stderr and "recipient is 'USA' in the database but 'KOR' in the ledger" in p.stderr


def gsomia(
    ex: Exchange, who: str | None, *args: str, code: int = 0, db: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GSOMIA_URL": ex.url, "GSOMIA_DB": db or ex.db, "GSOMIA_DATA_DIR": str(ex.data_dir)}
    if who is not None:
        env["GSOMIA_TOKEN"] = ex.tokens[who]
    p = subprocess.run([sys.executable, "-m", "gsomia", *args], env=env, capture_output=True, text=True, check=False)
    assert p.returncode == code, p.stdout + p.stderr
    return p


def test_deliveries_fetched_together_are_each_as_fetched_alone_and_only_the_recipients(ex: Exchange) -> None:
    inbox = ex.call("KOR", "GET", "/api/v1/inbox", params={"limit": 1000}).json()["items"]
    ids = [i["id"] for i in inbox if i.get("type") == "delivery"][:3]
    assert ids
    many = ex.call("KOR", "GET", "/api/v1/deliveries", params={"id": [*ids, "d-nothere"]})
    assert many.status_code == 200, many.text
    items = many.json()["items"]
    assert items[: len(ids)] == [ex.call("KOR", "GET", f"/api/v1/deliveries/{i}").json() for i in ids]
    assert items[-1] == {"id": "d-nothere", "error": "no delivery 'd-nothere'"}
    # another party's delivery is answered exactly as one that does not exist
    assert ex.call("USA", "GET", "/api/v1/deliveries", params={"id": ids[0]}).json()["items"] == [
        {"id": ids[0], "error": f"no delivery {ids[0]!r}"}
    ]
    for who, status in (("operator", 403), ("auditor", 403), (None, 401)):
        assert ex.call(who, "GET", "/api/v1/deliveries", params={"id": ids[0]}).status_code == status, who
    assert ex.call("KOR", "GET", "/api/v1/deliveries", params={"id": ["d-x"] * 101}).status_code == 422
    assert ex.call("KOR", "GET", "/api/v1/deliveries").status_code == 422
