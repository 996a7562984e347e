"""``gsomia report`` and ``gsomia demo --no-serve`` in process, as a newcomer reads them: the
derived timeline, the statistics, what the question changes, and the demo credentials."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.cli.cli_support import Gsomia


def test_the_impact_report_answers_the_scenarios_question(gsomia: Gsomia) -> None:
    run = gsomia("report")
    assert run.code == 0, run.err
    out = run.out
    assert "gsomia impact report" in out
    assert "suspension by KOR (jpn-kor-2019-suspension)" in out
    assert "2. Provisions under the agreement, by year" in out and "as known at 2019-08-22T18:20+09:00" in out
    assert "3. Had the termination taken effect on 2019-11-23" in out
    assert "JPN→KOR via USA under TISA (+PT4H, a modelling assumption), consent required" in out
    assert "No route at all" in out and "dprk.sigint" in out
    assert "Past reports of the record replayed: 44" in out and "r-2019-11-28-mrl" in out
    assert "Assumptions" in out and "TISA relay delay PT4H is a modelling assumption" in out


def test_a_report_on_a_what_if_that_changes_nothing_says_so(gsomia: Gsomia) -> None:
    run = gsomia("report", "--add-event", "JPN-DEU-ISA notice 2022-01-01 by DEU")
    assert run.code == 0, run.err
    assert "what-if: add JPN-DEU-ISA notice" in run.out
    assert "No flow between these parties changes." in run.out


def test_the_demo_loads_reports_and_issues_credentials_once(gsomia: Gsomia, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    run = gsomia("--db", db, "demo", "--no-serve")
    assert run.code == 0, run.err
    assert run.err.startswith("scenario japan-korea-2019: created in sqlite:///")
    assert "gsomia impact report" in run.out and "demo credentials" in run.out
    assert "export GSOMIA_URL=http://127.0.0.1:8000" in run.out
    # "Try, in another shell" with nothing served: the commands could only fail to connect
    assert "Nothing is served (--no-serve): start the exchange first, 'gsomia serve'." in run.out
    tokens = json.loads((tmp_path / "data" / "demo" / "tokens.json").read_text(encoding="utf-8"))
    assert f"JPN       token {tokens['JPN']}" in run.out
    again = gsomia("--db", db, "demo", "--no-serve", "--port", "9000", "--json")
    assert again.code == 0, again.err
    doc = json.loads(again.out)
    assert doc["demo"]["url"] == "http://127.0.0.1:9000"
    assert json.loads(Path(doc["demo"]["tokens_file"]).read_text(encoding="utf-8")) == tokens


@pytest.mark.parametrize(
    "args",
    [("serve", "--port", "65536"), ("demo", "--port", "0"), ("node", "serve", "--port", "99999")],
)
def test_a_port_outside_1_to_65535_is_refused_before_anything_starts(gsomia: Gsomia, args: tuple[str, ...]) -> None:
    run = gsomia(*args)  # such a port once started a server that could not bind and never exited
    assert run.code == 2 and "Invalid value for '--port'" in run.err, run.err


@pytest.mark.parametrize("args", [("serve", "--log-level", "verbose"), ("node", "serve", "--log-level", "loud")])
def test_an_unknown_log_level_is_refused_with_the_levels_there_are(gsomia: Gsomia, args: tuple[str, ...]) -> None:
    run = gsomia(*args)  # such a level was a KeyError traceback once the database was opened
    assert run.code == 2 and "Invalid value for '--log-level'" in run.err, run.err
    assert "'warning', 'info', 'debug', 'trace'" in run.err
