"""The ledger over a real database, on SQLite and PostgreSQL: atomicity, concurrent writers, tampering.

Every test runs on both backends (the ``db_url`` fixture). Entries are appended the way the
exchange appends them: ``LedgerService.append`` inside ``Store.writing()``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from gsomia.errors import LedgerInvalid
from gsomia.ledger.entries import entry_bytes, entry_leaf_hash
from gsomia.ledger.tree import MerkleTree
from gsomia.services.ledger.service import LedgerService
from gsomia.storage.ledger import LedgerEntryRow, LedgerMetaRow, LedgerTable, Session
from gsomia.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]


def clock() -> datetime:
    return datetime(2019, 11, 22, 1, 0, tzinfo=UTC)


def entry(n: int) -> dict[str, Any]:
    return {"type": "decision", "report": f"r-{n}", "decision": "direct", "reasons": ["in force", "in scope"], "n": n}


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.close()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "exchange-ledger.key"


@pytest.fixture
def ledger(store: Store, key_file: Path) -> LedgerService:
    return LedgerService(store, key_file=key_file, clock=clock)


def fill(store: Store, ledger: LedgerService, n: int, start: int = 0) -> None:
    with store.writing() as s:
        for i in range(start, start + n):
            ledger.append(s, entry(i))


def stored(store: Store) -> list[tuple[int, bytes, bytes]]:
    with store.reading() as s:
        rows = s.execute(
            select(LedgerEntryRow.idx, LedgerEntryRow.body, LedgerEntryRow.leaf_hash).order_by(LedgerEntryRow.idx)
        ).all()
    return [(int(i), bytes(b), bytes(h)) for i, b, h in rows]


def set_row(store: Store, index: int, **values: bytes) -> None:
    with store.writing() as s:
        s.execute(update(LedgerEntryRow).where(LedgerEntryRow.idx == index).values(**values))


def flip(data: bytes, position: int) -> bytes:
    out = bytearray(data)
    out[position] ^= 0x01
    return bytes(out)


def failing_transaction(store: Store, ledger: LedgerService, entries: list[dict[str, Any]]) -> None:
    with store.writing() as s:
        for e in entries:
            ledger.append(s, e)
        raise RuntimeError("the delivery could not be written")


def failing_savepoint(s: Session, ledger: LedgerService, e: dict[str, Any]) -> None:
    with contextlib.suppress(ValueError), s.begin_nested():
        ledger.append(s, e)
        raise ValueError("the action failed after its ledger entry")


def test_a_rolled_back_transaction_leaves_no_row_and_no_leaf(store: Store, ledger: LedgerService) -> None:
    fill(store, ledger, 3)
    note = ledger.checkpoint()
    with pytest.raises(RuntimeError, match="could not be written"):
        failing_transaction(store, ledger, [entry(3), entry(4)])
    assert [i for i, _b, _h in stored(store)] == [0, 1, 2]
    assert ledger.size() == 3
    assert ledger.checkpoint() == note
    with store.writing() as s:
        failing_savepoint(s, ledger, entry(3))  # one action of a group commit fails
        assert ledger.append(s, entry(4)) == 3
    assert [i for i, _b, _h in stored(store)] == [0, 1, 2, 3]
    assert ledger.entry(3)["entry"] == entry(4)
    assert ledger.verify().ok


def test_an_entry_shared_in_its_own_transaction_is_readable_by_exactly_those_it_was_shared_with(
    store: Store, ledger: LedgerService
) -> None:
    fill(store, ledger, 1)
    with store.writing() as s:
        fresh = ledger.append(s, entry(1), parties=["JPN"])
        ledger.share(s, fresh, ["KOR", "JPN"])  # a delivery's recipient, before the entry is written
        ledger.share(s, 0, ["AUS"])  # an entry committed before
        with contextlib.suppress(ValueError), s.begin_nested():
            ledger.share(s, fresh, ["USA"])
            raise ValueError("the delivery failed after sharing the entry")
    table = LedgerTable(store)
    assert [p for p in ("JPN", "KOR", "USA", "AUS") if table.readable(fresh, p)] == ["JPN", "KOR"]
    assert [p for p in ("JPN", "KOR", "USA", "AUS") if table.readable(0, p)] == ["AUS"]
    assert ledger.verify().ok


def test_concurrent_threads_stay_gap_free(store: Store, ledger: LedgerService) -> None:
    ledger.open()
    failures: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for t in range(15):
                with store.writing() as s:
                    for k in range(1 + (t + w) % 3):
                        ledger.append(s, entry(w * 10_000 + t * 10 + k))
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            failures.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    rows = stored(store)
    assert [i for i, _b, _h in rows] == list(range(len(rows)))
    assert ledger.size() == len(rows) == sum(1 + (t + w) % 3 for w in range(4) for t in range(15))
    root = MerkleTree.from_leaf_hashes([h for _i, _b, h in rows]).root()
    assert ledger.key().open(ledger.checkpoint()).root_hash == root
    assert ledger.verify().ok


WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from pathlib import Path
    from gsomia.services.ledger.service import LedgerService
    from gsomia.storage.store import Store

    url, key, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = Store(url)
    ledger = LedgerService(store, key_file=Path(key), clock=lambda: datetime.now(UTC))
    for t in range(25):
        with store.writing() as s:
            for k in range(2):
                ledger.append(s, {"type": "ack", "worker": worker, "t": t, "k": k})
    store.close()
    """
)


def test_concurrent_processes_stay_gap_free(store: Store, ledger: LedgerService, key_file: Path) -> None:
    ledger.open()  # this process's tree is loaded before the others write
    fill(store, ledger, 1)
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, store.url, str(key_file), str(w)], cwd=ROOT) for w in range(3)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    rows = stored(store)
    assert [i for i, _b, _h in rows] == list(range(1 + 3 * 25 * 2))
    assert ledger.key().open(ledger.checkpoint()).size == len(rows)  # caught up with the other processes
    assert ledger.verify().ok


def test_flipping_any_byte_of_a_stored_body_names_the_entry(store: Store, ledger: LedgerService) -> None:
    fill(store, ledger, 8)
    index, body, _h = stored(store)[5]
    for position in range(len(body)):
        set_row(store, index, body=flip(body, position))
        problem = ledger.verify().problem
        assert problem is not None and (problem.kind, problem.index) == ("entry", 5), (position, problem)
        assert problem.message.startswith("entry 5: ")
    set_row(store, index, body=body)
    assert ledger.verify().ok


def test_flipping_any_byte_of_a_stored_leaf_hash_names_the_entry(store: Store, ledger: LedgerService) -> None:
    fill(store, ledger, 8)
    ledger.open()  # a running exchange: its tree was built before the tampering
    index, _b, leaf = stored(store)[2]
    for position in range(len(leaf)):
        set_row(store, index, leaf_hash=flip(leaf, position))
        problem = ledger.verify().problem
        assert problem is not None and (problem.kind, problem.index) == ("entry", 2), (position, problem)
    set_row(store, index, leaf_hash=leaf)
    assert ledger.verify().ok


def test_served_entries_are_checked_against_their_leaf(store: Store, ledger: LedgerService) -> None:
    fill(store, ledger, 3)
    _i, body, _h = stored(store)[1]
    set_row(store, 1, body=body.replace(b"direct", b"relay!"))
    with pytest.raises(LedgerInvalid, match="ledger entry 1 does not match its leaf hash"):
        ledger.entry(1)


def test_a_deleted_entry_is_named(store: Store, ledger: LedgerService, key_file: Path) -> None:
    fill(store, ledger, 6)
    with store.writing() as s:
        s.execute(delete(LedgerEntryRow).where(LedgerEntryRow.idx == 3))
    problem = ledger.verify().problem
    assert problem is not None and (problem.kind, problem.index) == ("missing-entry", 3)
    fresh = LedgerService(store, key_file=key_file, clock=clock)
    with pytest.raises(LedgerInvalid, match="ledger entry 3 is missing from the store"):
        fresh.checkpoint()
    assert fresh.verify().problem == problem


def test_a_kept_checkpoint_detects_rollback_and_fork(store: Store, ledger: LedgerService, key_file: Path) -> None:
    fill(store, ledger, 10)
    kept = ledger.checkpoint()
    # Rollback: the last entries vanish ...
    with store.writing() as s:
        saved = stored(store)[7:]
        s.execute(delete(LedgerEntryRow).where(LedgerEntryRow.idx >= 7))
    # ... which the exchange itself notices: the latest checkpoint it signed is recorded too
    noticed = LedgerService(store, key_file=key_file, clock=clock).verify().problem
    assert noticed is not None and "entries 7..9 are missing" in noticed.message
    # ... unless that record is rolled back with them: a restarted exchange signs the shorter tree
    with store.writing() as s:
        s.execute(delete(LedgerMetaRow).where(LedgerMetaRow.name == "checkpoint"))
    restarted = LedgerService(store, key_file=key_file, clock=clock)
    assert restarted.verify().ok  # self-consistent...
    problem = restarted.verify(since=kept).problem  # ...but older than what the auditor holds
    assert problem is not None and problem.kind == "rollback"
    assert "has 7 entries but your kept checkpoint has 10" in problem.message
    # Fork: entry 4 rewritten together with its leaf hash, the tree re-signed.
    with store.writing() as s:
        s.add_all(LedgerEntryRow(idx=i, body=b, leaf_hash=h, recorded_at=clock()) for i, b, h in saved)
    forged = {**entry(4), "decision": "deny"}
    set_row(store, 4, body=entry_bytes(forged), leaf_hash=entry_leaf_hash(forged))
    with store.writing() as s:
        s.execute(delete(LedgerMetaRow).where(LedgerMetaRow.name == "checkpoint"))
    rewritten = LedgerService(store, key_file=key_file, clock=clock)
    assert rewritten.verify().ok  # a consistent, re-signed lie...
    problem = rewritten.verify(since=kept).problem  # ...that the kept checkpoint exposes
    assert problem is not None and problem.kind == "fork"
