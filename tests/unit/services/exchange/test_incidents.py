"""Loss and compromise reports (Japan–Korea GSOMIA Art. 17): the recipient files one on its
delivery and the originator is told at once; each side's updates reach the other; the ledger
keeps salted commitments to the text, never the text; nobody else sees any of it."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from typing import Any

import pytest

from gsomia.errors import InvalidInput, NotPermitted, UnknownEntity
from gsomia.services.exchange.relays import text_commitment
from tests.harness import Harness


def filed(h: Harness, **fields: Any) -> dict[str, Any]:
    """KOR files an incident on its delivery of a JPN track."""
    result = h.submit("JPN", recipients=["KOR"])
    (d,) = h.decision(result, "KOR")["deliveries"]
    spec = {"kind": "possible_compromise", "description": "terminal left unlocked in the ops room"} | fields
    return h.exchange.incidents.file_incident(h.principals["KOR"], d["id"], **spec)


def items(h: Harness, party: str, kind: str) -> list[dict[str, Any]]:
    return [i for i in h.inbox(party) if i["type"] == kind]


def test_filing_tells_the_originator_at_once(harness: Harness) -> None:
    incident = filed(harness, description="  terminal left unlocked  ")
    assert (incident["reporter"], incident["originator"], incident["kind"]) == ("KOR", "JPN", "possible_compromise")
    assert incident["description"] == "terminal left unlocked"  # trimmed
    assert incident["updates"] == []
    (notice,) = items(harness, "JPN", "incident")
    assert (notice["id"], notice["delivery"], notice["kind"]) == (
        incident["id"],
        incident["delivery"],
        incident["kind"],
    )
    assert items(harness, "KOR", "incident") == []
    assert items(harness, "USA", "incident") == []


def test_the_ledger_keeps_salted_commitments_to_the_text_never_the_text(harness: Harness) -> None:
    incident = filed(harness)
    entry = harness.app.ledger.entry(incident["leaf_index"])["entry"]
    assert (entry["type"], entry["action"], entry["incident"], entry["reporter"]) == (
        "incident",
        "filed",
        incident["id"],
        "KOR",
    )
    # the two sides hold the salt and can check the commitment; nobody else can guess the text
    salt = base64.b64decode(incident["salt"])
    description = "terminal left unlocked in the ops room"
    assert entry["description_commitment"] == text_commitment(salt, "description", description)
    assert entry["description_commitment"] != hashlib.sha256(description.encode()).hexdigest()
    assert "terminal" not in str(entry)
    updated = harness.exchange.incidents.update_incident(
        harness.principals["JPN"], incident["id"], result="no evidence of access", measures=""
    )
    (update_view,) = updated["updates"]
    update = harness.app.ledger.entry(update_view["leaf_index"])["entry"]
    assert (update["action"], update["by"]) == ("update", "JPN")
    update_salt = base64.b64decode(update_view["salt"])
    assert update["result_commitment"] == text_commitment(update_salt, "result", "no evidence of access")
    assert update["measures_commitment"] == text_commitment(update_salt, "measures", "")
    assert "evidence" not in str(update)
    again = filed(harness)  # the same text filed again commits differently
    assert (
        harness.app.ledger.entry(again["leaf_index"])["entry"]["description_commitment"]
        != (entry["description_commitment"])
    )


def test_each_sides_updates_reach_the_other_side(harness: Harness) -> None:
    incident = filed(harness)
    incidents = harness.exchange.incidents
    harness.clock.advance(timedelta(hours=2))
    incidents.update_incident(
        harness.principals["JPN"], incident["id"], result="no evidence of access", measures="re-keyed terminal"
    )
    (to_kor,) = items(harness, "KOR", "incident_update")
    assert (to_kor["incident"], to_kor["by"], to_kor["measures"]) == (incident["id"], "JPN", "re-keyed terminal")
    assert items(harness, "JPN", "incident_update") == []
    harness.clock.advance(timedelta(hours=2))
    full = incidents.update_incident(harness.principals["KOR"], incident["id"], result="", measures="staff retrained")
    (to_jpn,) = items(harness, "JPN", "incident_update")
    assert (to_jpn["by"], to_jpn["measures"], to_jpn["result"]) == ("KOR", "staff retrained", "")
    assert [(u["by"], u["created_at"]) for u in full["updates"]] == [
        ("JPN", "2019-11-22T03:00+00:00"),
        ("KOR", "2019-11-22T05:00+00:00"),
    ]
    for party in ("JPN", "KOR"):
        assert incidents.incident(harness.principals[party], incident["id"]) == full
    assert harness.written()[1]["incidents"] == 1


def test_nobody_else_sees_or_touches_an_incident(harness: Harness) -> None:
    incident = filed(harness)
    (delivery,) = harness.deliveries("KOR")
    incidents = harness.exchange.incidents
    written = harness.written()
    with pytest.raises(UnknownEntity, match="no incident") as foreign:
        incidents.incident(harness.principals["USA"], incident["id"])
    with pytest.raises(UnknownEntity) as missing:
        incidents.incident(harness.principals["USA"], "i-missing")
    assert str(foreign.value).replace(incident["id"], "?") == str(missing.value).replace("i-missing", "?")
    with pytest.raises(UnknownEntity):
        incidents.update_incident(harness.principals["USA"], incident["id"], result="mine now", measures="")
    # the originator follows the incident, but only the recipient files one on its delivery
    with pytest.raises(UnknownEntity, match="no delivery"):
        incidents.file_incident(harness.principals["JPN"], delivery["id"], kind="loss", description="x")
    with pytest.raises(UnknownEntity, match="no delivery"):
        incidents.file_incident(harness.principals["KOR"], "d-missing", kind="loss", description="x")
    for role in ("operator", "auditor"):
        with pytest.raises(NotPermitted):
            incidents.incident(harness.principals[role], incident["id"])
        with pytest.raises(NotPermitted):
            incidents.file_incident(harness.principals[role], delivery["id"], kind="loss", description="x")
        with pytest.raises(NotPermitted):
            incidents.update_incident(harness.principals[role], incident["id"], result="x", measures="")
    assert harness.written() == written
    assert items(harness, "USA", "incident") == [] and items(harness, "USA", "incident_update") == []


@pytest.mark.parametrize(
    ("kind", "description", "message"),
    [
        ("theft", "stolen laptop", "kind must be one of loss, compromise, possible_compromise"),
        ("loss", "   ", "description: 1 to 8000 characters"),
        ("loss", "x" * 8001, "description: 1 to 8000 characters"),
    ],
)
def test_bad_incident_reports_are_refused_and_write_nothing(
    harness: Harness, kind: str, description: str, message: str
) -> None:
    harness.submit("JPN", recipients=["KOR"])
    (delivery,) = harness.deliveries("KOR")
    written = harness.written()
    with pytest.raises(InvalidInput, match=message):
        harness.exchange.incidents.file_incident(
            harness.principals["KOR"], delivery["id"], kind=kind, description=description
        )
    assert harness.written() == written
    assert items(harness, "JPN", "incident") == []


@pytest.mark.parametrize(("result", "measures"), [("", ""), ("  ", "\n"), ("x" * 8001, ""), ("", "y" * 8001)])
def test_empty_or_overlong_updates_are_refused(harness: Harness, result: str, measures: str) -> None:
    incident = filed(harness)
    written = harness.written()
    with pytest.raises(InvalidInput, match="give a result or measures"):
        harness.exchange.incidents.update_incident(
            harness.principals["JPN"], incident["id"], result=result, measures=measures
        )
    assert harness.written() == written
    assert items(harness, "KOR", "incident_update") == []
