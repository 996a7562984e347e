"""The CLI as a subprocess: JSON contracts, the impact report and error handling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(db: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GSOMIA_DB": db, "COLUMNS": "200"}
    p = subprocess.run(
        [sys.executable, "-m", "gsomia", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    if ok:
        assert p.returncode == 0, p.stderr
    return p


def js(db: str, *args: str) -> Any:
    return json.loads(run(db, *args, "--json").stdout)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'g.db'}"
    run(url, "scenario", "load", "japan-korea-2019")
    return url


def test_status_json_contract(db: str) -> None:
    rows = js(db, "status", "--at", "2019-11-22T17:00+09:00")
    g = next(r for r in rows if r["agreement"] == "JPN-KOR-GSOMIA")
    assert {"agreement", "state", "in_force", "term_end", "notice_deadline", "ends_at", "events"} <= set(g)
    assert g["state"] == "notice_pending" and g["in_force"] is True
    assert g["ends_at"] == "2019-11-23T00:00+09:00"
    assert g["notice_deadline"] == "2019-08-24"
    assert [e["id"] for e in g["events"]][-1] == "jpn-kor-2019-notice"
    later = js(db, "status", "--at", "2019-11-22T19:00+09:00", "--agreement", "JPN-KOR-GSOMIA")
    assert later[0]["state"] == "notice_suspended" and later[0]["in_force"] is True and later[0]["ends_at"] is None


def test_status_with_whatif_drop(db: str) -> None:
    rows = js(
        db, "status", "--at", "2020-01-01", "--agreement", "JPN-KOR-GSOMIA", "--drop-event", "jpn-kor-2019-suspension"
    )
    assert rows[0]["state"] == "terminated" and rows[0]["ends_at"] == "2019-11-23T00:00+09:00"


def test_status_with_add_event(db: str) -> None:
    rows = js(
        db,
        "status",
        "--at",
        "2019-12-01",
        "--agreement",
        "JPN-KOR-GSOMIA",
        "--drop-event",
        "jpn-kor-2019-notice",
        "--drop-event",
        "jpn-kor-2019-suspension",
        "--drop-event",
        "jpn-kor-2023-withdrawal",
        "--add-event",
        "JPN-KOR-GSOMIA notice 2019-08-25T12:00+09:00 by KOR",
    )
    assert rows[0]["state"] == "notice_pending" and rows[0]["ends_at"] == "2020-11-23T00:00+09:00"


def test_route_json_contract_relay(db: str) -> None:
    r = js(
        db,
        "route",
        "JPN",
        "KOR",
        "--topic",
        "dprk.missile.launch",
        "--level",
        "極秘",
        "--at",
        "2019-12-01",
        "--drop-event",
        "jpn-kor-2019-suspension",
    )
    assert {"decision", "path", "agreements", "consent_required", "marking", "delay", "assumptions", "reasons"} <= set(
        r
    )
    assert r["decision"] == "relay" and r["path"] == ["JPN", "USA", "KOR"] and r["consent_required"] is True
    assert r["marking"] == r["marking"] | {
        "originator": "JPN",
        "originator_level": "極秘",
        "recipient": "KOR",
        "recipient_level": "군사II급비밀",
        "common_level": "SECRET",
    }
    assert r["delay"] == "PT4H" and r["assumptions"]
    assert all({"rule", "message"} <= set(x) for x in r["reasons"])


def test_route_deny_cites_art_4(db: str) -> None:
    r = js(db, "route", "JPN", "KOR", "--topic", "dprk.missile.launch", "--level", "機密", "--at", "2018-01-01")
    assert r["decision"] == "deny"
    assert any(x["rule"] == "level" and "Art. 4" in x["message"] for x in r["reasons"])


def test_whatif_file(db: str, tmp_path: Path) -> None:
    f = tmp_path / "w.yaml"
    f.write_text("name: no-suspension\ndrop: [jpn-kor-2019-suspension]\n", encoding="utf-8")
    r = js(
        db,
        "route",
        "JPN",
        "KOR",
        "--topic",
        "dprk.military.movement",
        "--level",
        "極秘",
        "--at",
        "2019-12-01",
        "--whatif",
        str(f),
    )
    assert r["decision"] == "deny" and any(x["rule"] == "scope" for x in r["reasons"])


def test_coverage_and_gaps_contracts(db: str) -> None:
    cov = js(db, "coverage", "--at", "2019-12-01", "--pair", "JPN,KOR", "--drop-event", "jpn-kor-2019-suspension")
    by_topic = {c["topic"]: c for c in cov}
    assert {"from", "to", "topic", "route", "via", "delay"} <= set(by_topic["dprk.missile.launch"])
    assert by_topic["dprk.missile.launch"] | {} == by_topic["dprk.missile.launch"]
    assert (by_topic["dprk.missile.launch"]["route"], by_topic["dprk.missile.launch"]["via"]) == ("relay", "USA")
    assert by_topic["dprk.military.movement"]["route"] == "none"
    gaps = js(
        db,
        "gaps",
        "--from",
        "2019-01-01",
        "--to",
        "2021-01-01",
        "--pair",
        "JPN,KOR",
        "--topic",
        "dprk.military.movement",
        "--drop-event",
        "jpn-kor-2019-suspension",
    )
    assert gaps == [
        {
            "from": "JPN",
            "to": "KOR",
            "topic": "dprk.military.movement",
            "start": "2019-11-23T00:00+09:00",
            "end": "2021-01-01T00:00+09:00",
        }
    ]


def test_stats_as_known_at_the_announcement(db: str) -> None:
    s = js(db, "stats", "--agreement", "JPN-KOR-GSOMIA", "--at", "2019-08-22T18:20+09:00")
    assert s["by_year"] == {"2016": 1, "2017": 19, "2018": 2, "2019": 7} and s["total"] == 29
    assert {"method", "statistic", "p_value", "direction"} <= set(s["trend"])
    later = js(db, "stats", "--agreement", "JPN-KOR-GSOMIA", "--at", "2019-12-31")
    assert later["by_year"]["2019"] > 7


def test_report_text_and_json(db: str) -> None:
    text = run(db, "report").stdout
    assert "Had the termination taken effect on 2019-11-23" in text
    assert "dprk.military.movement" in text and "via USA" in text and "assum" in text
    assert "no trend can be significant" in text
    rep = js(db, "report")
    kinds = {(c["from"], c["to"], c["topic"], c["kind"]) for c in rep["whatif"]["changes"]}
    assert ("JPN", "KOR", "dprk.missile.launch", "rerouted") in kinds
    assert ("JPN", "KOR", "dprk.military.movement", "stopped") in kinds
    assert rep["stats_then"]["total"] == 29
    assert [r["report"] for r in rep["whatif"]["reports_changed"]] == ["r-2019-11-28-mrl"]


def test_whatif_command(db: str) -> None:
    c = js(
        db,
        "whatif",
        "--drop-event",
        "jpn-kor-2019-suspension",
        "--parties",
        "JPN,KOR",
        "--topic",
        "dprk.missile.launch",
    )
    assert [x["kind"] for x in c["changes"]] == ["rerouted", "rerouted"]


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (
            ["route", "JPN", "KOR", "--topic", "dprk.missile.launch", "--level", "極秘", "--at", "yesterday"],
            4,
            "invalid instant",
        ),
        (["status", "--agreement", "NOPE"], 5, "unknown agreement"),
        (["status", "--drop-event", "nope"], 5, "unknown recorded event 'nope' (known: "),
        (["status", "--add-event", "JPN-KOR-GSOMIA suspension 2018-01-01"], 4, "nothing to suspend"),
        (["coverage", "--topic", "dprk.weather"], 5, "unknown topic"),
        (["gaps", "--from", "2019-01-01"], 4, "both --from and --to"),
    ],
)
def test_errors_are_one_clear_line(db: str, args: list[str], code: int, fragment: str) -> None:
    p = run(db, *args, ok=False)
    assert p.returncode == code, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]


def test_validate_lists_every_problem_with_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = (ROOT / "src/gsomia/scenario/data/japan-korea-2019.yaml").read_text(encoding="utf-8")
    bad.write_text(
        text.replace("hub: USA ", "hub: CHN ").replace("parties: [JPN, KOR]\n", "parties: [JPN, XXX]\n", 1),
        encoding="utf-8",
    )
    p = subprocess.run(
        [sys.executable, "-m", "gsomia", "scenario", "validate", str(bad)], capture_output=True, text=True, check=False
    )
    assert p.returncode == 3
    problems = [ln for ln in p.stderr.splitlines() if ln.startswith(str(bad) + ":")]
    assert len(problems) >= 2
    assert any("unknown party 'XXX'" in ln for ln in problems)
    assert any("hub CHN is not a party" in ln for ln in problems)


def test_load_of_a_bad_file_loads_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "scenario: {name: x}\nparties: []\nagreements: []\nevents: [{id: e1, agreement: NOPE, kind: signature, at: '2019-01-01'}]\n",
        encoding="utf-8",
    )
    p = run(url, "scenario", "load", str(bad), ok=False)
    assert p.returncode == 3
    assert run(url, "status", ok=False).returncode == 7


def test_schema_prints_json_schema() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "gsomia", "scenario", "schema"], capture_output=True, text=True, check=True
    )
    schema = json.loads(p.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/") and "agreements" in schema["properties"]


def test_help_teaches() -> None:
    p = subprocess.run([sys.executable, "-m", "gsomia", "--help"], capture_output=True, text=True, check=True)
    assert "gsomia demo" in p.stdout and "--json" in p.stdout


def test_demo_loads_reports_and_issues_credentials(tmp_path: Path) -> None:
    env = {**os.environ, "GSOMIA_DB": f"sqlite:///{tmp_path / 'd.db'}", "GSOMIA_DATA_DIR": str(tmp_path)}
    p = subprocess.run(
        [sys.executable, "-m", "gsomia", "demo", "--no-serve", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["stats_then"]["total"] == 29 and data["demo"]["url"] == "http://127.0.0.1:8000"
    tokens = json.loads((tmp_path / "demo" / "tokens.json").read_text(encoding="utf-8"))
    assert set(tokens) == {"JPN", "KOR", "USA", "operator", "auditor"}
    assert (tmp_path / "demo" / "tokens.json").stat().st_mode & 0o077 == 0
    assert all((tmp_path / "demo" / f"{p}.keys").stat().st_mode & 0o077 == 0 for p in ("JPN", "KOR", "USA"))
    again = subprocess.run(
        [sys.executable, "-m", "gsomia", "demo", "--no-serve", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert (
        again.returncode == 0 and json.loads((tmp_path / "demo" / "tokens.json").read_text(encoding="utf-8")) == tokens
    )


def test_demo_refuses_a_busy_port_before_doing_anything(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "GSOMIA_DB": f"sqlite:///{tmp_path / 'd.db'}", "GSOMIA_DATA_DIR": str(tmp_path)}
        p = subprocess.run(
            [sys.executable, "-m", "gsomia", "demo", "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    assert p.returncode == 4 and "give another --port" in p.stderr
