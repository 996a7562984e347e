"""The CLI for an analyst: names as the field writes them (aliases), unknown names (exit 5 with
the closest), tables that never cut a value at 80 columns, in a pipe or a terminal, the impact
report at 80 columns, the traffic what-if, and the demo run twice or reset."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.harness import start

ANSI = re.compile(r"\x1b\[[0-9;]*m")
INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?[+-]\d\d:\d\d")


def run(
    db: str, *args: str, columns: int = 80, terminal: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``gsomia`` as a subprocess at ``columns`` columns; ``terminal`` makes it believe its
    output is a terminal (Rich's TTY_COMPATIBLE), as an analyst's shell would."""
    e = {**os.environ, "GSOMIA_DB": db, "COLUMNS": str(columns), "NO_COLOR": "1", **(env or {})}
    e.pop("TTY_COMPATIBLE", None)
    if terminal:
        e["TTY_COMPATIBLE"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "gsomia", *args], capture_output=True, text=True, env=e, timeout=120, check=False
    )


def ok(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, p.stderr
    return ANSI.sub("", p.stdout)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('analyst') / 'g.db'}"
    ok(run(url, "scenario", "load", "japan-korea-2019"))
    return url


# --- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("originator", "recipient", "said"),
    [
        ("JPN", "ROK", "party 'ROK' read as KOR"),
        ("JP", "KOR", "party 'JP' read as JPN"),
        ("JA", "kor", "party 'JA' read as JPN"),
    ],
)
def test_aliases_are_accepted_and_echoed(db: str, originator: str, recipient: str, said: str) -> None:
    p = run(
        db,
        "route",
        originator,
        recipient,
        "--topic",
        "dprk.missile.launch",
        "--level",
        "極秘",
        "--at",
        "2019-11-22T10:00+09:00",
        "--json",
    )
    r = json.loads(ok(p))
    assert (r["originator"], r["recipient"], r["decision"]) == ("JPN", "KOR", "direct")
    assert said in p.stderr


def test_us_and_english_level_names(db: str) -> None:
    p = run(db, "route", "US", "JPN", "--topic", "dprk.nuclear.test", "--level", "secret", "--at", "2019-12-01")
    out = ok(p)
    assert out.startswith("DIRECT USA → JPN · dprk.nuclear.test · SECRET")
    assert "party 'US' read as USA" in p.stderr and "level 'secret' read as SECRET" in p.stderr


@pytest.mark.parametrize(
    ("period", "says"),
    [
        (("--to", "2030-01-01"), "give both --from and --to, or neither"),  # the window was used instead
        (("--from", "2019-12-02", "--to", "2019-12-01"), "--to must be after --from"),
    ],
)
def test_whatif_refuses_a_half_given_or_reversed_period(db: str, period: tuple[str, ...], says: str) -> None:
    p = run(db, "whatif", "--add-event", "JPN-KOR-GSOMIA termination 2019-12-01", *period)
    assert p.returncode != 0 and says in p.stderr, (p.returncode, p.stderr, p.stdout)
    assert p.stdout == ""


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ("route", "JPN", "ROC", "--topic", "dprk.missile.launch", "--level", "極秘"),
            "unknown party 'ROC': did you mean KOR?",
        ),
        (
            ("route", "JPN", "KOR", "--topic", "dprk.missle.launch", "--level", "極秘"),
            "unknown topic 'dprk.missle.launch': did you mean dprk.missile.launch",
        ),
        (
            ("route", "JPN", "KOR", "--topic", "dprk.missile.launch", "--level", "gokuhii"),
            "unknown level of JPN 'gokuhii': did you mean 極秘?",
        ),
        (("status", "--agreement", "JPN-KOR"), "unknown agreement 'JPN-KOR': did you mean JPN-KOR-GSOMIA"),
        (("stats", "--agreement", "TISSA"), "unknown agreement 'TISSA': did you mean TISA?"),
        (("coverage", "--pair", "JPN,ROC", "--at", "2019-12-01"), "unknown party 'ROC': did you mean KOR?"),
        (
            ("gaps", "--topic", "dprk.nuclear"),
            "unknown topic 'dprk.nuclear': did you mean dprk.nuclear.programme or dprk.nuclear.test?",
        ),
        (("whatif", "--drop-event", "jpn-kor-2019-suspend"), "did you mean jpn-kor-2019-suspension?"),
        (
            ("whatif", "--drop-event", "jpn-kor-2019-suspension", "--parties", "JPN,KORR"),
            "unknown party 'KORR': did you mean KOR?",
        ),
        (("status", "--add-event", "JPN-KOR notice 2019-08-25 by KOR"), "unknown agreement 'JPN-KOR'"),
    ],
)
def test_unknown_names_exit_5_with_the_closest_and_the_known(db: str, args: tuple[str, ...], says: str) -> None:
    p = run(db, *args)
    assert p.returncode == 5, p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert line.startswith("error: ") and says in line and ("(known: " in line or "(its ladder: " in line)
    assert p.stdout == ""


# --- tables at 80 columns ---------------------------------------------------------------------------


def whole(out: str, values: list[str]) -> None:
    """Nothing cut: no ellipsis, and every value appears whole on one line."""
    assert "…" not in out
    for v in values:
        assert any(v in line for line in out.splitlines()), f"{v!r} is not whole in:\n{out}"


AGREEMENTS = ["JPN-KOR-GSOMIA", "JPN-USA-GSOMIA", "KOR-USA-1987", "TRI-MWDS-2023", "JPN-NATO-ISA", "TISA"]
TABLES = [
    ("status", "--at", "2019-11-22T17:00+09:00"),
    ("whatif", "--drop-event", "jpn-kor-2019-suspension", "--parties", "JPN,KOR"),
    ("gaps", "--pair", "JPN,KOR"),
    ("coverage", "--at", "2019-12-01", "--topic", "dprk.missile.launch"),
    ("stats", "--agreement", "JPN-KOR-GSOMIA", "--at", "2019-08-22T18:20+09:00"),
]


@pytest.mark.parametrize("args", TABLES, ids=lambda a: a[0])
def test_in_a_pipe_at_80_columns_nothing_is_cut(db: str, args: tuple[str, ...]) -> None:
    out = ok(run(db, *args, columns=80))
    data = json.loads(ok(run(db, *args, "--json", columns=200))) if args[0] != "coverage" else []
    values = list(AGREEMENTS) if args[0] == "status" else []
    for row in data if isinstance(data, list) else [data] if args[0] != "whatif" else data["changes"]:
        values += [
            v
            for k, v in row.items()
            if k in ("agreement", "topic", "start", "end", "since", "term_end", "ends_at") and isinstance(v, str)
        ]
    whole(out, values)
    # a table is printed whole, at its own width, in a pipe
    assert any(len(line) > 80 for line in out.splitlines()) or args[0] in ("stats", "coverage")


@pytest.mark.parametrize("args", TABLES, ids=lambda a: a[0])
def test_in_an_80_column_terminal_nothing_is_cut_and_nothing_overflows(db: str, args: tuple[str, ...]) -> None:
    out = ok(run(db, *args, columns=80, terminal=True))
    assert all(len(line.rstrip()) <= 80 for line in out.splitlines()), out
    assert "…" not in out
    for instant in INSTANT.findall(ok(run(db, *args, columns=400))):
        assert instant in out
    if args[0] == "status":
        whole(out, AGREEMENTS)


def test_wide_shows_every_column_in_a_terminal(db: str) -> None:
    narrow = ok(run(db, "status", "--at", "2019-11-22T17:00+09:00", columns=120, terminal=True))
    assert "in force" not in narrow.splitlines()[1] and "--wide shows every column" in narrow
    wide = ok(run(db, "status", "--at", "2019-11-22T17:00+09:00", "--wide", columns=120, terminal=True))
    assert "in force" in wide and "since" in wide and "--wide shows" not in wide


def test_the_impact_report_reads_at_80_columns(db: str) -> None:
    out = ok(run(db, "report", columns=80))
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert "…" not in out
    timeline = out.split("1. JPN-KOR-GSOMIA: derived timeline")[1]
    first = next(line for line in timeline.splitlines() if INSTANT.search(line))
    assert "entry into force (jpn-kor-gsomia-entry-into-force)" in first
    flat = " ".join(out.split())
    assert (
        "Dated 23 August, not 22: Korea's NSC decided and Kim You-geun announced the termination on 2019-08-22" in flat
    )
    assert "A provision is one occasion on which classified information was provided under the agreement" in flat
    for instant in ("2019-11-23T00:00+09:00", "2019-08-23T15:30+09:00", "2024-01-01T00:00+09:00"):
        assert instant in out


def test_status_says_why_the_notice_is_dated_as_it_is(db: str) -> None:
    out = " ".join(ok(run(db, "status", "--at", "2019-10-01", "--agreement", "JPN-KOR-GSOMIA")).split())
    assert "JPN-KOR-GSOMIA: notice jpn-kor-2019-notice by KOR, received 2019-08-23T15:30+09:00." in out
    assert "announced the termination on 2019-08-22" in out


# --- the exchange's traffic ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def traffic_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("traffic")
    h = start(tmp)
    h.submit("JPN", recipients=("KOR", "USA"), id="r-nov22")
    h.clock.set("2019-12-05T10:00+09:00")
    h.submit("JPN", recipients=("KOR",), id="r-dec05-with-a-long-identifier-that-must-never-be-cut")
    h.submit("KOR", recipients=("JPN",), level="군사II급비밀", id="r-dec05-kor", topic="dprk.sigint")
    h.close()
    return f"sqlite:///{tmp / 'exchange.db'}"


def test_whatif_over_the_traffic(traffic_db: str) -> None:
    p = run(traffic_db, "whatif", "--drop-event", "jpn-kor-2019-suspension", "--traffic", "--json")
    doc: dict[str, Any] = json.loads(ok(p))
    assert doc["decisions"] == 4 and doc["unchanged"] == 2
    assert doc["changed"] == {"stopped": 1, "rerouted": 1, "changed": 0, "released": 0}
    kinds = {(g["from"], g["to"], g["topic"]): g for g in doc["groups"]}
    rerouted = kinds[("JPN", "KOR", "dprk.missile.launch")]
    assert rerouted["change"] == "rerouted" and rerouted["whatif"] == {
        "decision": "relay",
        "via": "USA",
        "delay": "PT4H",
        "recipient_level": "군사II급비밀",
    }
    assert rerouted["reports"] == [
        {"report": "JPN/r-dec05-with-a-long-identifier-that-must-never-be-cut", "decided_at": "2019-12-05T10:00+09:00"}
    ]
    assert kinds[("KOR", "JPN", "dprk.sigint")]["change"] == "stopped"
    assert doc["assumptions"] and "modelling assumption" in doc["assumptions"][0]


@pytest.mark.parametrize("terminal", [False, True], ids=["pipe", "terminal"])
def test_whatif_over_the_traffic_at_80_columns(traffic_db: str, terminal: bool) -> None:
    out = ok(
        run(traffic_db, "whatif", "--drop-event", "jpn-kor-2019-suspension", "--traffic", columns=80, terminal=terminal)
    )
    whole(
        out,
        [
            "JPN/r-dec05-with-a-long-identifier-that-must-never-be-cut",
            "KOR/r-dec05-kor",
            "dprk.missile.launch",
            "2019-12-05T10:00+09:00",
        ],
    )
    assert "1 stopped, 1 rerouted, 0 changed, 0 released; 2 unchanged" in " ".join(out.split())
    if terminal:
        assert all(len(line.rstrip()) <= 80 for line in out.splitlines())


def test_whatif_over_an_exchange_with_no_traffic(db: str) -> None:
    out = ok(run(db, "whatif", "--drop-event", "jpn-kor-2019-suspension", "--traffic"))
    assert "Replayed 0 recorded decisions" in out and "no decision here yet" in out


# --- the demo, twice, and reset -----------------------------------------------------------------------


def test_the_demo_runs_again_after_new_keys_and_resets(tmp_path: Path) -> None:
    env = {"GSOMIA_DATA_DIR": str(tmp_path / "data")}
    db = f"sqlite:///{tmp_path / 'data' / 'gsomia.db'}"
    first = run(db, "demo", "--no-serve", env=env)
    assert first.returncode == 0, first.stderr
    assert "--recipient KOR" in first.stdout
    # the tour registers JPN's own keys, which retires the demo's
    ok(run(db, "keys", "generate", "JPN", "--out", str(tmp_path / "jpn.keys"), env=env))
    tokens = json.loads((tmp_path / "data" / "demo" / "tokens.json").read_text())
    from gsomia.bootstrap import Settings, build
    from gsomia.crypto import read_private_keyfile

    app = build(Settings(db=db, data_dir=tmp_path / "data"))
    try:
        principal = app.exchange.identity.authenticate(tokens["JPN"])
        app.exchange.keys.register(principal, "JPN", read_private_keyfile(tmp_path / "jpn.keys").public_keys())
    finally:
        app.close()
    again = run(db, "demo", "--no-serve", env=env)
    assert again.returncode == 0, again.stderr
    reset = run(db, "demo", "--no-serve", "--reset", env=env)
    assert reset.returncode == 0, reset.stderr
    assert "reset: removed" in reset.stderr and "scenario japan-korea-2019: created" in reset.stderr
    refused = run("postgresql://nobody@127.0.0.1:1/none", "demo", "--no-serve", "--reset", env=env)
    assert refused.returncode == 4 and "SQLite database only" in refused.stderr
