"""Witnesses over a real socket: three parties register witness keys, cosign the checkpoint
they saw, and ``gsomia ledger verify --url --witness … --quorum K`` requires K cosignatures on
a checkpoint the verified ledger extends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gsomia.crypto.ledger_key import Cosigner
from gsomia.crypto.signing import ExchangeSigner
from tests.integration.exchange_support import PARTIES, Exchange, start_exchange

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
