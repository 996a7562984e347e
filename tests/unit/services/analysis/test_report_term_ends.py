"""The impact report lists each term end of the question's agreement once, also for a term
that is not renewed and ends inside the analysis window (docs/design.md §3)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gsomia.scenario.loader import parse_scenario_document
from gsomia.scenario.yamlfile import read_yaml
from gsomia.services.analysis.service import AnalysisService
from tests.conftest import SCENARIO, kst


class _Document:
    """A stored record that never changes."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def version(self) -> str | None:
        return "1"

    def read_document(self) -> dict[str, Any] | None:
        return self.document

    def read_versioned_document(self) -> tuple[dict[str, Any], str] | None:
        return self.document, "1"


def _one_term_gsomia() -> dict[str, Any]:
    """The bundled scenario, its Japan–Korea GSOMIA given one year without renewal (so it
    expires on 2017-11-23, inside the 2014–2024 window) and none of its later events."""
    doc: dict[str, Any] = read_yaml(SCENARIO.read_text(encoding="utf-8"), str(SCENARIO))[0]
    for agreement in doc["agreements"]:
        if agreement["id"] == "JPN-KOR-GSOMIA":
            agreement["term"] = {"years": 1, "renewal_years": None}
    doc["events"] = [
        e for e in doc["events"] if e["agreement"] != "JPN-KOR-GSOMIA" or e["kind"] in ("signature", "entry_into_force")
    ]
    doc["provisions"] = [
        p
        for p in doc["provisions"]
        if p["agreement"] != "JPN-KOR-GSOMIA" or str(p.get("date", p.get("from"))) < "2017-11-23"
    ]
    doc["scenario"]["question"]["whatif"] = {"name": "no-usa-signature", "drop": ["tisa-signature-usa"]}
    del doc["scenario"]["question"]["stats_at"]
    parse_scenario_document(doc)  # a valid record
    return doc


def test_a_term_without_renewal_ends_once_in_the_report() -> None:
    service = AnalysisService(_Document(_one_term_gsomia()), clock=lambda: datetime(2024, 1, 1, tzinfo=UTC))
    report = service.report()
    assert [end for end, _ in report.deadlines] == [kst("2017-11-23")]
