"""What the in-process command-line tests share: the result of one command, and a party
node's folder to run ``gsomia node`` commands on."""

from __future__ import annotations

import base64
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gsomia.crypto import PartyKeys
from gsomia.crypto.ledger_key import LedgerKey
from gsomia.crypto.signing import ExchangeSigner
from gsomia.node.config import NodeConfig
from gsomia.node.keyring import KeyRing
from gsomia.node.store import NodeStore


@dataclass(frozen=True)
class Run:
    """What one command did: its exit code and what it printed."""

    code: int
    out: str
    err: str


Gsomia = Callable[..., Run]
"""``gsomia(*args)``: run the command line in this process (the ``gsomia`` fixture)."""


def free_port() -> int:
    """A port nothing on this host listens on now (the kernel's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def node_folder(directory: Path, keys: PartyKeys, *, state: str = "current") -> NodeStore:
    """A KOR node folder holding ``keys`` in ``state`` (its exchange unreachable); its store, open."""
    directory.mkdir()
    key = secrets.token_bytes(32)
    (directory / "node.key").write_text(base64.b64encode(key).decode() + "\n")
    (directory / "node.key").chmod(0o600)
    store = NodeStore(directory / "node.db", key)
    ledger = LedgerKey(name="gsomia.test/ledger", public_key=ExchangeSigner.generate().public_key_raw())
    store.put("ledger.key", ledger.vkey())
    KeyRing(store).add(keys, state=state)
    # a free port: 'node serve' first checks that it can listen there
    NodeConfig(party="KOR", exchange="http://127.0.0.1:9", dir=directory, port=free_port()).write()
    return store
