"""``gsomia backup`` against a running exchange under load, and a restore from its file."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from gsomia.client.opening import open_delivery
from tests.integration.conftest import start_server
from tests.integration.exchange_support import Exchange, start_exchange, wait_for

pytestmark = pytest.mark.slow


def gsomia(db: str, data_dir: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GSOMIA_DB": db, "GSOMIA_DATA_DIR": str(data_dir)}
    p = subprocess.run(
        [sys.executable, "-m", "gsomia", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert p.returncode == code, p.stdout + p.stderr
    return p


def test_a_backup_taken_under_load_is_one_commit_verified_and_restores(tmp_path: Path) -> None:
    ex = start_exchange(tmp_path / "live")
    answered: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def load(worker: int) -> None:
        with ex.client("JPN") as c:
            n = 0
            while not stop.is_set():
                n += 1
                body = ex.signed("JPN", report_id=f"w{worker}-{n}", recipients=["KOR", "USA"])
                r = c.post("/api/v1/reports", json=body)
                assert r.is_success, r.text
                with lock:
                    answered[body["report"]["id"]] = r.json()

    threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(answered) >= 40, timeout=60, what="40 answered submissions")
        out = tmp_path / "kept" / "gsomia-backup.db"
        out.parent.mkdir()
        made = json.loads(gsomia(ex.db, ex.data_dir, "backup", "--out", str(out), "--json").stdout)
        during = len(answered)
        wait_for(lambda: len(answered) >= during + 20, timeout=60, what="submissions after the backup")
    finally:
        stop.set()
        for t in threads:
            t.join(30)

    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert made["file"] == str(out) and made["bytes"] == out.stat().st_size
    assert made["ledger"]["verified"] is True
    assert made["not_included"] == [str(ex.data_dir / "exchange.kek"), str(ex.data_dir / "exchange-ledger.key")]
    size = made["ledger"]["size"]
    # the copy is a prefix of the log the exchange serves
    proof = ex.call("auditor", "GET", "/api/v1/ledger/proof/consistency", params={"old": size}).json()
    assert proof["old_root"] == made["ledger"]["root"] and proof["new"] > size
    ex.stop()

    # Restore as the README says: the KEK and ledger key of the same set, then gsomia restore.
    home = tmp_path / "restored"
    home.mkdir()
    for secret in ("exchange.kek", "exchange-ledger.key"):
        shutil.copy2(ex.data_dir / secret, home / secret)
    db = f"sqlite:///{home / 'gsomia.db'}"
    put = json.loads(gsomia(db, home, "restore", "--from", str(out), "--json").stdout)
    assert put == {
        "backup": str(out),
        "database": str(home / "gsomia.db"),
        "replaced": False,
        "ledger": {"size": size, "root": made["ledger"]["root"], "verified": True},
    }
    kept = tmp_path / "kept" / "checkpoint.txt"
    kept.write_text(made["ledger"]["checkpoint"], encoding="utf-8")
    server = start_server(db, home)
    restored = Exchange(server, db, home, ex.client_dir, ex.tokens, ex.keys)
    try:
        # one commit: exactly the reports whose submission entry is inside the copy's ledger
        with restored.client("JPN") as jpn:
            for report_id, result in answered.items():
                stored = jpn.get(f"/api/v1/reports/{report_id}")
                if result["leaf_index"] < size:
                    assert stored.status_code == 200 and stored.json() == result, report_id
                else:
                    assert stored.status_code == 404, report_id
        # payloads open with the restored KEK, and the exchange goes on
        inside = next(r for r in answered.values() if r["leaf_index"] < size)
        delivery = next(r for r in inside["recipients"] if r["recipient"] == "KOR")["deliveries"][0]["id"]
        view = restored.call("KOR", "GET", f"/api/v1/deliveries/{delivery}").json()
        assert open_delivery(view, ex.keys["KOR"]).startswith(b'{"track"')
        assert restored.submit("JPN", report_id="after-restore", recipients=["KOR"]).status_code == 201
        # never under a running server: it would go on writing into the replaced file
        busy = gsomia(db, home, "restore", "--from", str(out), "--force", code=4)
        assert "a process is using the database" in busy.stderr
    finally:
        restored.stop()
    gsomia(db, home, "ledger", "verify", "--since", str(kept))


def test_backup_refuses_to_overwrite_and_names_postgresql_tools(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'g.db'}"
    gsomia(db, tmp_path, "scenario", "load", "japan-korea-2019")
    out = tmp_path / "b.db"
    first = gsomia(db, tmp_path, "backup", "--out", str(out))
    assert "ledger of 0 entries" in first.stdout and "exchange.kek" in first.stderr
    again = gsomia(db, tmp_path, "backup", "--out", str(out), code=6)
    assert again.stderr == f"error: {out} exists: give --force to replace it\n"
    gsomia(db, tmp_path, "backup", "--out", str(out), "--force")
    missing = gsomia(f"sqlite:///{tmp_path / 'absent.db'}", tmp_path, "backup", "--out", str(tmp_path / "c.db"), code=4)
    assert "no database" in missing.stderr and not (tmp_path / "absent.db").exists()
    pg = gsomia("postgresql://gsomia@127.0.0.1:9/gsomia", tmp_path, "backup", "--out", str(tmp_path / "p"), code=4)
    assert "pg_dump -Fc" in pg.stderr and "pg_basebackup" in pg.stderr


def test_help_says_why_copying_the_file_is_not_a_backup() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "gsomia", "backup", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    text = " ".join(p.stdout.split())
    assert "gsomia.db alone can be a 4 KB file that holds none of the data" in text
    assert "does NOT hold the exchange's key-encryption key" in text


def test_backup_reads_the_file_sqlite_opens_for_a_uri_or_a_plain_name_starting_with_file(tmp_path: Path) -> None:
    # a URI filename (uri=true) is the URI's path; without uri=true "file:g.db" is that very file
    home = tmp_path / "uri"
    home.mkdir()
    gsomia(f"sqlite:///file:{home / 'g.db'}?mode=rwc&uri=true", home, "scenario", "load", "japan-korea-2019")
    assert (home / "g.db").is_file()
    made = gsomia(f"sqlite:///file:{home / 'g.db'}?mode=rw&uri=true", home, "backup", "--out", str(tmp_path / "u.db"))
    assert (tmp_path / "u.db").is_file() and "verified" in made.stdout
    plain = tmp_path / "plain"
    (plain / "file:g.db").parent.mkdir()
    env = {**os.environ, "GSOMIA_DB": "sqlite:///file:g.db", "GSOMIA_DATA_DIR": str(plain)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gsomia", *args], cwd=plain, env=env, capture_output=True, text=True, check=False
        )

    loaded = run("scenario", "load", "japan-korea-2019")
    assert loaded.returncode == 0, loaded.stderr
    assert (plain / "file:g.db").is_file()
    copied = run("backup", "--out", str(tmp_path / "p.db"))
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "p.db").is_file() and "verified" in copied.stdout


def test_backup_refuses_to_be_written_over_the_database_or_its_wal_even_with_force(tmp_path: Path) -> None:
    live = tmp_path / "g.db"
    db = f"sqlite:///{live}"
    gsomia(db, tmp_path, "scenario", "load", "japan-korea-2019")
    before = live.stat().st_ino
    for name in ("g.db", "g.db-wal", "g.db-shm", "g.db-journal"):
        refused = gsomia(db, tmp_path, "backup", "--out", str(tmp_path / name), "--force", code=4)
        assert f"is the database being backed up ({live}" in refused.stderr, refused.stderr
    # also through another name for the same file
    (tmp_path / "alias.db").hardlink_to(live)
    refused = gsomia(db, tmp_path, "backup", "--out", str(tmp_path / "alias.db"), "--force", code=4)
    assert "is the database being backed up" in refused.stderr
    assert live.stat().st_ino == before
    assert not (tmp_path / "g.db-journal").exists()
    assert sorted(p.name for p in tmp_path.glob(".gsomia-backup-*")) == []
