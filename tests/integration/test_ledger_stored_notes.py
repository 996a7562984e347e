"""What the store keeps on its own authority besides the entries: the latest signed checkpoint
(``ledger_meta``) and the witnesses' cosignatures (``ledger_cosignatures``). The exchange
serves both, so ``gsomia ledger verify`` checks every one: signed by the ledger key (a
cosignature also by a key its witness registered in the ledger), over the re-derived tree's
root at its size. A row altered or forged by hand in SQL is reported as the store altered
(exit 8, one line, a ``problem`` in --json), and verifying writes nothing.

SQLite only: the rows are altered as an operator would, with ``sqlite3 g.db``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gsomia.crypto.ledger_key import Cosigner, load_or_create_ledger_key
from gsomia.crypto.signing import ExchangeSigner
from gsomia.errors import UnknownEntity
from gsomia.ledger.audit import VerifyReport
from gsomia.ledger.checkpoint import Checkpoint, parse_note, parse_signed_note, sign_note
from gsomia.services.ledger.service import LedgerService
from gsomia.storage.store import Store
from tests.integration.conftest import run_cli as cli

WITNESS = "kor.example/witness"
SIZE = 6  # the size the witness cosigned
NOW = 1_574_384_400  # 2019-11-22T01:00Z


def clock() -> datetime:
    return datetime(2019, 11, 22, 1, 0, tzinfo=UTC)


def registration(witness: Cosigner) -> dict[str, Any]:
    """The public ledger entry that registers a witness key (docs/protocol.md §5.9)."""
    return {
        "type": "key",
        "action": "witness_registered",
        "at": "2019-11-22T01:00+00:00",
        "party": "KOR",
        "witness": witness.name,
        "vkey": witness.public.vkey(),
        "replaced": None,
        "by": "p-0123456789abcdef",
    }


def delivery(n: int) -> dict[str, Any]:
    return {"type": "delivery", "report": f"r-{n}", "originator": "JPN", "recipient": "KOR", "n": n}


class Exchange:
    """A ledger in ``workdir/g.db`` whose witness cosigned the checkpoints of sizes 4 and 6
    (its key replaced in between) and whose latest checkpoint (size 8) was served."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.old_witness = Cosigner(WITNESS, ExchangeSigner.generate())
        self.witness = Cosigner(WITNESS, ExchangeSigner.generate())
        with self.service() as ledger:
            self._append(ledger, [registration(self.old_witness), delivery(1), delivery(2), delivery(3)])
            self._cosign(ledger, self.old_witness, 4)
            self._append(ledger, [registration(self.witness), delivery(5)])
            self._cosign(ledger, self.witness, SIZE)
            self._append(ledger, [delivery(6), delivery(7)])
            ledger.checkpoint()  # kept in ledger_meta, as a server keeps what it serves

    def service(self) -> AbstractContextManager[_Ledger]:
        return opened(self.workdir)

    @staticmethod
    def _append(ledger: _Ledger, entries: list[dict[str, Any]]) -> None:
        with ledger.store.writing() as s:
            for e in entries:
                ledger.append(s, e)

    @staticmethod
    def _cosign(ledger: _Ledger, witness: Cosigner, size: int) -> None:
        note = ledger.checkpoint_at(size)
        line = witness.cosign(parse_signed_note(note)[0], NOW)
        with ledger.store.writing() as s:
            ledger.add_cosignature(
                s,
                size=size,
                witness=witness.name,
                timestamp=NOW,
                line=line,
                note=note,
                at=clock(),
                same_party=lambda _kept: True,
            )

    def verify(self) -> VerifyReport:
        with self.service() as ledger:
            return ledger.verify()

    def sql(self, statement: str, *params: object) -> None:
        db = sqlite3.connect(self.workdir / "g.db")
        try:
            db.execute(statement, params)
            db.commit()
        finally:
            db.close()

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(self.workdir / "g.db")
        try:
            return db.execute(query).fetchall()
        finally:
            db.close()

    def signed(self, size: int, root: bytes) -> str:
        """A note the ledger key signs: what only the key's holder can make."""
        signer = load_or_create_ledger_key(self.workdir / "exchange-ledger.key", created=clock())
        with self.service() as ledger:
            key = ledger.key()
        return sign_note(Checkpoint(origin=key.name, size=size, root_hash=root), key.name, key.key_id, signer.sign)


class _Ledger(LedgerService):
    """The service with the store it was opened on."""

    store: Store


@contextmanager
def opened(workdir: Path) -> Iterator[_Ledger]:
    store = Store(f"sqlite:///{workdir / 'g.db'}")
    try:
        ledger = _Ledger(store, key_file=workdir / "exchange-ledger.key", clock=clock)
        ledger.store = store
        yield ledger
    finally:
        store.close()


@pytest.fixture
def exchange(tmp_path: Path) -> Exchange:
    d = tmp_path / "exchange"
    d.mkdir()
    return Exchange(d)


def problem(report: VerifyReport) -> tuple[str, str]:
    assert report.problem is not None, report.checks
    return report.problem.kind, report.problem.message


def test_untouched_checkpoints_and_cosignatures_verify_even_those_of_a_replaced_witness_key(
    exchange: Exchange,
) -> None:
    report = exchange.verify()
    assert report.ok, report.problem
    assert "the checkpoint the store keeps is signed and has the tree's root" in report.checks
    assert "2 witness cosignature(s) the store keeps verify over the tree's roots" in report.checks


@pytest.mark.parametrize(
    "value", ["garbage", '{"size": "x", "note": 5}', '{"size": 8}'], ids=["not json", "wrong types", "no note"]
)
def test_an_unreadable_stored_checkpoint_is_reported_and_left_as_found(exchange: Exchange, value: str) -> None:
    exchange.sql("UPDATE ledger_meta SET value = ? WHERE name = 'checkpoint'", value)
    kind, message = problem(exchange.verify())
    assert kind == "stored-checkpoint"
    assert message == "the stored checkpoint is unreadable: the store was altered"
    # verifying writes nothing: the evidence is still there for the next look
    assert exchange.rows("SELECT value FROM ledger_meta WHERE name = 'checkpoint'") == [(value,)]


def test_a_stored_checkpoint_signed_over_another_tree_does_not_match_it(exchange: Exchange) -> None:
    note = exchange.signed(5, bytes(32))  # validly signed, but not this log's root at 5
    exchange.sql("UPDATE ledger_meta SET value = ? WHERE name = 'checkpoint'", json.dumps({"size": 5, "note": note}))
    assert problem(exchange.verify()) == (
        "stored-checkpoint",
        "the stored checkpoint of size 5 does not match the tree: the store was altered",
    )


def test_a_stored_checkpoint_whose_signature_was_altered_does_not_verify(exchange: Exchange) -> None:
    [(value,)] = exchange.rows("SELECT value FROM ledger_meta WHERE name = 'checkpoint'")
    kept = json.loads(value)
    size = parse_note(kept["note"])[0].size
    forged = kept["note"].replace(f"\n{size}\n", "\n4\n")  # the size line of a smaller tree, same signature
    exchange.sql("UPDATE ledger_meta SET value = ? WHERE name = 'checkpoint'", json.dumps({"size": 4, "note": forged}))
    kind, message = problem(exchange.verify())
    assert kind == "stored-checkpoint"
    assert message.startswith("the stored checkpoint of size 4 does not verify with key "), message
    assert message.endswith(": the store was altered"), message


def test_a_cosignature_by_a_key_never_registered_does_not_verify(exchange: Exchange) -> None:
    intruder = Cosigner(WITNESS, ExchangeSigner.generate())  # the witness's name, another key
    [(note,)] = exchange.rows(f"SELECT note FROM ledger_cosignatures WHERE size = {SIZE}")  # noqa: S608 - a constant
    line = intruder.cosign(parse_signed_note(note)[0], NOW)
    exchange.sql("UPDATE ledger_cosignatures SET line = ? WHERE size = ?", line, SIZE)
    assert problem(exchange.verify()) == (
        "stored-cosignature",
        f"cosignature of witness {WITNESS} at size {SIZE} does not verify with a key registered for it in the "
        "ledger: the store was altered",
    )


def test_a_cosignature_of_a_witness_nobody_registered_does_not_verify(exchange: Exchange) -> None:
    stranger = Cosigner("usa.example/witness", ExchangeSigner.generate())
    [(note,)] = exchange.rows(f"SELECT note FROM ledger_cosignatures WHERE size = {SIZE}")  # noqa: S608 - a constant
    line = stranger.cosign(parse_signed_note(note)[0], NOW)
    exchange.sql(
        "INSERT INTO ledger_cosignatures (size, witness, timestamp, line, note, recorded_at) "
        "SELECT size, ?, timestamp, ?, note, recorded_at FROM ledger_cosignatures WHERE size = ?",
        stranger.name,
        line,
        SIZE,
    )
    kind, message = problem(exchange.verify())
    assert kind == "stored-cosignature"
    assert "cosignature of witness usa.example/witness at size 6 does not verify" in message
    assert "no such witness is registered in the ledger" in message


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (
            "UPDATE ledger_cosignatures SET line = replace(line, 'A', 'B') WHERE size = 4",
            f"cosignature of witness {WITNESS} at size 4 ",
        ),
        (
            "UPDATE ledger_cosignatures SET timestamp = timestamp + 1 WHERE size = 4",
            f"cosignature of witness {WITNESS} at size 4 is not a line of that witness at that time",
        ),
        (
            "UPDATE ledger_cosignatures SET size = 5 WHERE size = 4",
            f"the checkpoint witness {WITNESS} cosigned at size 5 does not match the tree",
        ),
        (
            "UPDATE ledger_cosignatures SET note = replace(note, char(10) || '4' || char(10), "
            "char(10) || '3' || char(10)) WHERE size = 4",
            f"the checkpoint witness {WITNESS} cosigned at size 4 does not verify with key ",
        ),
    ],
    ids=["line", "timestamp", "size", "note"],
)
def test_an_altered_cosignature_row_is_named(exchange: Exchange, statement: str, expected: str) -> None:
    exchange.sql(statement)
    kind, message = problem(exchange.verify())
    assert kind == "stored-cosignature"
    assert message.startswith(expected), message
    assert message.endswith(": the store was altered"), message


def test_entries_altered_under_a_stored_checkpoint_still_fail_against_it(exchange: Exchange) -> None:
    body = json.dumps(delivery(99)).encode()
    exchange.sql(
        "UPDATE ledger_entries SET body = ?, leaf_hash = ? WHERE idx = 2", body, hashlib.sha256(b"\0" + body).digest()
    )
    kind, message = problem(exchange.verify())
    assert kind == "checkpoint" and "not the one the exchange signed" in message, message


# --- the command line ------------------------------------------------------------------------------


@pytest.fixture
def key(exchange: Exchange, tmp_path: Path) -> Path:
    out = tmp_path / "key.json"
    cli(exchange.workdir, "ledger", "key", "--out", str(out), code=0)
    return out


def test_the_cli_reports_an_altered_stored_row_in_one_line_and_exits_8(exchange: Exchange, key: Path) -> None:
    cli(exchange.workdir, "ledger", "verify", "--key", str(key), code=0)
    exchange.sql("UPDATE ledger_cosignatures SET timestamp = timestamp - 1 WHERE size = ?", SIZE)
    p = cli(exchange.workdir, "ledger", "verify", "--key", str(key), code=8)
    assert p.stderr.splitlines() == [
        f"error: cosignature of witness {WITNESS} at size {SIZE} is not a line of that witness at that time: "
        "the store was altered"
    ], p.stderr
    report = json.loads(cli(exchange.workdir, "ledger", "verify", "--key", str(key), "--json", code=8).stdout)
    assert report["ok"] is False
    assert report["problem"]["kind"] == "stored-cosignature", report
    assert report["problem"]["message"] == p.stderr.splitlines()[0].removeprefix("error: ")
    exchange.sql("UPDATE ledger_meta SET value = 'garbage' WHERE name = 'checkpoint'")
    exchange.sql("UPDATE ledger_cosignatures SET timestamp = timestamp + 1 WHERE size = ?", SIZE)
    p = cli(exchange.workdir, "ledger", "verify", "--key", str(key), code=8)
    assert p.stderr.splitlines() == ["error: the stored checkpoint is unreadable: the store was altered"], p.stderr


# --- a proof in an empty tree ------------------------------------------------------------------------


def test_an_inclusion_proof_in_the_empty_tree_says_it_is_empty(tmp_path: Path) -> None:
    with opened(tmp_path) as ledger, pytest.raises(UnknownEntity) as caught:
        ledger.inclusion(0, 0)
    assert str(caught.value) == "ledger entry 0 is not in the tree of size 0 (it is empty)"
