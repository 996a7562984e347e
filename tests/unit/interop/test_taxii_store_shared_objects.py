"""Objects several originators send alike are no conflict in the inbox: the standard TLP 2.0
marking definitions (fixed ids, fixed content) are stored once whoever sends them, and an
identical copy of another originator's object is logged at debug; another version under
another originator's id stays refused with a warning."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from gsomia.interop.stix import DeliveredMarking, NationalMarking, national_marking_definition
from gsomia.node.taxii.service import inbox_objects
from gsomia.node.taxii.store import EngineTransactions, NewObject, TaxiiStore

NOW = datetime(2019, 11, 22, 1, 0, tzinfo=UTC)
LOGGER = "gsomia.node.taxii.store"
# As oasis-open/cti-stix-common-objects publishes it (extension-definition-specifications/tlp-2.0).
TLP_AMBER: dict[str, Any] = {
    "type": "marking-definition",
    "spec_version": "2.1",
    "id": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "created": "2022-10-01T00:00:00.000Z",
    "name": "TLP:AMBER",
    "extensions": {
        "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d": {
            "extension_type": "property-extension",
            "tlp_2_0": "amber",
        }
    },
}
SHARED: dict[str, Any] = {
    "type": "attack-pattern",
    "spec_version": "2.1",
    "id": "attack-pattern--0000000a-0000-4000-8000-000000000000",
    "created": "2019-11-22T00:10:00.000Z",
    "modified": "2019-11-22T00:10:00.000Z",
    "name": "Ballistic missile launch",
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TaxiiStore]:
    engine = create_engine(f"sqlite:///{tmp_path / 'taxii.db'}")
    yield TaxiiStore(EngineTransactions(engine))
    engine.dispose()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


def _add(store: TaxiiStore, *items: tuple[str, dict[str, Any]]) -> list[bool]:
    added = store.add("inbox", [NewObject(body=body, origin=origin) for origin, body in items], now=NOW)
    return [a for _, _, a in added]


def test_the_standard_tlp_2_0_definitions_from_several_originators_are_stored_once_without_a_warning(
    store: TaxiiStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    assert _add(store, ("JPN", TLP_AMBER)) == [True]
    assert _add(store, ("USA", TLP_AMBER)) == [False]
    assert _add(store, ("GBR", TLP_AMBER), ("AUS", dict(TLP_AMBER))) == [False, False]
    assert _warnings(caplog) == []
    assert store.bodies("inbox", [TLP_AMBER["id"]]) == {TLP_AMBER["id"]: TLP_AMBER}
    assert store.count("inbox") == 1


@pytest.mark.parametrize(
    "change",
    [{"name": "TLP:AMBER (ours)"}, {"created": "2023-01-01T00:00:00.000Z"}, {"description": "an addition"}],
)
def test_a_tlp_2_0_id_with_other_content_is_stored_by_no_originator(
    store: TaxiiStore, caplog: pytest.LogCaptureFixture, change: dict[str, str]
) -> None:
    assert _add(store, ("JPN", {**TLP_AMBER, **change})) == [False]
    assert any("not the standard's" in w for w in _warnings(caplog)), caplog.text
    assert _add(store, ("USA", TLP_AMBER)) == [True]  # the standard's, from whoever sends it
    assert store.bodies("inbox", [TLP_AMBER["id"]]) == {TLP_AMBER["id"]: TLP_AMBER}


def test_an_identical_copy_of_another_originators_object_is_no_warning(
    store: TaxiiStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    assert _add(store, ("JPN", SHARED)) == [True]
    assert _add(store, ("USA", dict(SHARED))) == [False]
    assert _add(store, ("GBR", dict(SHARED)), ("JPN", {**SHARED, "id": SHARED["id"][:-1] + "1"})) == [False, True]
    assert _warnings(caplog) == []
    copies = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.DEBUG]
    assert copies and "identical" in copies[0].getMessage()


def test_an_identical_copy_in_the_same_call_is_no_warning(store: TaxiiStore, caplog: pytest.LogCaptureFixture) -> None:
    assert _add(store, ("JPN", SHARED), ("USA", dict(SHARED))) == [True, False]
    assert _warnings(caplog) == []


@pytest.mark.parametrize(
    "other",
    [
        {**SHARED, "modified": "2026-06-01T00:00:00.000Z", "name": "a decoy"},  # a later version
        {**SHARED, "name": "a decoy"},  # other content under the same version
    ],
)
def test_another_originators_different_version_stays_refused_with_a_warning(
    store: TaxiiStore, caplog: pytest.LogCaptureFixture, other: dict[str, Any]
) -> None:
    assert _add(store, ("JPN", SHARED)) == [True]
    assert _add(store, ("USA", other)) == [False]
    (warning,) = _warnings(caplog)
    assert "1 object(s) not stored, their ids being another originator's" in warning
    assert f"{SHARED['id']} from USA, held by JPN" in warning
    assert store.bodies("inbox", [SHARED["id"]]) == {SHARED["id"]: SHARED}


def _delivery(party: str, n: int, extra: dict[str, Any]) -> list[NewObject]:
    marking = national_marking_definition(NationalMarking(party=party, level="SECRET"))
    indicator = {
        **SHARED,
        "type": "indicator",
        "id": f"indicator--00000000-0000-4000-8000-{n:012d}",
        "pattern": "[ipv4-addr:value = '198.51.100.1']",
        "pattern_type": "stix",
        "valid_from": "2019-11-22T00:58:00Z",
        "object_marking_refs": [marking["id"], TLP_AMBER["id"]],
    }
    delivered = DeliveredMarking(
        recipient="KOR",
        level="군사II급비밀",
        originator=NationalMarking(party=party, level="SECRET"),
        common_level="SECRET",
        banner=f"군사II급비밀 ({party} SECRET)",
        agreement=None,
        delivery=f"d-{n}",
        ledger_index=n,
    )
    bundle = {"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000001"}
    return inbox_objects(
        delivered=delivered,
        topic="dprk.missile.launch",
        content_type="application/stix+json;version=2.1",
        payload=json.dumps({**bundle, "objects": [marking, TLP_AMBER, extra, indicator]}).encode(),
        created=NOW,
    )


def test_deliveries_of_several_originators_with_tlp_and_a_common_definition_store_without_a_warning(
    store: TaxiiStore, caplog: pytest.LogCaptureFixture
) -> None:
    # The TLP 2.0 definition and a third party's extension definition (served unchanged) come
    # with every originator's delivery.
    extension: dict[str, Any] = {
        "type": "extension-definition",
        "spec_version": "2.1",
        "id": "extension-definition--3a65884d-005a-4290-8335-cb2d778a83ce",
        "created_by_ref": "identity--b3bca3c2-1f3d-4b54-b44f-dac42c3a8f01",
        "created": "2022-01-01T00:00:00.000Z",
        "modified": "2022-01-01T00:00:00.000Z",
        "name": "ISA ACS 3.0",
        "schema": "https://example.invalid/acs.json",
        "version": "1.0.0",
        "extension_types": ["property-extension"],
    }
    for n, party in enumerate(("JPN", "USA", "GBR"), start=1):
        store.add("inbox", _delivery(party, n, extension), now=NOW)
    assert _warnings(caplog) == []
    served = store.bodies("inbox", [TLP_AMBER["id"], extension["id"]])
    assert served == {TLP_AMBER["id"]: TLP_AMBER, extension["id"]: extension}
