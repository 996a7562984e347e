"""``gsomia ledger`` as a subprocess: checkpoint, key, export, proof and verify.

The ledger is filled the way the exchange fills it (``LedgerService.append`` in
``Store.writing()``), in this process, with the key file the CLI finds in its data directory.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from gsomia.crypto.ledger_key import LedgerKey
from gsomia.ledger.audit import verify_ledger
from gsomia.ledger.entries import entry_bytes, entry_leaf_hash
from gsomia.services.ledger.service import LedgerService, open_export
from gsomia.storage.ledger import LedgerEntryRow
from gsomia.storage.store import Store
from tests.integration.conftest import run_cli as run

NO_DATABASE = "postgresql://nobody@127.0.0.1:1/none"  # any use of the database fails


def clock() -> datetime:
    return datetime(2019, 11, 22, 1, 0, tzinfo=UTC)


def entry(n: int) -> dict[str, Any]:
    return {"type": "delivery", "report": f"r-{n}", "recipient": "KOR", "marking": "군사II급비밀", "n": n}


def fill(workdir: Path, n: int, start: int = 0, make: Any = entry, origin: str | None = None) -> None:
    store = Store(f"sqlite:///{workdir / 'g.db'}")
    ledger = LedgerService(store, key_file=workdir / "exchange-ledger.key", clock=clock, origin=origin)
    assert ledger.origin  # named at the first start, as a server does
    with store.writing() as s:
        for i in range(start, start + n):
            ledger.append(s, make(i))
    store.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    d = tmp_path / "exchange"
    d.mkdir()
    fill(d, 12)
    return d


def flip_b64(text: str, position: int = 0) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[position] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_checkpoint_key_and_verify_of_the_local_store(workdir: Path) -> None:
    note = run(workdir, "ledger", "checkpoint").stdout
    origin = note.split("\n", 1)[0]
    assert re.fullmatch(r"gsomia/[0-9a-f]{16}", origin) and note.startswith(f"{origin}\n12\n")
    assert f"\n\n— {origin} " in note
    cp = json.loads(run(workdir, "ledger", "checkpoint", "--json").stdout)
    assert (cp["size"], cp["note"]) == (12, note)
    key = json.loads(run(workdir, "ledger", "key", "--json").stdout)
    assert run(workdir, "ledger", "key").stdout.strip() == key["vkey"]
    text = run(workdir, "ledger", "verify").stdout
    assert text.startswith(f"ledger verified (the store): {origin} size 12 root ")
    report = json.loads(run(workdir, "ledger", "verify", "--json").stdout)
    assert report["ok"] is True and report["entries"] == 12 and report["problem"] is None
    assert report["key"]["public_key"] == key["public_key"] and report["key_pinned"] is True


def test_an_export_verifies_offline_without_a_database(workdir: Path, tmp_path: Path) -> None:
    run(workdir, "ledger", "key", "--out", str(tmp_path / "key.json"))
    run(workdir, "ledger", "checkpoint", "--out", str(tmp_path / "cp12"))
    run(workdir, "ledger", "export", "--out", str(tmp_path / "x.jsonl"))
    fill(workdir, 5, start=12)
    run(workdir, "ledger", "export", "--out", str(tmp_path / "y.jsonl"))
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    for name in ("key.json", "cp12", "y.jsonl"):
        shutil.copy(tmp_path / name, elsewhere / name)
    p = run(
        elsewhere,
        "ledger",
        "verify",
        "--export",
        str(elsewhere / "y.jsonl"),
        "--key",
        str(elsewhere / "key.json"),
        "--since",
        str(elsewhere / "cp12"),
        "--json",
        db=NO_DATABASE,
    )
    report = json.loads(p.stdout)
    assert report["ok"] is True and report["entries"] == 17 and report["since"]["size"] == 12
    assert not (elsewhere / "exchange-ledger.key").exists()  # verifying never creates a key
    # Without --key the export's own key is used, and the output says it is not pinned.
    p = run(elsewhere, "ledger", "verify", "--export", str(elsewhere / "y.jsonl"), db=NO_DATABASE)
    assert "not pinned" in p.stdout and "pass --key" in p.stderr


def test_every_byte_of_an_exported_entry_is_covered(workdir: Path, tmp_path: Path) -> None:
    run(workdir, "ledger", "export", "--out", str(tmp_path / "x.jsonl"))
    lines = (tmp_path / "x.jsonl").read_bytes().splitlines(keepends=True)
    key = LedgerKey.parse(json.dumps(json.loads(lines[0])["key"]))

    def verdict(data: bytes) -> Any:
        path = tmp_path / "t.jsonl"
        path.write_bytes(data)
        reader = open_export(path)
        try:
            return verify_ledger(
                reader.batches(), key=key, checkpoint=reader.header.checkpoint, source="export"
            ).problem
        finally:
            reader.close()

    assert verdict(b"".join(lines)) is None
    for index in (0, 7, 11):
        line = lines[1 + index]
        for position in range(len(line)):
            bad = bytearray(line)
            bad[position] ^= 0x01
            problem = verdict(b"".join([*lines[: 1 + index], bytes(bad), *lines[2 + index :]]))
            assert problem is not None, f"entry {index}, byte {position} flipped unnoticed"
            assert problem.index == index, (position, problem)


def test_tampering_makes_verify_fail_and_name_it(workdir: Path, tmp_path: Path) -> None:
    run(workdir, "ledger", "export", "--out", str(tmp_path / "x.jsonl"))
    key = str(tmp_path / "key.json")
    run(workdir, "ledger", "key", "--out", key)
    lines = (tmp_path / "x.jsonl").read_text().splitlines(keepends=True)

    def verify_edited(number: int, edit: Any) -> subprocess.CompletedProcess[str]:
        doc = json.loads(lines[number])
        edit(doc)
        edited = [
            *lines[:number],
            json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n",
            *lines[number + 1 :],
        ]
        (tmp_path / "bad.jsonl").write_text("".join(edited))
        return run(
            workdir, "ledger", "verify", "--export", str(tmp_path / "bad.jsonl"), "--key", key, db=NO_DATABASE, code=8
        )

    p = verify_edited(1 + 4, lambda d: d.update(body=flip_b64(d["body"], 10)))
    assert p.stderr.startswith("error: entry 4: its bytes do not hash to its recorded leaf hash")
    p = verify_edited(1 + 9, lambda d: d.update(leaf_hash=flip_b64(d["leaf_hash"], 31)))
    assert p.stderr.startswith("error: entry 9: ")
    p = verify_edited(0, lambda d: d.update(checkpoint=d["checkpoint"].replace("\n12\n", "\n11\n")))
    assert "the header says 12 entries" in p.stderr and "its checkpoint 11" in p.stderr, p.stderr
    p = verify_edited(0, lambda d: d.update(size=11, checkpoint=d["checkpoint"].replace("\n12\n", "\n11\n")))
    assert p.stderr.startswith("error: the checkpoint does not verify with key gsomia/")
    p = verify_edited(0, lambda d: d.update(size=1e400))  # a traceback (OverflowError), before
    assert p.stderr.startswith("error: ") and "malformed export header" in p.stderr, p.stderr
    # An entry no signature covers, appended with its own leaf hash: "ok" before
    extra = json.loads(lines[-1]) | {"index": 12}
    (tmp_path / "bad.jsonl").write_text("".join(lines) + json.dumps(extra) + "\n")
    p = run(workdir, "ledger", "verify", "--export", str(tmp_path / "bad.jsonl"), "--key", key, db=NO_DATABASE, code=8)
    assert "an entry past the 12 the header and its checkpoint count" in p.stderr, p.stderr
    # An entry and its leaf hash altered together: the signed root exposes it.
    forged = {**entry(3), "recipient": "USA"}
    body, leaf = entry_bytes(forged), entry_leaf_hash(forged)
    p = verify_edited(
        1 + 3, lambda d: d.update(body=base64.b64encode(body).decode(), leaf_hash=base64.b64encode(leaf).decode())
    )
    assert p.stderr.startswith("error: checkpoint (size 12): its root hash is not the root of entries 0..11")
    # The same in the database.
    store = Store(f"sqlite:///{workdir / 'g.db'}")
    with store.reading() as s:
        stored = bytes(s.execute(select(LedgerEntryRow.body).where(LedgerEntryRow.idx == 6)).scalar_one())
    with store.writing() as s:
        s.execute(update(LedgerEntryRow).where(LedgerEntryRow.idx == 6).values(body=stored.replace(b"r-6", b"r-7")))
    store.close()
    p = run(workdir, "ledger", "verify", code=8)
    assert (
        p.stderr
        == "error: entry 6: its bytes do not hash to its recorded leaf hash in the store (the entry or its leaf hash was altered)\n"
    )
    report = json.loads(run(workdir, "ledger", "verify", "--json", code=8).stdout)
    assert report["ok"] is False and report["problem"]["kind"] == "entry" and report["problem"]["index"] == 6


def test_a_kept_checkpoint_detects_rollback_and_fork(workdir: Path, tmp_path: Path) -> None:
    key = str(tmp_path / "key.json")
    run(workdir, "ledger", "key", "--out", key)
    run(workdir, "ledger", "export", "--out", str(tmp_path / "old.jsonl"))
    fill(workdir, 4, start=12)
    run(workdir, "ledger", "checkpoint", "--out", str(tmp_path / "cp16"))
    # Rollback: the exchange (or a mirror) presents its older state to a client that kept size 16.
    p = run(
        workdir, "ledger", "verify", "--export", str(tmp_path / "old.jsonl"), "--key", key,
        "--since", str(tmp_path / "cp16"), code=8, db=NO_DATABASE,
    )  # fmt: skip
    assert p.stderr.startswith("error: rollback: the ledger presented has 12 entries but your kept checkpoint has 16")
    # Fork: another history signed with the same key.
    fork = tmp_path / "fork"
    fork.mkdir()
    shutil.copy(workdir / "exchange-ledger.key", fork / "exchange-ledger.key")
    origin = json.loads(Path(key).read_text())["name"]  # the same log's name, as a copy would have
    fill(fork, 20, make=lambda i: {**entry(i), "recipient": "USA"} if i == 2 else entry(i), origin=origin)
    run(fork, "ledger", "export", "--out", str(tmp_path / "fork.jsonl"))
    p = run(
        workdir, "ledger", "verify", "--export", str(tmp_path / "fork.jsonl"), "--key", key,
        "--since", str(tmp_path / "cp16"), code=8, db=NO_DATABASE,
    )  # fmt: skip
    assert p.stderr.startswith("error: fork: your kept checkpoint (size 16) is not the root of entries 0..15")
    report = json.loads(run(workdir, "ledger", "verify", "--since", str(tmp_path / "cp16"), "--json").stdout)
    assert report["ok"] is True and report["since"]["size"] == 16


def test_proofs_verify_offline_and_tampered_ones_are_named(workdir: Path, tmp_path: Path) -> None:
    key = str(tmp_path / "key.json")
    run(workdir, "ledger", "key", "--out", key)
    proof = json.loads(run(workdir, "ledger", "proof", "--index", "5").stdout)
    assert proof["index"] == 5 and proof["size"] == 12 and proof["entry"] == entry(5) and "checkpoint" in proof
    (tmp_path / "p.json").write_text(json.dumps(proof))
    run(workdir, "ledger", "verify", "--proof", str(tmp_path / "p.json"), "--key", key, db=NO_DATABASE)
    bad = dict(proof, proof=[proof["proof"][0], flip_b64(proof["proof"][1], 5), *proof["proof"][2:]])
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    p = run(workdir, "ledger", "verify", "--proof", str(tmp_path / "bad.json"), "--key", key, db=NO_DATABASE, code=8)
    assert p.stderr.startswith("error: inclusion proof for entry 5 does not verify against the signed root at size 12")
    # A malformed checkpoint is named as one (with a JSON key, no log origin is needed to read it)
    (tmp_path / "badnote.json").write_text(json.dumps(dict(proof, checkpoint=proof["checkpoint"][:-1])))
    p = run(
        workdir, "ledger", "verify", "--proof", str(tmp_path / "badnote.json"), "--key", key, db=NO_DATABASE, code=8
    )
    assert "signed note does not end in a newline" in p.stderr, p.stderr
    # Against the whole ledger, the wrong element is named.
    run(workdir, "ledger", "export", "--out", str(tmp_path / "x.jsonl"))
    p = run(
        workdir, "ledger", "verify", "--export", str(tmp_path / "x.jsonl"), "--key", key,
        "--proof", str(tmp_path / "bad.json"), db=NO_DATABASE, code=8,
    )  # fmt: skip
    assert p.stderr.startswith("error: inclusion proof for entry 5: element 1 (of 4) is wrong")
    # Consistency: from a checkpoint the auditor kept to the current one.
    run(workdir, "ledger", "checkpoint", "--out", str(tmp_path / "cp12"))
    fill(workdir, 9, start=12)
    run(workdir, "ledger", "proof", "--old", "12", "--out", str(tmp_path / "c.json"))
    run(
        workdir, "ledger", "verify", "--proof", str(tmp_path / "c.json"), "--since", str(tmp_path / "cp12"),
        "--key", key, db=NO_DATABASE,
    )  # fmt: skip
    doc = json.loads((tmp_path / "c.json").read_text())
    doc["proof"][0] = flip_b64(doc["proof"][0], 0)
    (tmp_path / "c.json").write_text(json.dumps(doc))
    p = run(
        workdir, "ledger", "verify", "--proof", str(tmp_path / "c.json"), "--since", str(tmp_path / "cp12"),
        "--key", key, db=NO_DATABASE, code=8,
    )  # fmt: skip
    assert p.stderr.startswith("error: consistency proof 12 -> 21 does not verify against the signed roots")


def test_usage_errors_say_what_to_fix(workdir: Path, tmp_path: Path) -> None:
    p = run(workdir, "ledger", "verify", "--export", "a", "--url", "http://x", code=4)
    assert p.stderr == "error: give at most one of --export FILE and --url URL\n"
    proof = tmp_path / "p.json"
    proof.write_text(run(workdir, "ledger", "proof", "--index", "0").stdout)
    p = run(workdir, "ledger", "verify", "--proof", str(proof), code=4, db=NO_DATABASE)
    assert "pass --key FILE or --key-b64 KEY" in p.stderr
    p = run(workdir, "ledger", "proof", "--index", "99", code=5)
    assert p.stderr.startswith("error: ledger entry 99 is not in the tree of size 12")
    p = run(workdir, "ledger", "verify", "--export", str(tmp_path / "missing.jsonl"), code=4, db=NO_DATABASE)
    assert p.stderr.startswith("error: cannot read export")
    # A bare base64 key is named by the checkpoint's origin.
    key = json.loads(run(workdir, "ledger", "key", "--json").stdout)["public_key"]
    run(workdir, "ledger", "verify", "--proof", str(proof), "--key-b64", key, db=NO_DATABASE)
