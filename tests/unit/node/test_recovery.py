"""A party node after its exchange was restored from an older copy of its database: the inbox
it reads again ends before the node's cursor, so the node reads it again from the start (the
items written since the restore would otherwise be skipped for ever); the rollback raises the
ledger alarm; once an admin clears it, ``recheck`` verifies what was quarantined meanwhile."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from gsomia.crypto.ledger_key import LedgerKey
from gsomia.errors import LedgerInvalid
from gsomia.node.keyring import KeyRing
from gsomia.node.store import NodeStore, deliveries
from gsomia.node.sync import Syncer
from gsomia.node.witness import LedgerWitness
from tests.harness import Harness, start


class _Node:
    """KOR's node (its store, keys and witness) following whichever exchange ``exchange`` names."""

    def __init__(self, tmp_path: Path, exchange: Harness) -> None:
        self.exchange = exchange
        self.store = NodeStore(tmp_path / "node.db", secrets.token_bytes(32))
        keyring = KeyRing(self.store)
        keyring.add(exchange.keys["KOR"], state="current")
        with exchange.client("KOR") as kor:
            key = LedgerKey.parse(json.dumps(kor.ledger_key()))
        self.witness = LedgerWitness(self.store, key=key, cosigner=None, publish=lambda _kind, _doc: None)
        self.syncer = Syncer(
            self.store,
            party="KOR",
            keyring=keyring,
            witness=self.witness,
            connect=lambda: self.exchange.client("KOR"),
            publish=lambda _kind, _doc: None,
        )

    def states(self) -> dict[str, str]:
        with self.store.read() as c:
            return {str(r.report_id): str(r.state) for r in c.execute(select(deliveries))}

    def close(self) -> None:
        self.syncer.close()
        self.store.close()


@pytest.fixture
def restored(tmp_path: Path) -> Iterator[tuple[_Node, Harness, list[str]]]:
    """The node has read five deliveries; the exchange is then restored from a copy taken after
    two of them, and makes one new delivery. Yields the node, the restored exchange and the
    report ids (the five before the restore, then the new one)."""
    (tmp_path / "copy").mkdir()
    (tmp_path / "live").mkdir()
    (tmp_path / "restored").mkdir()
    first = start(tmp_path / "copy")
    ids = [first.submit(id=f"R-kept-{n}").body["report"] for n in range(2)]
    first.app.ledger.checkpoint()  # its ledger key made: every copy signs with it
    first.close()  # the copy an operator keeps
    live = first.clone(tmp_path / "live")
    ids += [live.submit(id=f"R-lost-{n}").body["report"] for n in range(3)]
    node = _Node(tmp_path, live)
    try:
        assert node.syncer.once().verified == 5
        live.close()
        back = first.clone(tmp_path / "restored")  # the restore
        node.exchange = back
        ids.append(back.submit(id="R-after-the-restore").body["report"])
        yield node, back, ids
        back.close()
    finally:
        node.close()


def test_a_restored_exchange_s_new_deliveries_are_read_not_skipped(restored: tuple[_Node, Harness, list[str]]) -> None:
    node, _, ids = restored
    before = node.syncer.cursor
    node.syncer.once()
    # the delivery made after the restore sits before the node's old cursor: it is read (and,
    # the ledger having been rolled back under the node's witness, quarantined)
    assert node.states()[ids[-1]] == "quarantined"
    alarm = node.witness.alarm()
    assert alarm is not None and alarm["kind"] == "rollback"
    rewound = node.store.get_json("sync.rewound")
    assert rewound["from"] == before and int(rewound["to"]) < int(str(before))
    # the deliveries held before are kept as they were
    assert [node.states()[i] for i in ids[:5]] == ["verified"] * 5


def test_recheck_after_the_alarm_is_cleared_verifies_what_was_quarantined(
    restored: tuple[_Node, Harness, list[str]],
) -> None:
    node, _, ids = restored
    node.syncer.once()
    with pytest.raises(LedgerInvalid, match="alarm stands"):
        node.syncer.recheck()
    assert node.witness.clear_alarm("admin") is not None
    with node.store.read() as c:
        n_before = c.execute(select(deliveries.c.n).where(deliveries.c.report_id == ids[-1])).scalar_one()
    result = node.syncer.recheck()
    assert result["rechecked"] == 1 and len(result["verified"]) == 1 and result["quarantined"] == []
    assert node.states()[ids[-1]] == "verified"
    with node.store.read() as c:
        row = c.execute(select(deliveries).where(deliveries.c.report_id == ids[-1])).mappings().one()
    # stored again as the newest, so the TAXII and CoT feeds (which follow that order) hand it on
    assert row["n"] > n_before and row["payload"] and row["reason"] is None
    # nothing more to recheck
    assert node.syncer.recheck() == {"rechecked": 0, "verified": [], "quarantined": []}
