"""What the node refuses to open, and how its store is created: a store a newer version wrote,
a node.json naming another party than the store's, and node.db readable by others."""

from __future__ import annotations

import base64
import logging
import os
import secrets
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from gsomia.crypto import PartyKeys
from gsomia.crypto.ledger_key import LedgerKey
from gsomia.crypto.signing import ExchangeSigner
from gsomia.errors import InvalidInput, StorageError
from gsomia.node.config import NodeConfig
from gsomia.node.keyring import KeyRing
from gsomia.node.service import NodeService
from gsomia.node.store import SCHEMA_VERSION, NodeStore


def test_a_store_a_newer_version_wrote_is_refused(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    store = NodeStore(tmp_path / "node.db", key)
    with store.write() as c:
        c.execute(text("UPDATE settings SET value = :v WHERE name = 'schema'"), {"v": str(int(SCHEMA_VERSION) + 1)})
    store.close()
    with pytest.raises(StorageError, match=r"schema version '2', newer than this gsomia reads \(1\)") as refused:
        NodeStore(tmp_path / "node.db", key)
    assert "\n" not in str(refused.value)
    with pytest.raises(StorageError, match="newer"):  # refused again: nothing was written over it
        NodeStore(tmp_path / "node.db", key)


def test_a_store_of_this_version_opens_again(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    NodeStore(tmp_path / "node.db", key).close()
    store = NodeStore(tmp_path / "node.db", key)
    try:
        assert store.get("schema") == SCHEMA_VERSION
    finally:
        store.close()


def test_the_store_and_its_journal_files_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = NodeStore(tmp_path / "node.db", secrets.token_bytes(32))
        try:
            store.put("probe", "x")
            files = sorted(tmp_path.glob("node.db*"))
            assert {p.name for p in files} >= {"node.db", "node.db-wal", "node.db-shm"}
            assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o600 for p in files}
        finally:
            store.close()
    finally:
        os.umask(old)


def _node(tmp_path: Path, party: str) -> Path:
    """A node folder for ``party`` (its keys in the store), as init leaves it."""
    key = secrets.token_bytes(32)
    (tmp_path / "node.key").write_text(base64.b64encode(key).decode() + "\n")
    (tmp_path / "node.key").chmod(0o600)
    store = NodeStore(tmp_path / "node.db", key)
    ledger = LedgerKey(name="gsomia.test/ledger", public_key=ExchangeSigner.generate().public_key_raw())
    store.put("ledger.key", ledger.vkey())
    KeyRing(store).add(PartyKeys.generate(party), state="current")
    store.close()
    NodeConfig(party=party, exchange="http://127.0.0.1:9", dir=tmp_path).write()
    return tmp_path


def _switch(directory: Path, party: str) -> None:
    config = NodeConfig.read(directory)
    NodeConfig(party=party, exchange=config.exchange, dir=directory).write()


def test_a_node_json_naming_another_party_than_the_store_s_is_refused(tmp_path: Path) -> None:
    directory = _node(tmp_path, "KOR")
    NodeService.open(directory).close()  # records KOR
    _switch(directory, "JPN")
    with pytest.raises(InvalidInput) as refused:
        NodeService.open(directory)
    message = str(refused.value)
    assert "JPN" in message and "KOR" in message and "\n" not in message
    _switch(directory, "KOR")
    service = NodeService.open(directory)
    try:
        assert service.store.get("party") == "KOR"
    finally:
        service.close()


def test_a_store_made_before_its_party_was_recorded_is_taken_to_be_its_keys_party(tmp_path: Path) -> None:
    directory = _node(tmp_path, "KOR")
    _switch(directory, "JPN")  # never opened as KOR: the party is not recorded yet
    with pytest.raises(InvalidInput, match="KOR"):
        NodeService.open(directory)


def test_a_store_an_older_version_left_readable_by_others_is_tightened_once_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = secrets.token_bytes(32)
    held = NodeStore(tmp_path / "node.db", key)  # kept open: its -wal and -shm stay beside it
    try:
        held.put("probe", "x")
        files = [tmp_path / name for name in ("node.db", "node.db-wal", "node.db-shm")]
        for p in files:
            p.chmod(0o644)  # as an older gsomia left them
        with caplog.at_level(logging.WARNING, logger="gsomia.node.store"):
            NodeStore(tmp_path / "node.db", key).close()
        assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o600 for p in files}
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "0600" in warnings[0]
        assert all(p.name in warnings[0] for p in files), warnings
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="gsomia.node.store"):
            NodeStore(tmp_path / "node.db", key).close()
        assert not [r for r in caplog.records if r.levelno == logging.WARNING]  # done once
        assert held.get("probe") == "x"
    finally:
        held.close()


def test_a_store_readable_by_others_that_cannot_be_tightened_is_refused_with_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = secrets.token_bytes(32)
    NodeStore(tmp_path / "node.db", key).close()
    (tmp_path / "node.db").chmod(0o640)

    def not_the_owner(path: object, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted", str(path))

    monkeypatch.setattr(os, "chmod", not_the_owner)  # the store's own call: it is not its owner
    with pytest.raises(StorageError) as refused:
        NodeStore(tmp_path / "node.db", key)
    message = str(refused.value)
    assert str(tmp_path / "node.db") in message and f"chmod 600 {tmp_path / 'node.db'}" in message
    assert "\n" not in message
