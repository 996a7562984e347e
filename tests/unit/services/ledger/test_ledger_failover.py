"""A database that loses its latest ledger entries under a running process (an asynchronous
standby promoted after a fail-over, or a restore under running servers).

The loss is simulated in-process: the newest rows are deleted and the kept checkpoint is put
back as it was when the older state was current, as a restored dump holds it. Every process
must notice that the database's ledger is shorter than its tree, or differs from it, and sign
only the database's own root: never a checkpoint over entries the database no longer holds,
never two roots at one size.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from gsomia.errors import LedgerInvalid, UnknownEntity
from gsomia.ledger.tree import MerkleTree
from gsomia.services.ledger.service import LedgerService
from gsomia.storage.ledger import LedgerEntryRow, LedgerMetaRow
from gsomia.storage.store import Store

NOW = datetime(2019, 11, 22, 1, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'g.db'}")
    yield s
    s.close()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "exchange-ledger.key"


def process(store: Store, key_file: Path) -> LedgerService:
    """One more ``gsomia serve`` process over the same database."""
    ledger = LedgerService(store, key_file=key_file, clock=clock)
    ledger.open()
    return ledger


def fill(store: Store, ledger: LedgerService, n: int, tag: str) -> None:
    with store.writing() as s:
        for i in range(n):
            ledger.append(s, {"type": "delivery", "report": f"{tag}-{i}", "recipient": "KOR"})


def kept(store: Store) -> str:
    with store.reading() as s:
        value = s.scalar(select(LedgerMetaRow.value).where(LedgerMetaRow.name == "checkpoint"))
    assert value is not None
    return value


def lose_entries_from(store: Store, size: int, kept_then: str) -> None:
    """The database as a copy taken at ``size`` entries holds it: later entries gone, and the
    checkpoint kept then."""
    with store.writing() as s:
        s.execute(delete(LedgerEntryRow).where(LedgerEntryRow.idx >= size))
        s.execute(update(LedgerMetaRow).where(LedgerMetaRow.name == "checkpoint").values(value=kept_then))


def database_root(store: Store) -> tuple[int, bytes]:
    with store.reading() as s:
        hashes = list(s.scalars(select(LedgerEntryRow.leaf_hash).order_by(LedgerEntryRow.idx)))
    return len(hashes), MerkleTree.from_leaf_hashes(hashes).root()


def served(ledger: LedgerService, note: str) -> tuple[int, bytes]:
    checkpoint = ledger.key().open(note)
    return checkpoint.size, checkpoint.root_hash


def test_a_running_process_signs_only_the_database_root_after_it_lost_entries(store: Store, key_file: Path) -> None:
    a, b = process(store, key_file), process(store, key_file)
    fill(store, a, 3, "kept")
    assert served(a, a.checkpoint())[0] == 3
    kept_then = kept(store)
    fill(store, a, 2, "lost-a")
    fill(store, b, 2, "lost-b")
    assert served(a, a.checkpoint())[0] == 7 and served(b, b.checkpoint())[0] == 7
    lose_entries_from(store, 3, kept_then)
    # right after the fail-over: the database's 3 entries, not the 7 the processes remember
    assert served(a, a.checkpoint()) == database_root(store)
    assert served(b, b.checkpoint()) == database_root(store)
    fill(store, b, 3, "new-b")
    fill(store, a, 2, "new-a")
    c = process(store, key_file)  # started after the fail-over
    assert database_root(store)[0] == 8
    for ledger in (a, b, c):
        assert served(ledger, ledger.checkpoint()) == database_root(store)
        assert served(ledger, ledger.consistency(3)["checkpoint"]) == database_root(store)
        assert served(ledger, ledger.inclusion(0)["checkpoint"]) == database_root(store)
    assert a.verify().ok, a.verify().problem
    assert c.verify().ok


def test_a_process_learning_its_own_commit_notices_a_ledger_that_went_back(store: Store, key_file: Path) -> None:
    a = process(store, key_file)
    fill(store, a, 4, "kept")
    a.checkpoint()
    kept_then = kept(store)
    fill(store, a, 4, "lost")
    a.checkpoint()
    lose_entries_from(store, 4, kept_then)
    fill(store, a, 6, "new")  # indexes 4..9 again: below the 8 leaves a remembers
    proof: dict[str, Any] = a.inclusion(9)
    assert database_root(store)[0] == 10
    assert served(a, proof["checkpoint"]) == database_root(store)
    assert served(a, a.checkpoint()) == database_root(store)
    assert a.verify().ok


def test_a_database_that_went_back_and_grew_past_the_tree_is_noticed(store: Store, key_file: Path) -> None:
    a, b = process(store, key_file), process(store, key_file)
    fill(store, a, 2, "kept")
    a.checkpoint()
    kept_then = kept(store)
    fill(store, a, 3, "lost")
    assert served(a, a.checkpoint())[0] == 5
    lose_entries_from(store, 2, kept_then)
    fill(store, b, 6, "new")  # 8 entries: more than a's 5, the last 6 of them not a's
    assert served(a, a.checkpoint()) == database_root(store)
    assert served(a, a.checkpoint()) == served(b, b.checkpoint())


def test_entries_lost_under_the_checkpoint_kept_are_refused_not_signed_over(store: Store, key_file: Path) -> None:
    # The kept checkpoint is newer than the entries: no restore leaves that (it is written after
    # them), so the entries were deleted. The exchange refuses to sign the shorter log.
    a = process(store, key_file)
    fill(store, a, 6, "e")
    a.checkpoint()
    with store.writing() as s:
        s.execute(delete(LedgerEntryRow).where(LedgerEntryRow.idx >= 4))
    for ledger in (a, process(store, key_file)):
        with pytest.raises(LedgerInvalid, match="covers 6 entries and the database holds 4"):
            ledger.checkpoint()
    problem = a.verify().problem
    assert problem is not None and "entries 4..5 are missing" in problem.message


def _root_at_8(b: LedgerService, asked: str) -> tuple[bytes, str | None]:
    """What ``b`` answers for the tree of size 8: the root it proves against, and the signed
    checkpoint it comes with."""
    if asked == "inclusion":
        proof = b.inclusion(0, 8)
        return base64.b64decode(proof["root"]), proof["checkpoint"]
    if asked == "consistency":
        proof = b.consistency(1, 8)
        return base64.b64decode(proof["new_root"]), proof["checkpoint"]
    if asked == "proved_entries":
        proved = b.proved_entries([0], 8)
        return base64.b64decode(proved["items"][0]["proof"]["root"]), proved["checkpoint"]
    note = b.checkpoint_at(8)
    return served(b, note)[1], note


@pytest.mark.parametrize("asked", ["inclusion", "consistency", "proved_entries", "checkpoint_at"])
def test_an_idle_process_answers_at_a_size_it_is_asked_for_from_the_database_after_it_went_back(
    store: Store, key_file: Path, asked: str
) -> None:
    # b served 8 entries and then sat idle while the database went back to 3 and another
    # process appended 5 others: asked for size 8 by name (no request for the current size
    # catches it up first), b proves and signs the database's tree, not the one it remembers.
    a, b = process(store, key_file), process(store, key_file)
    fill(store, a, 3, "kept")
    a.checkpoint()
    kept_then = kept(store)
    fill(store, b, 5, "lost")
    assert served(b, b.checkpoint())[0] == 8
    lose_entries_from(store, 3, kept_then)
    fill(store, a, 5, "new")
    size, root = database_root(store)
    assert size == 8
    proved, note = _root_at_8(b, asked)
    assert proved == root
    assert note is not None and served(b, note) == (8, root)
    assert served(b, b.checkpoint()) == (8, root)


def test_an_idle_process_with_a_larger_tree_than_the_database_refuses_its_sizes(store: Store, key_file: Path) -> None:
    a, b = process(store, key_file), process(store, key_file)
    fill(store, a, 3, "kept")
    a.checkpoint()
    kept_then = kept(store)
    fill(store, b, 6, "lost")
    assert served(b, b.checkpoint())[0] == 9
    lose_entries_from(store, 3, kept_then)
    fill(store, a, 2, "new")  # 5 entries, fewer than b remembers
    with pytest.raises(UnknownEntity, match="no tree of size 9"):
        b.checkpoint_at(9)
    with pytest.raises(UnknownEntity, match="no tree of size 9"):
        b.consistency(1, 9)
    assert served(b, b.checkpoint_at(5)) == database_root(store)
    assert base64.b64decode(b.inclusion(4, 5)["root"]) == database_root(store)[1]
