"""Witnesses over a real socket: three parties register witness keys, cosign the checkpoint
they saw, and ``gsomia ledger verify --url --witness … --quorum K`` requires K cosignatures on
a checkpoint the verified ledger extends. A party node's witness raises the key alarm when the
exchange signs with another key than the one it pinned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from gsomia.crypto.ledger_key import Cosigner, write_ledger_keyfile
from gsomia.crypto.signing import ExchangeSigner
from tests.integration.conftest import start_server
from tests.integration.exchange_support import PARTIES, Exchange, start_exchange, wait_for
from tests.integration.node_support import Node, start_node

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ex(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    exchange = start_exchange(tmp_path_factory.mktemp("witness"))
    r = exchange.submit("JPN", report_id="w-1", recipients=["KOR"])
    assert r.status_code == 201, r.text
    yield exchange
    exchange.stop()


def body_of(note: str) -> str:
    return note.split("\n\n", maxsplit=1)[0] + "\n"


def verify(ex: Exchange, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GSOMIA_DB": "postgresql://nobody@127.0.0.1:1/none", "COLUMNS": "200"}
    env["GSOMIA_TOKEN"] = ex.tokens["auditor"]
    p = subprocess.run(
        [sys.executable, "-m", "gsomia", "ledger", "verify", "--url", ex.url, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    return p


def test_cosigned_checkpoints_and_a_quorum(ex: Exchange, tmp_path: Path) -> None:
    assert ex.call("auditor", "GET", "/api/v1/ledger/checkpoint/cosigned").status_code == 404
    witnesses = {p: Cosigner(f"{p.lower()}.witness.example", ExchangeSigner.generate()) for p in PARTIES}
    for p, w in witnesses.items():
        r = ex.call(p, "PUT", f"/api/v1/parties/{p}/witness", json={"vkey": w.public.vkey()})
        assert r.status_code == 201, r.text
        assert r.json()["vkey"] == w.public.vkey()
    listed = ex.call("KOR", "GET", "/api/v1/witnesses").json()["witnesses"]
    assert [w["party"] for w in listed] == sorted(PARTIES)
    # KOR may not register JPN's witness.
    r = ex.call("KOR", "PUT", "/api/v1/parties/JPN/witness", json={"vkey": witnesses["KOR"].public.vkey()})
    assert r.status_code == 403
    note = ex.call("auditor", "GET", "/api/v1/ledger/checkpoint").text
    size = int(body_of(note).split("\n")[1])
    for p in ("JPN", "KOR"):
        line = witnesses[p].cosign(body_of(note), int(time.time()))
        r = ex.call(p, "POST", "/api/v1/ledger/cosignatures", json={"size": size, "cosignature": line})
        assert r.status_code == 200, r.text
    # A cosignature of a tree this log never signed is a 422, and is not kept.
    forked = body_of(note).replace(body_of(note).split("\n")[2], "A" * 43 + "=")
    bad = witnesses["USA"].cosign(forked, int(time.time()))
    r = ex.call("USA", "POST", "/api/v1/ledger/cosignatures", json={"size": size, "cosignature": bad})
    assert r.status_code == 422
    assert "another tree" in r.json()["detail"]
    cosigned = ex.call("auditor", "GET", "/api/v1/ledger/checkpoint/cosigned").text
    assert cosigned.startswith(note) and cosigned.count("\n\u2014 ") == 3  # the log's line and two

    # The ledger moves on: the verifier checks the latest tree extends the cosigned one.
    assert ex.submit("JPN", report_id="w-2", recipients=["KOR"]).status_code == 201
    keys = tmp_path / "witnesses.txt"
    keys.write_text("# trusted witnesses\n" + "".join(w.public.vkey() + "\n" for w in witnesses.values()))
    ok = verify(ex, "--witness", str(keys), "--quorum", "2", "--json")
    report = json.loads(ok.stdout)
    assert report["ok"] is True
    assert any("2 of 3 witnesses cosigned the checkpoint of size" in c for c in report["checks"])
    failed = verify(ex, "--witness", str(keys), code=8)  # the default quorum is all three
    assert "only 2 of the 3" in failed.stderr and "usa.witness.example" in failed.stderr
    refused = verify(ex, "--quorum", "1", code=4)
    assert "--witness" in refused.stderr


def restart_with_key(ex: Exchange, key_file: Path) -> None:
    """Stop the exchange, put ``key_file`` in place of its ledger key, start it on its port: an
    exchange that lost the record of its log's key along with the key file (with the record, a
    process with another key file is refused at start)."""
    port = int(ex.server.url.rsplit(":", 1)[1])
    ex.server.stop()
    engine = sqlalchemy.create_engine(ex.db)
    with engine.begin() as c:
        c.execute(sqlalchemy.text("DELETE FROM ledger_meta WHERE name IN ('key', 'checkpoint')"))
    engine.dispose()
    target = ex.data_dir / "exchange-ledger.key"
    target.unlink()
    target.write_bytes(key_file.read_bytes())
    target.chmod(0o600)
    ex.server = start_server(ex.db, ex.data_dir, ex.env, port=port)


def ledger_size(ex: Exchange) -> int:
    return int(ex.call("auditor", "GET", "/api/v1/ledger/checkpoint").text.splitlines()[1])


def status(node: Node) -> tuple[int, dict[str, Any], str]:
    p = node.cli("status", "--json")
    return p.returncode, json.loads(p.stdout), p.stderr


def alarmed(node: Node) -> tuple[int, dict[str, Any], str] | None:
    found = status(node)
    return found if found[1]["alarm"] is not None else None


def test_a_checkpoint_signed_with_another_key_raises_the_key_alarm_once(tmp_path: Path) -> None:
    ex = start_exchange(tmp_path / "ex")
    node = None
    try:
        assert ex.submit("JPN", report_id="k-0", recipients=["KOR"]).status_code == 201
        node = start_node(ex, "KOR", tmp_path)
        before = ledger_size(ex)
        wait_for(lambda: status(node)[1]["witness"]["cosigned_size"] == before, timeout=60, what="a cosignature")
        original = tmp_path / "original.key"
        original.write_bytes((ex.data_dir / "exchange-ledger.key").read_bytes())
        other = tmp_path / "other.key"
        write_ledger_keyfile(other, ExchangeSigner.generate(), created=datetime.now(UTC))
        restart_with_key(ex, other)  # the exchange's key file replaced between restarts
        for i in range(2):
            assert ex.submit("JPN", report_id=f"k-{i + 1}", recipients=["KOR"]).status_code == 201
        after = ledger_size(ex)

        code, st, err = wait_for(lambda: alarmed(node), timeout=60, what="the alarm")
        alarm = st["alarm"]
        assert code == 8 and alarm["kind"] == "key", (code, st)
        assert alarm["detail"].startswith("the exchange's checkpoint is not signed by the pinned ledger key")
        # the evidence: the last checkpoint accepted, and the one served under the other key
        assert alarm["first"].split("\n")[1] == str(before) and alarm["first"] != alarm["second"]
        assert before <= int(alarm["second"].split("\n")[1]) <= after
        assert "error: LEDGER ALARM (key) since " in err, err
        # the new deliveries are quarantined, saying why
        wait_for(lambda: status(node)[1]["deliveries"]["quarantined"] == 2, timeout=60, what="the quarantine")
        assert st["witness"]["cosigned_size"] == before
        shown = node.cli("status")
        assert shown.returncode == 8 and "LEDGER ALARM (key)" in shown.stderr, shown.stderr
        assert node.log.read_text(errors="replace").count("LEDGER ALARM (key)") == 1  # raised once

        # The exchange's key put back: once cleared, the node takes the next checkpoint as an
        # extension of what it accepted, and the deliveries verify.
        restart_with_key(ex, original)
        assert ex.submit("JPN", report_id="k-3", recipients=["KOR"]).status_code == 201
        cleared = node.cli("alarm", "clear")
        assert cleared.returncode == 0 and "cleared the key alarm" in cleared.stdout, cleared.stdout + cleared.stderr
        last = ledger_size(ex)
        wait_for(lambda: status(node)[1]["witness"]["cosigned_size"] == last, timeout=60, what="a new cosignature")
        rechecked = node.cli("recheck", "--json")
        assert rechecked.returncode == 0, rechecked.stderr
        code, st, _ = status(node)
        assert code == 0 and st["alarm"] is None and st["deliveries"]["quarantined"] == 0, st
    finally:
        if node is not None:
            node.stop()
        ex.stop()
