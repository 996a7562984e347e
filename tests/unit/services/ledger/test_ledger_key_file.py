"""A process started with another ledger key file than the one this database's checkpoints were
signed with: refused at start, and never serving a checkpoint another key signed.

A log keeps its key for life: a host whose key file was replaced by a new one (or another
log's) would otherwise sign checkpoints every pinned verifier and witness takes for a fork,
and the processes over one database would serve notes of two keys in turn.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete

from gsomia.crypto.ledger_key import load_or_create_ledger_key
from gsomia.errors import StorageError
from gsomia.services.ledger.service import LedgerService
from gsomia.storage.ledger import LedgerMetaRow
from gsomia.storage.store import Store

NOW = datetime(2019, 11, 22, 1, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'g.db'}")
    yield s
    s.close()


def fill(store: Store, ledger: LedgerService, n: int) -> None:
    with store.writing() as s:
        for i in range(n):
            ledger.append(s, {"type": "ack", "report": f"r-{i}", "n": i})


def other_key(tmp_path: Path) -> Path:
    path = tmp_path / "other" / "exchange-ledger.key"
    path.parent.mkdir(mode=0o700)
    load_or_create_ledger_key(path, created=NOW)
    return path


def refused(ledger: LedgerService, call: str) -> str:
    with pytest.raises(StorageError) as caught:
        getattr(ledger, call)()
    return str(caught.value)


def forget_the_key_record(store: Store) -> None:
    """The database as a log from before each log recorded its key holds it."""
    with store.writing() as s:
        s.execute(delete(LedgerMetaRow).where(LedgerMetaRow.name == "key"))


def test_another_key_file_is_refused_at_start(store: Store, tmp_path: Path) -> None:
    right = LedgerService(store, key_file=tmp_path / "exchange-ledger.key", clock=clock)
    right.open()  # the first start records the log's key, before anything is signed
    wrong = other_key(tmp_path)
    before = wrong.read_bytes()
    for call in ("open", "checkpoint", "verify", "public_key"):
        message = refused(LedgerService(store, key_file=wrong, clock=clock), call)
        assert f"the ledger key {wrong} (key ID " in message and "is not this log's key" in message, message
        assert right.key().vkey() in message and "Put back the key file" in message, message
    assert wrong.read_bytes() == before
    fill(store, right, 3)
    assert right.key().open(right.checkpoint()).size == 3  # the right key serves on


def test_a_log_from_before_keys_were_recorded_takes_the_key_of_its_checkpoint(store: Store, tmp_path: Path) -> None:
    right = LedgerService(store, key_file=tmp_path / "exchange-ledger.key", clock=clock)
    fill(store, right, 3)
    note = right.checkpoint()
    forget_the_key_record(store)
    wrong = other_key(tmp_path)
    message = refused(LedgerService(store, key_file=wrong, clock=clock), "open")
    assert f"the ledger key {wrong} (key ID " in message, message
    assert "did not sign the checkpoint this database holds (size 3, signed by key ID " in message, message
    again = LedgerService(store, key_file=tmp_path / "exchange-ledger.key", clock=clock)
    assert again.checkpoint() == note  # recorded now: the other key is refused as at any start
    assert "is not this log's key" in refused(LedgerService(store, key_file=wrong, clock=clock), "open")


def test_a_checkpoint_another_key_signed_is_never_served(store: Store, tmp_path: Path) -> None:
    # Past the record of the log's key (removed), a process with another key still never serves
    # the other key's checkpoint, nor replaces it with its own.
    a = LedgerService(store, key_file=tmp_path / "exchange-ledger.key", clock=clock)
    a.open()
    forget_the_key_record(store)
    b = LedgerService(store, key_file=other_key(tmp_path), clock=clock)
    b.open()
    fill(store, a, 2)
    assert a.key().open(a.checkpoint()).size == 2
    assert "did not sign the checkpoint this database holds" in refused(b, "checkpoint")
    fill(store, b, 2)
    assert "did not sign the checkpoint this database holds" in refused(b, "checkpoint")
    assert a.key().open(a.checkpoint()).size == 4
    assert a.verify().ok
