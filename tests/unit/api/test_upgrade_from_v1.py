"""An exchange's database written by the first release (schema 0003: unsalted commitments, the
old delivery markings, no witnesses), opened by this one: migrated on start, then every
delivery served in today's shapes, opened and verified by today's client, its ledger entries
checked, the same signed report resubmitted recognised as a retry, and the ledger verified.

The data in ``tests/data/legacy-v1`` was written by that release's own commands; see its README.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from gsomia.api.app import create_app
from gsomia.api.schemas import DeliveryOut
from gsomia.bootstrap import App, Settings, build
from gsomia.client.http import ExchangeClient
from gsomia.client.opening import check_included, check_ledgered, open_delivery, verify_origin
from gsomia.crypto import read_private_keyfile
from gsomia.crypto.ledger_key import LedgerKey
from gsomia.crypto.signing import sign
from gsomia.errors import Conflict
from gsomia.ledger.entries import entry_bytes
from gsomia.node.keyring import KeyRing
from gsomia.node.store import NodeStore, deliveries
from gsomia.node.sync import Syncer
from gsomia.node.witness import LedgerWitness
from tests.harness import InProcessTransport

LEGACY = Path(__file__).parents[2] / "data" / "legacy-v1"


@pytest.fixture
def upgraded(tmp_path: Path) -> Iterator[tuple[App, FastAPI]]:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    for name in ("gsomia.db", "exchange-ledger.key", "exchange.kek"):
        shutil.copyfile(LEGACY / name, data / name)
        (data / name).chmod(0o600)  # git keeps no modes: secrets are refused unless 0600
    for name in ("jpn.keys", "kor.keys"):
        shutil.copyfile(LEGACY / name, tmp_path / name)
        (tmp_path / name).chmod(0o600)
    app = build(Settings(data_dir=data), clock=lambda: datetime(2026, 12, 6, tzinfo=UTC))
    try:
        yield app, create_app(app)
    finally:
        app.close()


def client(api: FastAPI, party: str) -> ExchangeClient:
    token = json.loads((LEGACY / "tokens.json").read_text())[party]
    return ExchangeClient("http://exchange.test", token=token, transport=InProcessTransport(api))


def test_the_first_releases_database_is_migrated_to_the_head(upgraded: tuple[App, FastAPI], tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "data" / "gsomia.db") as db:
        (version,) = db.execute("select version_num from alembic_version").fetchone()
    heads = sorted(p.name for p in (Path(__file__).parents[3] / "src/gsomia/storage/migrations/versions").glob("0*.py"))
    assert version == heads[-1].split("_")[0]


def test_an_old_delivery_is_served_opened_verified_and_found_in_the_ledger(
    upgraded: tuple[App, FastAPI], tmp_path: Path
) -> None:
    _, api = upgraded
    delivery_id = (LEGACY / "delivery.txt").read_text().strip()
    with client(api, "KOR") as kor:
        view = kor.delivery(delivery_id)
        DeliveryOut.model_validate(view)  # today's shape, not the first release's
        assert view["marking"]["banner"] == "군사II급비밀 (JPN 極秘)"
        payload = open_delivery(view, read_private_keyfile(tmp_path / "kor.keys"))
        assert payload == (LEGACY / "track.json").read_bytes()
        verify_origin(view, payload, kor.public_keys("JPN")["keys"])
        entries = [kor.ledger_entry(int(i)) for i in (view["origin"]["leaf_index"], view["leaf_index"])]
        check_ledgered(view, *entries)
        key = LedgerKey.parse(json.dumps(kor.ledger_key()))
        for doc in entries:
            check_included(doc, kor.ledger_inclusion(int(doc["index"])), key)


def _first_release_body(app: App, tmp_path: Path) -> dict[str, Any]:
    """The body the first release's ``gsomia client submit`` sent: the report with its payload
    inline, signed over its RFC 8785 bytes (Ed25519 is deterministic: the same signature)."""
    with sqlite3.connect(f"file:{LEGACY / 'gsomia.db'}?mode=ro&immutable=1", uri=True) as db:  # as that release left it
        db.row_factory = sqlite3.Row
        row = db.execute("select * from exchange_reports where id = 'legacy-1'").fetchone()
    report = {
        "id": row["id"],
        "originator": row["originator"],
        "topic": row["topic"],
        "level": row["level"],
        "caveats": json.loads(row["caveats"]),
        "created": row["created"],
        "recipients": json.loads(row["recipients"]),
        "content_type": row["content_type"],
        "payload": base64.b64encode((LEGACY / "track.json").read_bytes()).decode("ascii"),
    }
    keys = read_private_keyfile(tmp_path / "jpn.keys")
    signature = base64.b64encode(sign(keys, entry_bytes(report))).decode("ascii")
    assert signature == row["signature"]  # the very bytes that release signed and stored
    return {"report": report, "signature": signature, "key": keys.fingerprint()}


def test_the_same_signed_report_resubmitted_is_a_retry_and_a_changed_one_a_conflict(
    upgraded: tuple[App, FastAPI], tmp_path: Path
) -> None:
    app, api = upgraded
    body = _first_release_body(app, tmp_path)
    with client(api, "JPN") as jpn:
        size = app.ledger.size()
        first = jpn.request("POST", "/api/v1/reports", json=body)
        assert first.status_code == 200
        assert first.json()["report"] == "legacy-1"
        changed = {**body, "report": {**body["report"], "topic": "dprk.sigint"}}
        changed["signature"] = base64.b64encode(
            sign(read_private_keyfile(tmp_path / "jpn.keys"), entry_bytes(changed["report"]))
        ).decode("ascii")
        with pytest.raises(Conflict, match="already used"):
            jpn.submit(changed)
        assert app.ledger.size() == size  # nothing written


def test_the_upgraded_ledger_verifies(upgraded: tuple[App, FastAPI]) -> None:
    app, _ = upgraded
    report = app.ledger.verify()
    assert report.problem is None, report.problem
    assert report.entries == app.ledger.size()


def test_a_party_node_verifies_an_old_delivery_of_an_upgraded_exchange(
    upgraded: tuple[App, FastAPI], tmp_path: Path
) -> None:
    # the ledger entries of the first release hold the commitment as "digest" and the marking in
    # its old shape (docs/protocol.md §4.5): the delivery is genuine, and must verify
    _, api = upgraded
    store = NodeStore(tmp_path / "node.db", secrets.token_bytes(32))
    with client(api, "KOR") as kor:
        key = LedgerKey.parse(json.dumps(kor.ledger_key()))
    keyring = KeyRing(store)
    keyring.add(read_private_keyfile(tmp_path / "kor.keys"), state="current")
    witness = LedgerWitness(store, key=key, cosigner=None, publish=lambda _kind, _doc: None)
    syncer = Syncer(
        store,
        party="KOR",
        keyring=keyring,
        witness=witness,
        connect=lambda: client(api, "KOR"),
        publish=lambda k, d: None,
    )
    try:
        result = syncer.once()
    finally:
        syncer.close()
    delivery_id = (LEGACY / "delivery.txt").read_text().strip()
    with store.read() as c:
        row = c.execute(
            select(deliveries.c.state, deliveries.c.detail).where(deliveries.c.delivery_id == delivery_id)
        ).one()
    store.close()
    assert (result.verified, result.quarantined) == (1, 0), row
    assert row.state == "verified", row
