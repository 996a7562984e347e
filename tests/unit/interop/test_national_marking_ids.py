"""A national marking-definition minted by hand (a random id, as MISP or OpenCTI give, or the
content without a member its id was derived with) is refused by the sender's outbox, naming the
id its content fixes, instead of being sent to recipients that would all leave it out."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from gsomia.interop.stix import (
    NATIONAL_MARKING_EXTENSION,
    DeliveredMarking,
    MarkingPolicy,
    NationalMarking,
    TopicMap,
    delivery_objects,
    national_marking_definition,
    plan_envelope,
)
from gsomia.node.taxii.service import Outbox, OutboxConfig, SendResult
from gsomia.node.taxii.store import EngineTransactions, TaxiiStore

POLICY = MarkingPolicy(party="JPN", levels=("極秘", "秘"))
SECRET = national_marking_definition(NationalMarking(party="JPN", level="極秘", rel_to=("KOR",)))
RANDOM_ID = "marking-definition--3b0f7c0e-5d0a-4c57-9d7e-0d1c6f1f2a11"


def _documented_id(ext: dict[str, Any]) -> str:
    """The id docs/interop.md §2.1 says a national marking has, computed as an independent
    implementation would from that text alone."""
    name = "national\x1f" + json.dumps(ext, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    digest = bytearray(uuid.uuid5(uuid.UUID("77095941-9c33-464f-af96-317be69edab3"), name).bytes)
    digest[6] = (digest[6] & 0x0F) | 0x40  # version 4
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    return f"marking-definition--{uuid.UUID(bytes=bytes(digest))}"


def _indicator(ref: str) -> dict[str, Any]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": "indicator--00000000-0000-4000-8000-000000000001",
        "created": "2019-11-22T00:58:00.000Z",
        "modified": "2019-11-22T00:58:00.000Z",
        "pattern": "[ipv4-addr:value = '198.51.100.1']",
        "pattern_type": "stix",
        "valid_from": "2019-11-22T00:58:00Z",
        "object_marking_refs": [ref],
    }


def _by_hand(defn: dict[str, Any], *, oid: str | None = None, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    out = copy.deepcopy(defn)
    for name in drop:
        del out["extensions"][NATIONAL_MARKING_EXTENSION]["caveats"][name]
    if oid is not None:
        out["id"] = oid
    return out


def _plan(*objects: dict[str, Any], known: dict[str, Any] | None = None) -> Any:
    topics = TopicMap(default="dprk.missile.launch")
    return plan_envelope(list(objects), policy=POLICY, topics=topics, known_definitions=known or {})


def test_the_documented_derivation_gives_the_id_the_node_gives() -> None:
    for marking in (
        NationalMarking(party="JPN", level="極秘"),
        NationalMarking(party="JPN", level="秘", rel_to=("USA", "KOR"), orcon=True),
        NationalMarking(party="JPN", level="極秘", noforn=True),
    ):
        defn = national_marking_definition(marking)
        assert defn["id"] == _documented_id(defn["extensions"][NATIONAL_MARKING_EXTENSION])


@pytest.mark.parametrize(
    "minted",
    [
        _by_hand(SECRET, oid=RANDOM_ID),  # a random id, as MISP or OpenCTI mint one
        _by_hand(SECRET, drop=("noforn", "orcon")),  # the node's id, without the defaults it was derived with
    ],
    ids=["random-id", "defaults-left-out"],
)
def test_a_national_marking_under_an_id_its_content_does_not_fix_is_refused_naming_that_id(
    minted: dict[str, Any],
) -> None:
    expected = _documented_id(minted["extensions"][NATIONAL_MARKING_EXTENSION])
    assert expected != minted["id"]
    plan = _plan(minted, _indicator(minted["id"]))
    assert not plan.groups and not plan.definitions  # nothing sent, the definition not recorded
    reasons = {r.object_id: r.reason for r in plan.refused}
    assert set(reasons) == {minted["id"], _indicator(minted["id"])["id"]}
    assert all(expected in reason and "fixed by its content" in reason for reason in reasons.values()), reasons
    # One recorded before this check refuses what references it just the same.
    later = _plan(_indicator(minted["id"]), known={minted["id"]: minted})
    assert not later.groups and expected in later.refused[0].reason


def test_the_same_content_under_the_id_it_fixes_is_sent_and_kept_by_the_recipient() -> None:
    # Whichever members the marking carries, its id is derived from them as carried: no default
    # is filled in, so the sender and every recipient compute the same id.
    minted = _by_hand(SECRET, drop=("noforn", "orcon"))
    minted["id"] = _documented_id(minted["extensions"][NATIONAL_MARKING_EXTENSION])
    plan = _plan(minted, _indicator(minted["id"]))
    assert not plan.refused and [d["id"] for d in plan.definitions] == [minted["id"]]
    (group,) = plan.groups
    assert group.marking == NationalMarking(party="JPN", level="極秘", rel_to=("KOR",))
    delivered = DeliveredMarking(
        recipient="KOR",
        level="군사II급비밀",
        originator=group.marking,
        common_level="SECRET",
        banner="군사II급비밀 (JPN 極秘 REL TO KOR)",
        agreement="JPN-KOR-GSOMIA",
        delivery="d-1",
        ledger_index=1,
    )
    served = delivery_objects(
        json.loads(group.payload)["objects"], delivered=delivered, created=datetime(2019, 11, 22, 1, tzinfo=UTC)
    )
    assert minted in served
    (indicator,) = [o for o in served if o["type"] == "indicator"]
    assert minted["id"] in indicator["object_marking_refs"]


def test_a_national_marking_with_a_member_only_a_recipient_writes_is_refused() -> None:
    minted = copy.deepcopy(SECRET)
    minted["extensions"][NATIONAL_MARKING_EXTENSION]["exercise"] = True
    minted["id"] = _documented_id(minted["extensions"][NATIONAL_MARKING_EXTENSION])
    plan = _plan(minted, _indicator(minted["id"]))
    assert not plan.groups and all("exercise" in r.reason for r in plan.refused), plan.refused


class _Sender:
    def __init__(self) -> None:
        self.sent = 0

    def send(self, drafts: Any) -> list[SendResult]:
        self.sent += len(drafts)
        return [SendResult(True, "delivered: KOR") for _ in drafts]


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[tuple[Outbox, _Sender]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'taxii.db'}", connect_args={"check_same_thread": False})
    sender = _Sender()
    box = Outbox(
        store=TaxiiStore(EngineTransactions(engine)),
        sender=sender,
        policy=POLICY,
        topics=TopicMap(default="dprk.missile.launch"),
        config=OutboxConfig(recipients=("KOR",), wait_seconds=10),
        clock=lambda: datetime.now(UTC),
    )
    box.start()
    try:
        yield box, sender
    finally:
        box.stop()


def test_the_status_resource_names_the_id_the_marking_needs(outbox: tuple[Outbox, _Sender]) -> None:
    box, sender = outbox
    minted = _by_hand(SECRET, oid=RANDOM_ID)
    status = box.accept([minted, _indicator(RANDOM_ID)], owner="analyst", wait=True)
    expected = _documented_id(minted["extensions"][NATIONAL_MARKING_EXTENSION])
    assert status["status"] == "complete" and status["success_count"] == 0, status
    assert {f["id"] for f in status["failures"]} == {RANDOM_ID, _indicator(RANDOM_ID)["id"]}
    assert all(expected in f["message"] for f in status["failures"]), status
    assert sender.sent == 0
