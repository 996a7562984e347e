"""``gsomia scenario`` in process: validate lists every problem with its file and line and loads
nothing, load is all-or-nothing and idempotent, and a synthetic network validates."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from gsomia.services.analysis.scenarios import resolve
from gsomia.storage.store import Store, StoredEvent
from tests.unit.cli.cli_support import Gsomia

SMALL = ("--parties", "5", "--agreements", "6", "--hubs", "1", "--topics", "2", "--years", "2")
BROKEN = "scenario:\n  name: x\nparties:\n  - id: jpn\n"
_TERMINATION = (
    '  - {id: jpn-kor-2024-termination, agreement: JPN-KOR-GSOMIA, kind: termination, at: "2024-01-01", '
    'by: KOR, source: "[test]"}\n'
)
"""A changed scenario in which the agreement ends before the notice an operator recorded."""


def test_the_bundled_scenario_validates(gsomia: Gsomia) -> None:
    run = gsomia("scenario", "validate", "japan-korea-2019")
    assert run.code == 0, run.err
    assert run.out.startswith("japan-korea-2019: valid — japan-korea-2019: 11 parties, 14 agreements, 30 events")
    doc = json.loads(gsomia("scenario", "validate", "japan-korea-2019", "--json").out)
    assert (doc["valid"], doc["parties"], doc["reports"]) == (True, 11, 44)


def test_validate_lists_every_problem_with_its_line(gsomia: Gsomia, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BROKEN, encoding="utf-8")
    run = gsomia("scenario", "validate", str(bad))
    assert run.code == 3
    lines = run.err.splitlines()
    assert f"{bad}:4: missing field 'name' (parties.0.name)" in lines
    assert lines[-1] == "error: 4 problem(s) found; nothing was loaded"
    as_json = gsomia("scenario", "validate", str(bad), "--json")
    doc = json.loads(as_json.out)
    assert as_json.code == 3 and doc["valid"] is False
    assert {"file": str(bad), "line": 4, "path": "parties.0.name", "message": "missing field 'name'"} in doc["problems"]
    missing = gsomia("scenario", "validate", str(tmp_path / "nope.yaml"))
    assert missing.code == 4 and "give a file path or a bundled name" in missing.err


def test_loading_is_idempotent_and_never_mixes_two_scenarios(gsomia: Gsomia, tmp_path: Path) -> None:
    again = gsomia("scenario", "load", "japan-korea-2019")
    assert again.code == 0, again.err
    assert again.out.startswith("japan-korea-2019: unchanged (30 events, 44 reports, 9 provisions) in sqlite:///")
    synthetic = tmp_path / "syn.yaml"
    assert gsomia("scenario", "synthetic", "--out", str(synthetic), *SMALL).code == 0
    other = gsomia("scenario", "load", str(synthetic))
    assert other.code == 6 and "use another --db, or --replace to discard it" in other.err
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    loaded = json.loads(gsomia("--db", fresh, "scenario", "load", str(synthetic), "--json").out)
    assert (loaded["outcome"], loaded["name"], loaded["reports"]) == ("created", "synthetic-5-6", 0)
    bad = tmp_path / "bad.yaml"
    bad.write_text(BROKEN, encoding="utf-8")
    refused = gsomia("--db", fresh, "scenario", "load", str(bad))
    assert refused.code == 3
    assert json.loads(gsomia("--db", fresh, "status", "--json").out)  # the synthetic network is still there


def test_a_synthetic_network_is_written_and_validates(gsomia: Gsomia, tmp_path: Path) -> None:
    out = tmp_path / "syn.yaml"
    run = gsomia("scenario", "synthetic", "--out", str(out), *SMALL)
    assert run.code == 0, run.err
    assert run.err.startswith(f"wrote {out}: 5 parties, 6 agreements, ")
    assert gsomia("scenario", "validate", str(out)).code == 0
    impossible = gsomia("scenario", "synthetic", "--out", str(tmp_path / "x.yaml"), "--parties", "1")
    assert impossible.code == 4 and "need more than 1 parties" in impossible.err
    unwritable = gsomia("scenario", "synthetic", "--out", str(tmp_path / "no" / "dir" / "x.yaml"), *SMALL)
    assert unwritable.code == 4 and unwritable.err.startswith("error: cannot write ")


def test_the_bundled_scenarios_and_the_schema_are_listed(gsomia: Gsomia) -> None:
    listed = gsomia("scenario", "list")
    (name, path) = listed.out.split()
    assert name == "japan-korea-2019" and Path(path).name == "japan-korea-2019.yaml" and Path(path).exists()
    assert json.loads(gsomia("scenario", "list", "--json").out).keys() == {"japan-korea-2019"}
    schema = json.loads(gsomia("scenario", "schema").out)
    assert {"scenario", "parties", "agreements", "events"} <= set(schema["properties"])


def test_a_scenario_is_never_replaced_under_events_an_operator_recorded(
    gsomia: Gsomia, scenario_db: str, tmp_path: Path
) -> None:
    store = Store(scenario_db)
    notice = StoredEvent(
        id="op-notice",
        agreement="JPN-KOR-GSOMIA",
        kind="notice",
        at=datetime(2026, 12, 1, tzinfo=UTC),
        by="KOR",
        origin="operator",
    )
    store.add_event(notice, now=datetime(2026, 12, 1, tzinfo=UTC))
    store.close()
    synthetic = tmp_path / "syn.yaml"
    assert gsomia("scenario", "synthetic", "--out", str(synthetic), *SMALL).code == 0
    other = gsomia("scenario", "load", str(synthetic), "--replace")  # discarded the recorded notice, before
    assert other.code == 6 and "1 agreement event(s) an operator recorded" in other.err, other.err
    # the same scenario changed so that it contradicts the recorded notice: refused, not stored to
    # fail every later read
    bundled = resolve("japan-korea-2019").read_text(encoding="utf-8")
    anchor = "  # --- TISA ---"
    ended = bundled.replace(anchor, _TERMINATION + anchor, 1)
    changed = tmp_path / "japan-korea-2019.yaml"
    changed.write_text(ended, encoding="utf-8")
    contradicts = gsomia("scenario", "load", str(changed))
    assert contradicts.code == 6 and "contradicts the agreement events an operator recorded" in contradicts.err
    status = gsomia("status", "--json")
    assert status.code == 0, status.err


def test_a_folder_or_a_device_given_as_the_scenario_is_named_as_such(gsomia: Gsomia, tmp_path: Path) -> None:
    folder = gsomia("scenario", "validate", str(tmp_path))
    assert folder.code == 4 and f"'{tmp_path}' is a folder: give a scenario file" in folder.err
    device = gsomia("scenario", "validate", "/dev/zero")
    assert device.code == 4 and "'/dev/zero' is not a regular file" in device.err
