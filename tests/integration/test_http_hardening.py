"""What an attacker sends to the exchange over a real socket, and what it must answer: malformed
cursors and instants at the calendar's edge are 422 (never 500)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.exchange_support import Exchange, start_exchange

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
SLACK = 20.0
"""A generous bound on how late the server may act on a timeout on a loaded machine."""

EDGE_INSTANTS = ("0001-01-01T00:00+14:00", "9999-12-31T23:59-14:00")


@pytest.fixture(scope="module")
def ex(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    exchange = start_exchange(
        tmp_path_factory.mktemp("hardening"),
        exercise_clock="2019-11-22T10:00+09:00",
        extra_env={
            "GSOMIA_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "GSOMIA_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        },
    )
    yield exchange
    exchange.stop()


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["type"].startswith("urn:gsomia:problem:")
    return body


# --- 1. malformed input is a 4xx problem, never a 500 -------------------------------------------


@pytest.mark.parametrize("cursor", ["²", "1" + "0" * 26, "-1", "١٢", " 7", "7 ", "0x10", "1e3"])
def test_a_malformed_inbox_cursor_is_422_naming_the_parameter(ex: Exchange, cursor: str) -> None:
    problem = _problem(ex.call("KOR", "GET", "/api/v1/inbox", params={"cursor": cursor}), 422)
    assert problem["detail"].startswith("cursor:")


def test_a_malformed_last_event_id_is_422_naming_the_header(ex: Exchange) -> None:
    r = ex.call("KOR", "GET", "/api/v1/inbox/stream", headers={"Last-Event-ID": "²".encode()})
    assert _problem(r, 422)["detail"].startswith("Last-Event-ID:")


def test_the_largest_cursor_is_accepted(ex: Exchange) -> None:
    r = ex.call("KOR", "GET", "/api/v1/inbox", params={"cursor": "9" * 18})
    assert r.status_code == 200 and r.json()["items"] == []


@pytest.mark.parametrize("instant", EDGE_INSTANTS)
def test_an_instant_at_the_calendars_edge_is_422_on_every_endpoint_that_takes_one(ex: Exchange, instant: str) -> None:
    event = f"JPN-KOR-GSOMIA notice {instant} by KOR"
    reads: list[tuple[str, dict[str, str]]] = [
        ("/api/v1/status", {"at": instant}),
        ("/api/v1/status", {"at": instant, "agreement": "JPN-KOR-GSOMIA"}),
        ("/api/v1/status", {"add": event}),
        (
            "/api/v1/route",
            {"originator": "JPN", "recipient": "KOR", "topic": "dprk.missile.launch", "level": "極秘", "at": instant},
        ),
        ("/api/v1/coverage", {"at": instant}),
        ("/api/v1/gaps", {"from": instant, "to": "2020-01-01"}),
        ("/api/v1/gaps", {"from": "2019-01-01", "to": instant}),
        ("/api/v1/stats", {"at": instant}),
        ("/api/v1/whatif", {"from": instant}),
        ("/api/v1/whatif", {"add": event}),
        ("/api/v1/report", {"add": event}),
        ("/api/v1/network", {"at": instant}),
        ("/api/v1/lifecycles", {"add": event}),
        ("/api/v1/matrix", {"topic": "dprk.missile.launch", "at": instant}),
    ]
    for path, params in reads:
        r = httpx.get(ex.url + path, params=params)  # unauthenticated, like /api/v1/status
        problem = _problem(r, 422)
        assert "out of range" in json.dumps(problem, ensure_ascii=False), (path, params, problem)
    before = ex.counts()
    writes: list[tuple[str, str, str, dict[str, Any]]] = [
        (
            "JPN",
            "POST",
            "/api/v1/standing-consents",
            {"topic_prefix": "dprk", "recipient": "KOR", "valid_until": instant},
        ),
        (
            "JPN",
            "POST",
            "/api/v1/standing-consents",
            {"topic_prefix": "dprk", "recipient": "KOR", "valid_from": instant, "valid_until": "2020-01-01"},
        ),
        (
            "operator",
            "POST",
            "/api/v1/agreements/JPN-KOR-GSOMIA/events",
            {"kind": "notice", "at": instant, "by": "KOR"},
        ),
        ("operator", "POST", "/api/v1/exercise/clock", {"at": instant}),
        ("JPN", "POST", "/api/v1/reports", ex.signed("JPN", created=instant, recipients=["KOR"])),
    ]
    for who, method, path, body in writes:
        problem = _problem(ex.call(who, method, path, json=body), 422)
        assert "out of range" in json.dumps(problem, ensure_ascii=False), (path, body, problem)
    assert ex.counts() == before


def test_the_exercise_clock_cannot_be_moved_to_where_it_would_overflow(ex: Exchange) -> None:
    before = ex.call("operator", "GET", "/api/v1/exercise").json()["clock"]
    for at in ("9999-12-31T23:59:59+00:00", "9999-12-31", "3000-01-01T00:00Z"):
        _problem(ex.call("operator", "POST", "/api/v1/exercise/clock", json={"at": at}), 422)
    health = httpx.get(ex.url + "/healthz")
    assert health.status_code == 200, health.text
    assert health.json()["exercise"]["clock"].startswith("2019-11-22T")
    assert ex.call("operator", "GET", "/api/v1/exercise").json()["clock"] >= before


def test_the_exercise_clock_cannot_start_out_of_range(tmp_path: Any) -> None:
    env = {"GSOMIA_DB": f"sqlite:///{tmp_path / 'g.db'}", "GSOMIA_DATA_DIR": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-m", "gsomia", "serve", "--port", "9", "--exercise-clock", "9999-12-31T23:59:59Z"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode != 0
    assert "out of range" in r.stderr
