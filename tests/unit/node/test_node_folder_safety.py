"""The node's folder and files against another user of the host: a folder others may write to is
refused, a link planted where the node writes is never written through, and the node key is
read from the file that was checked; a failed write does not show the secrets it wrote."""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path

import pytest
from sqlalchemy import insert

from gsomia.crypto import PartyKeys, write_private_keyfile
from gsomia.errors import InvalidInput, StorageError
from gsomia.node.config import NodeConfig, read_node_key
from gsomia.node.service import NodeService, init_node
from gsomia.node.store import NodeStore, settings

UNREACHABLE = "http://127.0.0.1:9"


def _config(directory: Path) -> NodeConfig:
    return NodeConfig(party="KOR", exchange=UNREACHABLE, dir=directory)


def _keys_file(tmp_path: Path) -> Path:
    return write_private_keyfile(tmp_path / "kor.keys", PartyKeys.generate("KOR"))


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_a_node_folder_others_may_write_to_is_refused(tmp_path: Path, mode: int) -> None:
    folder = tmp_path / "kor"
    folder.mkdir(mode=0o700)
    _config(folder).write()
    folder.chmod(mode)
    try:
        with pytest.raises(InvalidInput, match=rf"may be written by group or others .*'chmod 700 {folder}'"):
            NodeConfig.read(folder)
        with pytest.raises(InvalidInput, match="chmod 700"):
            NodeService.open(folder)
    finally:
        folder.chmod(0o700)
    assert NodeConfig.read(folder).party == "KOR"  # once fixed, it opens


def test_init_refuses_a_folder_others_may_write_to_before_it_writes(tmp_path: Path) -> None:
    folder = tmp_path / "kor"
    folder.mkdir()
    folder.chmod(0o777)
    try:
        with pytest.raises(InvalidInput, match="chmod 700"):
            init_node(_config(folder), keys_file=_keys_file(tmp_path), token="t")
    finally:
        folder.chmod(0o700)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("name", ["node.db", "node.json", "node.key", "node.db-wal"])
def test_init_never_writes_through_a_link_planted_in_the_folder(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "kor"
    folder.mkdir(mode=0o700)
    chosen = tmp_path / "elsewhere" / "chosen"
    chosen.parent.mkdir()
    (folder / name).symlink_to(chosen)  # dangling: the target is where the node would write
    with pytest.raises(InvalidInput, match=rf"already holds {name}: remove it"):
        init_node(_config(folder), keys_file=_keys_file(tmp_path), token="t")
    assert not chosen.exists()
    assert [p.name for p in folder.iterdir()] == [name]  # the link is left for the operator to look at


def test_node_json_is_written_in_place_of_a_planted_link_not_through_it(tmp_path: Path) -> None:
    folder = tmp_path / "kor"
    folder.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (folder / "node.json").symlink_to(victim)
    old = os.umask(0o000)
    try:
        _config(folder).write()
    finally:
        os.umask(old)
    assert victim.read_text() == "precious\n"
    written = (folder / "node.json").lstat()
    assert stat.S_ISREG(written.st_mode) and stat.S_IMODE(written.st_mode) == 0o600
    assert NodeConfig.read(folder).party == "KOR"


def test_a_fifo_in_place_of_the_node_key_is_refused_not_waited_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GSOMIA_NODE_KEY", raising=False)
    os.mkfifo(tmp_path / "node.key", 0o600)  # opening it for reading blocked until someone wrote
    with pytest.raises(InvalidInput, match="not a regular file"):
        read_node_key(tmp_path / "node.key")


def test_the_node_key_is_still_read_from_a_0600_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GSOMIA_NODE_KEY", raising=False)
    key = secrets.token_bytes(32)
    path = tmp_path / "node.key"
    path.write_text(base64.b64encode(key).decode() + "\n")
    path.chmod(0o600)
    assert read_node_key(path) == key
    path.write_text("A" * 5000)
    with pytest.raises(InvalidInput, match="expected base64 of 32 bytes"):
        read_node_key(path)


def test_a_failed_write_names_its_statement_but_not_the_secrets_bound_to_it(tmp_path: Path) -> None:
    # the error's text went to the terminal and the log with the values bound: a token, a private
    # key document, a password hash, received plaintext (a full disk, a store locked by another process)
    store = NodeStore(tmp_path / "node.db", secrets.token_bytes(32))
    try:
        with pytest.raises(StorageError) as failed, store.write() as c:
            c.execute(insert(settings).values(name="schema", value="gsp_the_party_token"))
    finally:
        store.close()
    assert "IntegrityError" in str(failed.value) and "INSERT INTO settings" in str(failed.value)
    assert "gsp_the_party_token" not in str(failed.value)
