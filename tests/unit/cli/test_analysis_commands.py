"""The analysis commands as a user reads them (text, not --json): agreement status, one release
decision with its path, marking and reasons, coverage, gaps, provision statistics and the what-if
comparison; and the one-line errors with their exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.cli.cli_support import Gsomia

DROP = ("--drop-event", "jpn-kor-2019-suspension")
MISSILE = ("--topic", "dprk.missile.launch")


def test_status_shows_the_notice_pending_on_the_evening_of_the_suspension(gsomia: Gsomia) -> None:
    run = gsomia("status", "--at", "2019-11-22T17:00+09:00", "-a", "JPN-KOR-GSOMIA")
    assert run.code == 0, run.err
    assert "Agreements at 2019-11-22T17:00+09:00" in run.out
    (row,) = [line for line in run.out.splitlines() if line.startswith("JPN-KOR-GSOMIA ")]
    assert "notice_pending" in row and "2019-08-24" in row and "2019-11-23T00:00+09:00" in row


def test_status_under_a_what_if_names_it(gsomia: Gsomia) -> None:
    run = gsomia("status", "--at", "2019-12-01", "-a", "JPN-KOR-GSOMIA", *DROP)
    assert run.code == 0, run.err
    assert "what-if: drop jpn-kor-2019-suspension" in run.out
    assert "terminated" in run.out


def test_a_hypothetical_event_is_named_in_its_agreements_zone(gsomia: Gsomia) -> None:
    # as every other instant is shown (…T12:00+09:00), not in UTC (…T03:00:00+00:00)
    late = (
        *("--add-event", "JPN-KOR-GSOMIA notice 2019-08-25T12:00+09:00 by KOR"),
        *("--drop-event", "jpn-kor-2019-notice", "--drop-event", "jpn-kor-2019-suspension"),
        *("--drop-event", "jpn-kor-2023-withdrawal"),
    )
    said = (
        "drop jpn-kor-2019-notice; drop jpn-kor-2019-suspension; drop jpn-kor-2023-withdrawal; "
        "add JPN-KOR-GSOMIA notice 2019-08-25T12:00+09:00 by KOR"
    )
    run = gsomia("status", "--at", "2019-12-01", "-a", "JPN-KOR-GSOMIA", *late)
    assert run.code == 0, run.err
    assert f"what-if: {said}" in " ".join(run.out.split())
    assert "+00:00" not in run.out
    compared = gsomia("whatif", *late, "--parties", "JPN,KOR", "--json")
    assert compared.code == 0, compared.err
    assert json.loads(compared.out)["whatif"]["description"] == said
    reported = gsomia("report", *late)
    assert reported.code == 0, reported.err
    text = " ".join(reported.out.split())
    assert f"What if: {said}" in text and f"what-if: {said}" in text


def test_route_explains_a_direct_release_with_the_koreans_marking(gsomia: Gsomia) -> None:
    run = gsomia("route", "jpn", "kor", *MISSILE, "--level", "極秘", "--at", "2019-11-22T10:00+09:00")
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0].startswith("DIRECT JPN → KOR · dprk.missile.launch · 極秘 · 2019-11-22T10:00+09:00")
    assert "  path: JPN → KOR under JPN-KOR-GSOMIA" in lines
    assert "  recipient marks it: 군사II급비밀 (JPN 極秘) (common level SECRET)" in lines


def test_route_explains_a_relay_with_consent_delay_and_assumption(gsomia: Gsomia) -> None:
    run = gsomia("route", "JPN", "KOR", *MISSILE, "--level", "極秘", "--at", "2019-12-01", "--orcon", *DROP)
    assert run.code == 0, run.err
    out = run.out
    assert out.startswith("RELAY JPN → KOR")
    assert "what-if: drop jpn-kor-2019-suspension" in out
    assert "  path: JPN → USA → KOR under TISA, JPN-USA-GSOMIA, KOR-USA-1987" in out
    assert "  leg USA→KOR under KOR-USA-1987 at 2019-12-01T04:00+09:00: SECRET → 군사II급비밀" in out
    assert "consent: the originator's prior written consent is required (for this very report (ORCON))" in out
    assert "  delay: +PT4H" in out
    assert "  assumption: relay delay PT4H through USA under TISA is a modelling assumption" in out
    assert "  why not a better route:" in out and "JPN-KOR-GSOMIA is terminated" in out


def test_route_lists_every_reason_for_a_denial(gsomia: Gsomia) -> None:
    run = gsomia("route", "JPN", "KOR", *MISSILE, "--level", "機密", "--at", "2019-11-22", "--rel-to", "USA,")
    assert run.code == 0, run.err
    assert run.out.startswith("DENY JPN → KOR")
    assert "  reasons:" in run.out
    reasons = [line for line in run.out.splitlines() if line.startswith("    - ")]
    assert any("(level)" in r for r in reasons) and any("(caveats)" in r or "REL TO" in r for r in reasons)


def test_route_to_an_unknown_party_exits_5_with_the_known_names(gsomia: Gsomia) -> None:
    # a typo is not a policy denial: a script tells them apart by the exit code
    run = gsomia("route", "JPN", "XYZ", *MISSILE, "--level", "極秘")
    assert (run.code, run.out) == (5, "")
    assert run.err.startswith("error: unknown party 'XYZ' (known: AUS, ") and run.err.count("\n") == 1
    assert "ROK (KOR)" in run.err


def test_coverage_draws_the_matrix_of_one_topic(gsomia: Gsomia) -> None:
    run = gsomia("coverage", "--at", "2019-12-01", *MISSILE, *DROP)
    assert run.code == 0, run.err
    assert "dprk.missile.launch: rows originate, columns receive" in run.out
    (jpn,) = [line for line in run.out.splitlines() if line.startswith("JPN ")]
    assert "via USA +PT4H*" in jpn
    assert "* relay delays are modelling assumptions" in run.out


def test_gaps_lists_the_intervals_with_no_route(gsomia: Gsomia) -> None:
    run = gsomia(
        "gaps", "--from", "2019-11-01", "--to", "2019-12-31", "--pair", "JPN,KOR", "--topic", "dprk.sigint", *DROP
    )
    assert run.code == 0, run.err
    assert "Gaps 2019-11-01T00:00+09:00 → 2019-12-31T00:00+09:00" in run.out
    (row,) = [line for line in run.out.splitlines() if "dprk.sigint" in line]
    assert "2019-11-23T00:00+09:00" in row
    assert "1 gap interval(s)." in run.out


def test_gaps_needs_both_ends_of_a_period(gsomia: Gsomia) -> None:
    run = gsomia("gaps", "--from", "2019-11-01")
    assert (run.code, run.err) == (4, "error: give both --from and --to, or neither (the scenario's window)\n")


def test_stats_shows_provisions_by_year_and_the_trend(gsomia: Gsomia) -> None:
    run = gsomia("stats", "-a", "JPN-KOR-GSOMIA", "--at", "2019-08-22T18:20+09:00")
    assert run.code == 0, run.err
    assert "2016 (partial year)" in run.out and "total" in run.out
    assert "Trend: " in run.out and "p = " in run.out
    as_json = gsomia("stats", "-a", "JPN-KOR-GSOMIA", "--at", "2019-08-22T18:20+09:00", "--json")
    doc = json.loads(as_json.out)
    assert doc["agreement"] == "JPN-KOR-GSOMIA"  # one agreement: one object


def test_whatif_compares_the_record_with_and_without_the_suspension(gsomia: Gsomia) -> None:
    run = gsomia("whatif", *DROP, "--parties", "JPN,KOR", "--from", "2019-01-01", "--to", "2020-01-01")
    assert run.code == 0, run.err
    assert run.out.startswith("What-if: drop jpn-kor-2019-suspension")
    (launch,) = [line for line in run.out.splitlines() if line.split()[:3] == ["JPN", "KOR", "dprk.missile.launch"]]
    assert "rerouted" in launch and "relay via USA +PT4H*" in launch
    assert "Past reports replayed:" in run.out
    assert "r-2019-11-28-mrl → KOR: direct ⇒ relay JPN→USA→KOR" in run.out


def test_whatif_from_a_file_says_which_recorded_events_no_longer_apply(gsomia: Gsomia, tmp_path: Path) -> None:
    whatif = tmp_path / "early.yaml"
    whatif.write_text(
        "name: early-end\nadd:\n  - {id: early-end, agreement: JPN-KOR-GSOMIA, kind: termination, at: '2019-11-01'}\n",
        encoding="utf-8",
    )
    run = gsomia("whatif", "--whatif", str(whatif), "--parties", "JPN,KOR", "--topic", "dprk.missile.launch")
    assert run.code == 0, run.err
    assert "What-if early-end" in run.out
    assert "recorded event jpn-kor-2019-suspension no longer applies" in run.out


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("whatif",), 4, "give --whatif FILE, --add-event or --drop-event"),
        (("whatif", "--traffic"), 4, "give --whatif FILE, --add-event or --drop-event"),
        # 00:00 in Seoul in 1900 (local mean time, +08:27:52) is 1899 in UTC: the message says so
        (("status", "--at", "1900-01-01"), 4, "'1900-01-01' is 1899-12-31T15:32:08+00:00 in UTC"),
        (("status", "-a", "NOPE"), 5, "unknown agreement 'NOPE'"),
        (("status", "--at", "yesterday"), 4, "invalid instant 'yesterday'"),
        (("status", "--whatif", "/nonexistent/whatif.yaml"), 4, "/nonexistent/whatif.yaml"),
        (("status", "--add-event", "JPN-KOR-GSOMIA explode 2019-11-01"), 4, "explode"),
    ],
)
def test_errors_are_one_line_with_their_exit_code(
    gsomia: Gsomia, args: tuple[str, ...], code: int, fragment: str
) -> None:
    run = gsomia(*args)
    assert run.code == code
    assert run.err.startswith("error: ") and run.err.count("\n") == 1
    assert fragment in run.err


def test_the_version_and_the_help(gsomia: Gsomia) -> None:
    version = gsomia("--version")
    assert version.code == 0 and version.out.startswith("gsomia ")
    helped = gsomia("--help")
    assert helped.code == 0 and "gsomia demo" in helped.out


@pytest.mark.parametrize(
    "command",
    [("status",), ("ledger", "verify"), ("principals", "list"), ("report",), ("ledger", "checkpoint")],
)
def test_a_mistyped_database_path_is_named_not_created(
    gsomia: Gsomia, tmp_path: Path, command: tuple[str, ...]
) -> None:
    # a read on a path that holds nothing is an error: it made an empty database (with a new
    # ledger key) that ``ledger verify`` then called verified
    typo = tmp_path / "gsomai.db"
    run = gsomia("--db", f"sqlite:///{typo}", *command)
    assert run.code == 5, (run.out, run.err)
    assert f"no database at {typo}" in run.err and "gsomia scenario load" in run.err
    assert sorted(p.name for p in tmp_path.rglob("*")) == []


@pytest.mark.parametrize(
    ("db", "named"),
    [
        ("file:typo.db", "file:typo.db"),
        ("sqlite:///file:typo.db", "file:typo.db"),
        ("sqlite:///file:typo.db?mode=rwc&uri=true", "typo.db"),
    ],
)
def test_a_mistyped_database_name_starting_with_file_is_named_not_created(
    gsomia: Gsomia, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db: str, named: str
) -> None:
    # without uri=true SQLite reads ``file:typo.db`` as an ordinary file name: it was taken for a
    # URI filename, not checked, and made an empty database that ``ledger verify`` called verified
    monkeypatch.chdir(tmp_path)
    run = gsomia("--db", db, "ledger", "verify")
    assert run.code == 5, (run.out, run.err)
    assert f"no database at {named}:" in run.err
    assert sorted(p.name for p in tmp_path.rglob("*")) == []


def test_a_command_that_creates_makes_the_database_it_is_given(gsomia: Gsomia, tmp_path: Path) -> None:
    fresh = tmp_path / "new.db"
    run = gsomia("--db", f"sqlite:///{fresh}", "scenario", "load", "japan-korea-2019")
    assert run.code == 0, run.err
    assert fresh.is_file()
    assert gsomia("--db", f"sqlite:///{fresh}", "status", "--at", "2019-12-01").code == 0


@pytest.mark.parametrize(
    "url",
    [
        "post gres://gsomia:s3cret@db.example/gsomia?password=s3cret",  # does not parse
        "postgresql://gsomia:s3cret@db.example:five/gsomia?password=s3cret",  # a port that is no number
    ],
)
def test_a_malformed_database_url_is_named_without_its_secrets(gsomia: Gsomia, url: str) -> None:
    run = gsomia("--db", url, "status")
    assert run.code == 4, run.err
    assert run.err.startswith("error: invalid database URL ") and run.err.count("\n") == 1, run.err
    assert "s3cret" not in run.err and "db.example" in run.err
