"""The exchange's use cases in process, on every backend (SQLite and a throwaway PostgreSQL):
submit, relay with consent, fetch and decrypt, acknowledge, incident, replay and conflict,
with the ledger verifying at the end."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import rfc8785

from gsomia.bootstrap import Settings, build
from gsomia.client.opening import open_delivery
from gsomia.crypto import PartyKeys, sign
from gsomia.errors import Conflict
from gsomia.services.exchange.access import Role
from gsomia.services.exchange.submissions import ReportSubmission


def test_the_exchange_on_every_backend(db_url: str, tmp_path: Path) -> None:
    whatif = tmp_path / "w.yaml"
    whatif.write_text("drop: [jpn-kor-2019-suspension]\n", encoding="utf-8")
    settings = Settings(db=db_url, data_dir=tmp_path, exercise_clock="2019-12-01T10:00+09:00", exercise_whatif=whatif)
    app = build(settings)
    try:
        app.scenarios.load("japan-korea-2019")
        ex = app.exchange
        principals = {}
        keys = {}
        for p in ("JPN", "KOR", "USA"):
            token = ex.identity.add_principal(role=Role.PARTY, name=p, party=p).token
            principals[p] = ex.identity.authenticate(token)
            keys[p] = PartyKeys.generate(p, "cnsa2" if p == "USA" else "classic")  # both profiles
            ex.keys.register(principals[p], p, keys[p].public_keys())
        report: dict[str, Any] = {
            "id": "store-1",
            "originator": "JPN",
            "topic": "dprk.missile.launch",
            "level": "極秘",
            "caveats": {"rel_to": None, "noforn": False, "orcon": False},
            "created": "2019-12-01T09:59:00+09:00",
            "recipients": ["KOR", "USA"],
            "content_type": "text/plain",
            "payload": base64.b64encode(b"track").decode(),
        }
        signature = base64.b64encode(sign(keys["JPN"], bytes(rfc8785.dumps(report)))).decode()
        sub = ReportSubmission(report=report, signature=signature, key=keys["JPN"].fingerprint())
        first = ex.submissions.submit(principals["JPN"], sub)
        assert first.created
        outcomes = {r["recipient"]: r["outcome"] for r in first.body["recipients"]}
        assert outcomes == {"KOR": "pending_consent", "USA": "delivered"}
        again = ex.submissions.submit(principals["JPN"], sub)
        assert (again.created, again.body) == (False, first.body)
        other = {**report, "payload": base64.b64encode(b"another").decode()}
        other_sig = base64.b64encode(sign(keys["JPN"], bytes(rfc8785.dumps(other)))).decode()
        with pytest.raises(Conflict):
            ex.submissions.submit(
                principals["JPN"], ReportSubmission(report=other, signature=other_sig, key=keys["JPN"].fingerprint())
            )

        (pending,) = ex.consents.consents(principals["JPN"])
        granted = ex.consents.answer(principals["JPN"], pending["id"], grant=True)
        assert granted["outcome"]["relayed"] is True
        items, _cursor = ex.deliveries.inbox(principals["KOR"])
        (delivery,) = [i for i in items if i["type"] == "delivery"]
        view = ex.deliveries.delivery(principals["KOR"], delivery["id"])
        assert view["via"] == "USA"
        assert open_delivery(view, keys["KOR"]) == b"track"
        usa_items, _ = ex.deliveries.inbox(principals["USA"])
        usa_direct = next(i for i in usa_items if i["purpose"] == "direct")
        usa_view = ex.deliveries.delivery(principals["USA"], usa_direct["id"])
        assert usa_view["profile"] == "cnsa2"
        assert open_delivery(usa_view, keys["USA"]) == b"track"
        ack = ex.deliveries.acknowledge(principals["KOR"], delivery["id"], need_to_know=True)
        assert ack["state"] == "acknowledged"
        incident = ex.incidents.file_incident(principals["KOR"], delivery["id"], kind="loss", description="lost")
        ex.incidents.update_incident(principals["JPN"], incident["id"], result="found", measures="")
        jpn_items, _ = ex.deliveries.inbox(principals["JPN"])
        assert [i["type"] for i in jpn_items] == ["consent_request", "incident"]
        stats = ex.deliveries.stats(
            ex.identity.authenticate(ex.identity.add_principal(role=Role.AUDITOR, name="a").token)
        )
        assert stats["reports"] == 1
        assert stats["deliveries"] == {"acknowledged": 1, "ready": 2}  # fetching changes nothing
        assert app.ledger.verify().problem is None
    finally:
        app.close()
