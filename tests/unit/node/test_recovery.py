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
from gsomia.errors import ExchangeUnreachable, LedgerInvalid
from gsomia.node.keyring import KeyRing
from gsomia.node.store import NodeStore, deliveries, incidents
from gsomia.node.sync import Syncer, upsert_incident
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
        # other parties' traffic moves the shared sequence numbers past the node's old cursor:
        # the inbox's end alone no longer tells the node that anything is amiss
        for n in range(6):
            back.submit("JPN", recipients=["USA"], id=f"R-to-USA-{n}")
        ids.append(back.submit(id="R-later").body["report"])  # KOR's inbox now ends past the old cursor
        yield node, back, ids
        back.close()
    finally:
        node.close()


def test_a_restored_exchange_s_new_deliveries_are_read_not_skipped(restored: tuple[_Node, Harness, list[str]]) -> None:
    node, _, ids = restored
    before = node.syncer.cursor
    node.syncer.once()
    # the delivery made after the restore sits before the node's old cursor: it is read (and,
    # the ledger having been forked under the node's witness, quarantined)
    assert node.states()[ids[-2]] == node.states()[ids[-1]] == "quarantined"
    alarm = node.witness.alarm()
    assert alarm is not None and alarm["kind"] == "fork"  # a larger tree that does not extend the one it saw
    rewound = node.store.get_json("sync.rewound")
    assert rewound["from"] == before and "is no longer at" in rewound["why"], rewound
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
    assert result["rechecked"] == 2 and len(result["verified"]) == 2 and result["quarantined"] == []
    assert node.states()[ids[-1]] == "verified"
    with node.store.read() as c:
        row = c.execute(select(deliveries).where(deliveries.c.report_id == ids[-1])).mappings().one()
    # stored again as the newest, so the TAXII and CoT feeds (which follow that order) hand it on
    assert row["n"] > n_before and row["payload"] and row["reason"] is None
    # nothing more to recheck
    assert node.syncer.recheck() == {"rechecked": 0, "verified": [], "quarantined": []}


def test_a_second_pass_over_an_inbox_in_line_reads_no_more_than_its_new_items(
    restored: tuple[_Node, Harness, list[str]],
) -> None:
    node, back, _ = restored
    node.syncer.once()
    rewound = node.store.get_json("sync.rewound")
    back.submit(id="R-next")
    assert node.syncer.once().items == 1  # one new item: no second reading from the start
    assert node.store.get_json("sync.rewound") == rewound


def test_two_rechecks_of_one_delivery_hand_it_on_once_and_keep_what_was_done_since(
    restored: tuple[_Node, Harness, list[str]],
) -> None:
    node, _, _ = restored
    node.syncer.once()
    assert node.witness.clear_alarm("admin") is not None
    with node.store.read() as c:
        quarantined, *_ = c.execute(
            select(deliveries.c.delivery_id).where(deliveries.c.state == "quarantined")
        ).scalars()
    # a second recheck (another process) read the quarantined rows before the first was done
    first = node.syncer.recheck()
    assert quarantined in first["verified"]
    with node.store.write() as c:
        c.execute(
            deliveries.update()
            .where(deliveries.c.delivery_id == quarantined)
            .values(acknowledged_at="2019-11-22T01:00:00+00:00")
        )
    late = node.syncer._recheck_one  # the second, reaching the row after the first
    assert late(None, quarantined) is None  # type: ignore[arg-type]
    with node.store.read() as c:
        rows = c.execute(select(deliveries).where(deliveries.c.delivery_id == quarantined)).mappings().all()
    assert len(rows) == 1 and rows[0]["acknowledged_at"] == "2019-11-22T01:00:00+00:00"


def test_a_recheck_cut_short_says_what_it_did(restored: tuple[_Node, Harness, list[str]]) -> None:
    node, _, _ = restored
    node.syncer.once()
    assert node.witness.clear_alarm("admin") is not None
    done: dict[str, object] = {}
    real = node.syncer._verify
    calls = 0

    def verify_then_go_away(ex: object, item: dict[str, object]) -> dict[str, object]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise ExchangeUnreachable("the exchange went away")
        return real(ex, item)  # type: ignore[arg-type]

    with node.store.write() as c:  # two quarantined deliveries
        c.execute(deliveries.update().where(deliveries.c.state == "verified").values(state="quarantined"))
    node.syncer._verify = verify_then_go_away  # type: ignore[method-assign]
    with pytest.raises(ExchangeUnreachable):
        node.syncer.recheck(done)
    assert done["rechecked"] == 1 and len(done["verified"]) == 1  # type: ignore[arg-type]


def test_an_incident_the_node_holds_is_never_replaced_by_an_older_state_of_it(tmp_path: Path) -> None:
    # read again from a restored exchange, an incident comes without the follow-ups made since
    store = NodeStore(tmp_path / "node.db", secrets.token_bytes(32))
    try:
        later = {"id": "inc-1", "delivery": "d-1", "updates": [{"by": "KOR", "result": "found: shredded"}]}
        with store.write() as c:
            upsert_incident(c, later)
            upsert_incident(c, {**later, "updates": []})
        with store.read() as c:
            (kept,) = c.execute(select(incidents.c.document)).scalars()
        assert json.loads(kept)["updates"] == later["updates"]
        more = {**later, "updates": [*later["updates"], {"by": "JPN", "result": "measures taken"}]}
        with store.write() as c:
            upsert_incident(c, more)
        with store.read() as c:
            (kept,) = c.execute(select(incidents.c.document)).scalars()
        assert len(json.loads(kept)["updates"]) == 2
    finally:
        store.close()
