"""Cosignatures when the database went back under a running exchange (a restore under running
servers, or a fail-over that lost commits): a witness's line over a checkpoint the process signed
before is kept only if the database still holds that tree.

The restore is simulated in-process, as in ``test_ledger_failover.py``: the newest ledger rows
are deleted and another process over the same database appends other entries at their indexes.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import delete, select, update

from gsomia.crypto.ledger_key import Cosigner
from gsomia.crypto.signing import ExchangeSigner
from gsomia.errors import InvalidInput, StorageError, UnknownEntity
from gsomia.services.ledger.service import LedgerService
from gsomia.storage.ledger import LedgerEntryRow, LedgerMetaRow
from tests.harness import Harness


def body_of(note: str) -> str:
    return note.split("\n\n", maxsplit=1)[0] + "\n"


def size_of(note: str) -> int:
    return int(note.split("\n")[1])


def registered(h: Harness, party: str) -> Cosigner:
    w = Cosigner(f"{party.lower()}.witness.example", ExchangeSigner.generate())
    h.exchange.witnesses.register(h.principals[party], party, w.public.vkey())
    return w


def now(h: Harness) -> int:
    return int(h.clock().timestamp())


def other_process(h: Harness) -> LedgerService:
    """Another ``gsomia serve`` process over the harness's database."""
    ledger = LedgerService(h.app.store, key_file=h.app.settings.ledger_key_path(), clock=h.clock)
    ledger.open()
    return ledger


def copied(h: Harness) -> tuple[int, str]:
    """The ledger's size and the checkpoint kept, as a copy of the database taken now holds them."""
    h.app.ledger.checkpoint()
    with h.app.store.reading() as s:
        value = s.scalar(select(LedgerMetaRow.value).where(LedgerMetaRow.name == "checkpoint"))
    assert value is not None
    return h.app.ledger.size(), value


def go_back(h: Harness, copy: tuple[int, str], appended: int) -> None:
    """The database as the ``copy`` holds it, then ``appended`` other entries written by another
    process."""
    size, kept = copy
    with h.app.store.writing() as s:
        s.execute(delete(LedgerEntryRow).where(LedgerEntryRow.idx >= size))
        s.execute(update(LedgerMetaRow).where(LedgerMetaRow.name == "checkpoint").values(value=kept))
    other = other_process(h)
    with h.app.store.writing() as s:
        for i in range(appended):
            other.append(s, {"type": "delivery", "report": f"after-restore-{i}", "recipient": "KOR"})


def test_a_line_over_a_checkpoint_the_database_no_longer_holds_is_refused(harness: Harness) -> None:
    kor = registered(harness, "KOR")
    before = copied(harness)
    harness.submit("JPN", recipients=["KOR"])
    note = harness.app.ledger.checkpoint()  # then this process sits idle
    assert size_of(note) > before[0] + 1
    go_back(harness, before, 1)  # fewer entries than the checkpoint's
    line = kor.cosign(body_of(note), now(harness))
    with pytest.raises(UnknownEntity, match=f"no tree of size {size_of(note)}"):
        harness.exchange.witnesses.cosign(harness.principals["KOR"], size_of(note), line)
    with pytest.raises(UnknownEntity):
        harness.app.ledger.cosigned_checkpoint()
    assert harness.app.ledger.verify().ok


def test_a_line_over_another_tree_of_the_same_size_is_refused(harness: Harness) -> None:
    kor = registered(harness, "KOR")
    before = copied(harness)
    harness.submit("JPN", recipients=["KOR"])
    note = harness.app.ledger.checkpoint()
    go_back(harness, before, size_of(note) - before[0])  # as many entries, other ones
    line = kor.cosign(body_of(note), now(harness))
    with pytest.raises(InvalidInput, match="another tree"):
        harness.exchange.witnesses.cosign(harness.principals["KOR"], size_of(note), line)
    with pytest.raises(UnknownEntity):
        harness.app.ledger.cosigned_checkpoint()
    assert harness.app.ledger.verify().ok


def test_a_database_that_went_back_while_the_line_was_checked_keeps_nothing(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    kor = registered(harness, "KOR")
    before = copied(harness)
    harness.submit("JPN", recipients=["KOR"])
    note = harness.app.ledger.checkpoint()
    signed: Callable[[int], str] = harness.app.ledger.checkpoint_at

    def restored_meanwhile(size: int) -> str:
        out = signed(size)
        go_back(harness, before, size - before[0])  # between the check and the transaction that keeps
        return out

    monkeypatch.setattr(harness.app.ledger, "checkpoint_at", restored_meanwhile)
    line = kor.cosign(body_of(note), now(harness))
    with pytest.raises(StorageError, match="ask again"):
        harness.exchange.witnesses.cosign(harness.principals["KOR"], size_of(note), line)
    monkeypatch.undo()
    with pytest.raises(UnknownEntity):
        harness.app.ledger.cosigned_checkpoint()
    with pytest.raises(InvalidInput, match="another tree"):  # asked again: the database's tree
        harness.exchange.witnesses.cosign(harness.principals["KOR"], size_of(note), line)
    assert harness.app.ledger.verify().ok
