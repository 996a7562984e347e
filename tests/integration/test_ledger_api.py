"""Ledger endpoints over a real socket, and ``gsomia ledger verify --url`` against live servers.

A client that kept a checkpoint detects a server presenting an older tree (rollback) or another
history signed with the same key (fork).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gsomia.bootstrap import Settings, build
from gsomia.crypto.ledger_key import LedgerKey
from gsomia.ledger.entries import entry_leaf_hash
from gsomia.ledger.merkle import verify_consistency, verify_inclusion
from gsomia.services.exchange.access import Role
from gsomia.services.ledger.service import LedgerService
from gsomia.storage.store import Store
from tests.integration.conftest import Server, start_server

LEDGER = "/api/v1/ledger"


def clock() -> datetime:
    return datetime(2019, 11, 22, 1, 0, tzinfo=UTC)


def entry(n: int, recipient: str = "KOR") -> dict[str, Any]:
    return {"type": "consent", "report": f"r-{n}", "recipient": recipient, "granted": True, "n": n}


def fill(workdir: Path, n: int, start: int = 0, recipient: str = "KOR", origin: str | None = None) -> None:
    store = Store(f"sqlite:///{workdir / 'g.db'}")
    ledger = LedgerService(store, key_file=workdir / "exchange-ledger.key", clock=clock, origin=origin)
    assert ledger.origin  # named at the first start, as a server does
    with store.writing() as s:
        for i in range(start, start + n):
            ledger.append(s, entry(i, recipient))
    store.close()


def auditor_token(workdir: Path) -> str:
    app = build(Settings(db=f"sqlite:///{workdir / 'g.db'}", data_dir=workdir))
    try:
        return app.exchange.identity.add_principal(role=Role.AUDITOR, name="inspector").token
    finally:
        app.close()


@dataclass
class Live:
    """A served exchange database and an auditor's token for it."""

    server: Server
    workdir: Path
    token: str

    def get(self, path: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.get(self.server.url + LEDGER + path, params=params, headers=headers)


def serve(workdir: Path) -> Live:
    token = auditor_token(workdir)
    return Live(start_server(f"sqlite:///{workdir / 'g.db'}", workdir), workdir, token)


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def cli(*args: str, token: str | None = None, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GSOMIA_DB": "postgresql://nobody@127.0.0.1:1/none", "COLUMNS": "200"}
    env.pop("GSOMIA_TOKEN", None)
    if token:
        env["GSOMIA_TOKEN"] = token
    p = subprocess.run(
        [sys.executable, "-m", "gsomia", "ledger", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    return p


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    workdir = tmp_path_factory.mktemp("ledger-api")
    fill(workdir, 30)
    served = serve(workdir)
    yield served
    served.server.stop()


def test_the_key_is_created_at_startup_with_mode_0600(tmp_path: Path) -> None:
    served = serve(tmp_path)
    try:
        key_file = tmp_path / "exchange-ledger.key"
        assert key_file.exists() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
        r = served.get("/checkpoint")
        # the log names itself at its first start: no two deployments share an origin
        assert r.status_code == 200 and re.match(r"gsomia/[0-9a-f]{16}\n0\n", r.text), r.text
    finally:
        served.server.stop()


def test_the_ledger_needs_a_token(live: Live) -> None:
    r = httpx.get(live.server.url + LEDGER + "/checkpoint")
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
    p = cli("verify", "--url", live.server.url, code=9)
    assert p.stderr.startswith(f"error: {live.server.url} refused to serve the ledger (") and "pass --token" in p.stderr
    assert "HTTP 401" in p.stderr


def test_checkpoint_is_a_signed_note_verifiable_with_the_published_key(live: Live) -> None:
    r = live.get("/checkpoint")
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain; charset=utf-8"
    key_doc = live.get("/key").json()
    assert set(key_doc) == {"name", "key_id", "public_key", "algorithm", "vkey"} and key_doc["algorithm"] == "ed25519"
    cp = LedgerKey.parse(json.dumps(key_doc)).open(r.text)
    assert re.fullmatch(r"gsomia/[0-9a-f]{16}", cp.origin) and cp.size >= 30


def test_entries_are_paginated_and_capped(live: Live) -> None:
    page = live.get("/entries", start=0, limit=10).json()
    assert [e["index"] for e in page["entries"]] == list(range(10)) and page["next"] == 10
    assert page["entries"][3]["entry"] == entry(3)
    assert unb64(page["entries"][3]["leaf_hash"]) == entry_leaf_hash(entry(3))
    one = live.get("/entries/7").json()
    assert one["entry"] == entry(7) and one["recorded_at"] == "2019-11-22T01:00:00Z"
    r = live.get("/entries", limit=5000)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    r = live.get("/entries/100000")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    assert "ledger entry 100000 does not exist" in r.json()["detail"]


def test_proofs_verify_and_unknown_sizes_are_404(live: Live) -> None:
    p = live.get("/proof/inclusion", index=12, size=20).json()
    verify_inclusion(entry_leaf_hash(entry(12)), 12, 20, [unb64(h) for h in p["proof"]], unb64(p["root"]))
    c = live.get("/proof/consistency", old=20, new=30).json()
    verify_consistency(20, 30, unb64(p["root"]), unb64(c["new_root"]), [unb64(h) for h in c["proof"]])
    for path, params in (
        ("/proof/inclusion", {"index": 5, "size": 10**6}),
        ("/proof/inclusion", {"index": 10**6}),
        ("/proof/consistency", {"old": 1, "new": 10**6}),
    ):
        r = live.get(path, **params)
        assert r.status_code == 404 and r.json()["type"] == "urn:gsomia:problem:not-found", (path, r.text)
    assert live.get("/proof/inclusion", index=-1).status_code == 422


def test_many_proofs_in_one_request_verify_against_one_checkpoint(live: Live) -> None:
    size = 20
    answer = live.get("/proof/inclusions", index=[12, 3, 19, 3], size=size).json()
    assert answer["size"] == size and [i["index"] for i in answer["items"]] == [12, 3, 19, 3]
    root = unb64(live.get("/proof/inclusion", index=0, size=size).json()["root"])
    for item in answer["items"]:
        leaf = entry_leaf_hash(item["entry"]["entry"])
        assert unb64(item["entry"]["leaf_hash"]) == leaf
        verify_inclusion(leaf, item["index"], size, [unb64(h) for h in item["proof"]["proof"]], root)
    outside = live.get("/proof/inclusions", index=[25, 5], size=size).json()["items"]
    assert outside[0]["proof"] is None and outside[0]["error"]  # 25 is not in the tree of size 20
    assert outside[1]["proof"] is not None and outside[1]["error"] is None
    r = live.get("/proof/inclusions", index=[1], size=10**6)
    assert r.status_code == 404 and r.json()["type"] == "urn:gsomia:problem:not-found", r.text
    invalid: list[dict[str, Any]] = [
        {"size": 20},
        {"index": [1], "size": 20, "old": 3},  # old goes with the current tree only
        {"index": [1], "old": 10**6},  # beyond the ledger: a consistency proof goes forward
        {"index": [1], "old": -1},
        {"index": [-1], "size": 20},
        {"index": [5, 2**70], "size": 20},  # beyond any ledger's integers, as for /proof/inclusion
        {"index": [1], "size": 2**70},
        {"index": list(range(257)), "size": 30},
    ]
    for params in invalid:
        assert live.get("/proof/inclusions", **params).status_code == 422, params


def test_proofs_in_the_current_tree_come_with_its_checkpoint_and_the_proof_it_extends_an_older_one(
    live: Live,
) -> None:
    key = LedgerKey.parse(live.get("/key").text)
    old_root = unb64(live.get("/proof/inclusion", index=0, size=20).json()["root"])
    answer = live.get("/proof/inclusions", index=[12, 3], old=20).json()
    cp = key.open(answer["checkpoint"])  # signed by the ledger key
    assert answer["size"] == cp.size >= 20
    c = answer["consistency"]
    assert (c["old"], c["new"]) == (20, cp.size)
    assert unb64(c["old_root"]) == old_root and unb64(c["new_root"]) == cp.root_hash
    verify_consistency(20, cp.size, old_root, cp.root_hash, [unb64(h) for h in c["proof"]])
    for item in answer["items"]:
        leaf = entry_leaf_hash(item["entry"]["entry"])
        verify_inclusion(leaf, item["index"], cp.size, [unb64(h) for h in item["proof"]["proof"]], cp.root_hash)
    alone = live.get("/proof/inclusions", index=[3]).json()  # no old: the checkpoint, no consistency proof
    assert key.open(alone["checkpoint"]).size == alone["size"] and alone["consistency"] is None
    assert live.get("/proof/inclusions", index=[3], size=20).json()["consistency"] is None


def test_entries_committed_by_another_process_are_served(live: Live) -> None:
    key = LedgerKey.parse(live.get("/key").text)
    size = key.open(live.get("/checkpoint").text).size
    fill(live.workdir, 3, start=size)
    cp = key.open(live.get("/checkpoint").text)
    assert cp.size == size + 3
    p = live.get("/proof/inclusion", index=size + 2).json()
    verify_inclusion(entry_leaf_hash(entry(size + 2)), size + 2, cp.size, [unb64(h) for h in p["proof"]], cp.root_hash)


def test_verify_url_checks_the_served_ledger(live: Live, tmp_path: Path) -> None:
    (tmp_path / "key.json").write_text(live.get("/key").text)
    (tmp_path / "old").write_text(live.get("/checkpoint").text)
    fill(live.workdir, 2, start=LedgerKey.parse(live.get("/key").text).open(live.get("/checkpoint").text).size)
    p = cli(
        "verify", "--url", live.server.url, "--key", str(tmp_path / "key.json"), "--since", str(tmp_path / "old"),
        "--json", token=live.token,
    )  # fmt: skip
    report = json.loads(p.stdout)
    assert report["ok"] is True and report["key_pinned"] is True
    assert any("serves a correct consistency proof" in c for c in report["checks"])


def test_a_client_detects_rollback_and_fork(live: Live, tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text(live.get("/key").text)
    kept = tmp_path / "kept"
    kept.write_text(live.get("/checkpoint").text)
    checkpoint = LedgerKey.parse(key.read_text()).open(kept.read_text())
    size, origin = checkpoint.size, checkpoint.origin
    # The same exchange key and log over an older copy of the database: an older tree.
    older = tmp_path / "older"
    older.mkdir()
    shutil.copy(live.workdir / "exchange-ledger.key", older / "exchange-ledger.key")
    fill(older, size - 5, origin=origin)
    # ... and over another history, longer than the kept one: a fork.
    forked = tmp_path / "forked"
    forked.mkdir()
    shutil.copy(live.workdir / "exchange-ledger.key", forked / "exchange-ledger.key")
    fill(forked, size + 2, recipient="USA", origin=origin)
    for folder, expected in ((older, "error: rollback: "), (forked, "error: fork: ")):
        other = serve(folder)
        try:
            p = cli(
                "verify", "--url", other.server.url, "--key", str(key), "--since", str(kept), token=other.token, code=8
            )
            assert p.stderr.startswith(expected), p.stderr
        finally:
            other.server.stop()
