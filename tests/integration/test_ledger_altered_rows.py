"""Ledger rows altered by hand in SQL, of a kind no append writes: a body that SQLite's
``replace()`` turned from a BLOB into TEXT, a leaf hash of the wrong length. Each is reported
as an altered entry, by index (the API answers 409, the CLI exits 8 with one line), never
coerced and never a crash.

SQLite only: a PostgreSQL ``bytea`` column cannot hold text, and SQLite's ``replace()`` on a
BLOB is the everyday way an operator's edit changes a value's storage class.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gsomia.bootstrap import Settings, build
from gsomia.errors import LedgerInvalid
from gsomia.ledger.audit import EntryProblem
from gsomia.services.exchange.access import Role
from gsomia.services.ledger.service import LedgerService
from gsomia.storage.ledger import LedgerTable
from gsomia.storage.store import Store
from tests.integration.conftest import run_cli as cli
from tests.integration.conftest import start_server

LEDGER = "/api/v1/ledger"


def clock() -> datetime:
    return datetime(2019, 11, 22, 1, 0, tzinfo=UTC)


def entry(n: int) -> dict[str, Any]:
    return {"type": "delivery", "report": f"r-{n}", "originator": "JPN", "recipient": "KOR", "n": n}


def fill(workdir: Path, n: int) -> None:
    store = Store(f"sqlite:///{workdir / 'g.db'}")
    ledger = LedgerService(store, key_file=workdir / "exchange-ledger.key", clock=clock)
    assert ledger.origin  # named at the first start, as a server does
    with store.writing() as s:
        for i in range(n):
            ledger.append(s, entry(i))
    store.close()


def sql(workdir: Path, statement: str) -> None:
    """What an operator types into ``sqlite3 g.db``."""
    db = sqlite3.connect(workdir / "g.db")
    try:
        db.execute(statement)
        db.commit()
    finally:
        db.close()


def storage_class(workdir: Path, column: str, index: int) -> str:
    db = sqlite3.connect(workdir / "g.db")
    try:
        found = db.execute(f"SELECT typeof({column}) FROM ledger_entries WHERE idx = ?", (index,)).fetchone()  # noqa: S608 - a fixed column name
    finally:
        db.close()
    return str(found[0])


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    d = tmp_path / "exchange"
    d.mkdir()
    fill(d, 8)
    return d


@pytest.fixture
def table(workdir: Path) -> Iterator[LedgerTable]:
    store = Store(f"sqlite:///{workdir / 'g.db'}")
    yield LedgerTable(store)
    store.close()


TEXT_BODY = "UPDATE ledger_entries SET body = replace(body, 'JPN', 'JPX') WHERE idx = 5"


def test_a_body_turned_into_text_is_an_altered_entry_wherever_it_is_read(workdir: Path, table: LedgerTable) -> None:
    sql(workdir, TEXT_BODY)
    assert storage_class(workdir, "body", 5) == "text"  # the edit that turns a BLOB into TEXT
    reads: dict[str, Callable[[], object]] = {
        "get": lambda: table.get(5),
        "range": lambda: table.range(0, 100),
        "some": lambda: table.some([4, 5]),
        "scan": lambda: list(table.scan()),
    }
    for name, read in reads.items():
        with pytest.raises(EntryProblem, match=r"^ledger entry 5: .*the store was altered") as caught:
            read()
        assert caught.value.index == 5, name
    assert table.get(4) is not None and [e.index for e in table.range(0, 5)] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "value", ["x'00'", "'not a hash'", "42", "zeroblob(33)"], ids=["1 byte", "text", "integer", "33 bytes"]
)
def test_a_leaf_hash_that_is_not_32_bytes_is_an_altered_entry(workdir: Path, table: LedgerTable, value: str) -> None:
    sql(workdir, f"UPDATE ledger_entries SET leaf_hash = {value} WHERE idx = 2")  # noqa: S608 - fixed values
    reads: dict[str, Callable[[], object]] = {
        "leaf_hashes": table.leaf_hashes,
        "get": lambda: table.get(2),
        "range": lambda: table.range(0, 100),
        "some": lambda: table.some([2]),
        "scan": lambda: list(table.scan()),
    }
    for name, read in reads.items():
        with pytest.raises(EntryProblem, match=r"^ledger entry 2: .*leaf hash.*the store was altered") as caught:
            read()
        assert caught.value.index == 2, name


def test_the_service_reports_an_altered_row_as_a_verification_finding(workdir: Path) -> None:
    sql(workdir, "UPDATE ledger_entries SET leaf_hash = x'00' WHERE idx = 2")
    store = Store(f"sqlite:///{workdir / 'g.db'}")
    try:
        ledger = LedgerService(store, key_file=workdir / "exchange-ledger.key", clock=clock)
        with pytest.raises(LedgerInvalid, match="ledger entry 2: "):
            ledger.open()
        problem = ledger.verify().problem
        assert problem is not None and (problem.kind, problem.index) == ("entry", 2), problem
    finally:
        store.close()


def test_the_api_answers_409_for_a_text_body_as_for_any_altered_body(workdir: Path) -> None:
    app = build(Settings(db=f"sqlite:///{workdir / 'g.db'}", data_dir=workdir))
    try:
        token = app.exchange.identity.add_principal(role=Role.AUDITOR, name="inspector").token
    finally:
        app.close()
    # an entry altered with its bytes kept as bytes: what the API has always answered
    sql(workdir, "UPDATE ledger_entries SET body = CAST(replace(body, 'JPN', 'JPX') AS BLOB) WHERE idx = 4")
    assert storage_class(workdir, "body", 4) == "blob"
    sql(workdir, TEXT_BODY)
    server = start_server(f"sqlite:///{workdir / 'g.db'}", workdir)
    try:

        def get(path: str, **params: Any) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"}
            return httpx.get(server.url + LEDGER + path, params=params, headers=headers, timeout=30)

        same_type = get("/entries/4")
        assert same_type.status_code == 409, same_type.text
        for path, params in [("/entries/5", {}), ("/entries", {"start": 0}), ("/proof/inclusions", {"index": 5})]:
            r = get(path, **params)
            assert r.status_code == 409, (path, r.status_code, r.text)
            problem = r.json()
            assert problem["type"] == same_type.json()["type"], problem
            assert "ledger entry 5" in problem["detail"] and "altered" in problem["detail"], problem
        assert get("/entries/3").status_code == 200  # the other entries are still served
    finally:
        server.stop()


def test_the_cli_names_the_altered_entry_in_one_line_and_exits_8(workdir: Path, tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    cli(workdir, "ledger", "key", "--out", str(key), code=0)
    sql(workdir, TEXT_BODY)
    for args in (["ledger", "export", "--out", str(tmp_path / "e.jsonl")], ["ledger", "verify", "--key", str(key)]):
        p = cli(workdir, *args, code=8)
        assert "Traceback" not in p.stderr, p.stderr
        lines = p.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
        assert "entry 5" in lines[0] and "the store was altered" in lines[0], p.stderr
    report = json.loads(cli(workdir, "ledger", "verify", "--key", str(key), "--json", code=8).stdout)
    assert report["ok"] is False and (report["problem"]["kind"], report["problem"]["index"]) == ("entry", 5)
    sql(workdir, "UPDATE ledger_entries SET body = CAST(body AS BLOB) WHERE idx = 5")
    sql(workdir, "UPDATE ledger_entries SET leaf_hash = x'00' WHERE idx = 2")
    p = cli(workdir, "ledger", "verify", "--key", str(key), code=8)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and "entry 2" in lines[0] and "the store was altered" in lines[0], p.stderr


def test_an_export_of_untouched_rows_still_round_trips(workdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "e.jsonl"
    cli(workdir, "ledger", "export", "--out", str(out), code=0)
    rows = [json.loads(line) for line in out.read_text().splitlines()[1:]]
    assert [r["index"] for r in rows] == list(range(8))
    assert json.loads(base64.b64decode(rows[5]["body"]))["originator"] == "JPN"


def test_a_failed_export_leaves_no_partial_file(workdir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    sql(workdir, TEXT_BODY)
    cli(workdir, "ledger", "export", "--out", str(folder / "e.jsonl"), code=8)
    assert sorted(p.name for p in folder.iterdir()) == []
