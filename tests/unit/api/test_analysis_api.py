"""The analysis and dashboard API in this process: the same answers as the command line's --json,
what-ifs given in the query string, and bad queries as problem documents."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.harness import Harness, InProcessTransport

NO_SUSPENSION = {"drop": "jpn-kor-2019-suspension"}


@pytest.fixture
def api(harness: Harness) -> Iterator[httpx.Client]:
    with httpx.Client(base_url="http://exchange.test", transport=InProcessTransport(harness.api)) as c:
        yield c


def only(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    (row,) = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    return row


Check = Callable[[Any], object]

ANSWERS: list[tuple[str, str, dict[str, Any], Check]] = [
    (
        "scenario",
        "/api/v1/scenario",
        {},
        lambda d: (
            d["name"] == "japan-korea-2019"
            and only(d["agreements"], id="TISA")["hub"] == "USA"
            and only(d["parties"], id="JPN")["ladder"][0]["name"] == "機密"
        ),
    ),
    ("events", "/api/v1/events", {}, lambda d: only(d, id="jpn-kor-2019-suspension")["by"] == "KOR"),
    ("reports", "/api/v1/record/reports", {}, lambda d: only(d, id="r-2019-11-28-mrl")["level"] == "極秘"),
    ("provisions", "/api/v1/provisions", {}, lambda d: only(d, id="gsomia-2017")["count"] == 19),
    (
        "status",
        "/api/v1/status",
        {"at": "2019-11-22T17:00+09:00", "agreement": "JPN-KOR-GSOMIA"},
        lambda d: d[0]["state"] == "notice_pending",
    ),
    (
        "status under the what-if",
        "/api/v1/status",
        {"at": "2019-12-01", "agreement": "JPN-KOR-GSOMIA", **NO_SUSPENSION},
        lambda d: d[0]["state"] == "terminated",
    ),
    (
        "route",
        "/api/v1/route",
        {
            "originator": "jpn",
            "recipient": "kor",
            "topic": "dprk.missile.launch",
            "level": "極秘",
            "at": "2019-12-01",
            "rel_to": "KOR, USA",
            **NO_SUSPENSION,
        },
        lambda d: d["decision"] == "relay" and d["via"] == "USA",
    ),
    (
        "coverage",
        "/api/v1/coverage",
        {"at": "2019-12-01", "topic": "dprk.sigint", "pair": "JPN,KOR", **NO_SUSPENSION},
        lambda d: [(f["route"]) for f in d] == ["none"],
    ),
    (
        "gaps",
        "/api/v1/gaps",
        {"from": "2019-11-01", "to": "2019-12-31", "pair": "JPN,KOR", "topic": "dprk.sigint", **NO_SUSPENSION},
        lambda d: len(d) == 1 and d[0]["start"] == "2019-11-23T00:00+09:00",
    ),
    ("stats", "/api/v1/stats", {"agreement": "JPN-KOR-GSOMIA"}, lambda d: d[0]["agreement"] == "JPN-KOR-GSOMIA"),
    (
        "whatif",
        "/api/v1/whatif",
        {
            "parties": "JPN,KOR",
            "topic": "dprk.missile.launch",
            "from": "2019-01-01",
            "to": "2020-01-01",
            **NO_SUSPENSION,
        },
        lambda d: {c["kind"] for c in d["changes"]} == {"rerouted"},
    ),
    ("report of a what-if", "/api/v1/report", NO_SUSPENSION, lambda d: d["whatif"]["changes"]),
    (
        "network",
        "/api/v1/network",
        {"at": "2019-12-01", **NO_SUSPENSION},
        lambda d: only(d["states"], agreement="JPN-KOR-GSOMIA")["state"] == "terminated",
    ),
    (
        "lifecycles",
        "/api/v1/lifecycles",
        {"parties": "KOR", "agreement": "JPN-KOR-GSOMIA"},
        lambda d: [s["state"] for s in d[0]["segments"]][-1] == "in_force",
    ),
    (
        "matrix",
        "/api/v1/matrix",
        {"topic": "dprk.missile.launch", "at": "2019-12-01", "parties": "JPN,KOR,USA", **NO_SUSPENSION},
        lambda d: d["parties"] == ["JPN", "KOR", "USA"],
    ),
]


@pytest.mark.parametrize(("path", "query", "check"), [pytest.param(p, q, c, id=n) for n, p, q, c in ANSWERS])
def test_each_analysis_view_answers(api: httpx.Client, path: str, query: dict[str, Any], check: Check) -> None:
    r = api.get(path, params=query)
    assert r.status_code == 200, r.text
    assert check(r.json())


@pytest.mark.parametrize(
    ("path", "query", "status"),
    [
        ("/api/v1/status", {"at": "someday"}, 422),
        ("/api/v1/status", {"agreement": "NOPE"}, 404),
        ("/api/v1/route", {"originator": "JPN"}, 422),
        ("/api/v1/network", {"drop": "no-such-event"}, 404),
        ("/api/v1/matrix", {"topic": "dprk.missile.launch", "parties": "JPN,XYZ"}, 404),
        # a period: both ends or neither, the end after the start (one end was ignored before)
        *[
            (path, period, 422)
            for path in ("/api/v1/gaps", "/api/v1/unknowns", "/api/v1/whatif")
            for period in ({"from": "2019-08-01"}, {"to": "2019-12-01"}, {"from": "2019-12-01", "to": "2019-08-01"})
        ],
    ],
)
def test_bad_queries_are_problem_documents(api: httpx.Client, path: str, query: dict[str, Any], status: int) -> None:
    r = api.get(path, params=query)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
