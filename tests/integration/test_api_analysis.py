"""Analysis endpoints over a real socket: same JSON as the CLI, problem+json errors."""

from __future__ import annotations

import httpx

from tests.integration.conftest import Server


def test_route_relay_in_the_whatif(server: Server) -> None:
    r = httpx.get(
        server.url + "/api/v1/route",
        params={
            "originator": "JPN",
            "recipient": "KOR",
            "topic": "dprk.missile.launch",
            "level": "極秘",
            "at": "2019-12-01",
            "drop": "jpn-kor-2019-suspension",
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["decision"], body["path"], body["marking"]["recipient_level"]) == (
        "relay",
        ["JPN", "USA", "KOR"],
        "군사II급비밀",
    )


def test_status_and_gaps(server: Server) -> None:
    s = httpx.get(
        server.url + "/api/v1/status", params={"at": "2019-11-22T17:00+09:00", "agreement": "JPN-KOR-GSOMIA"}
    ).json()
    assert s[0]["state"] == "notice_pending" and s[0]["ends_at"] == "2019-11-23T00:00+09:00"
    g = httpx.get(
        server.url + "/api/v1/gaps",
        params=[
            ("from", "2019-01-01"),
            ("to", "2020-01-01"),
            ("pair", "JPN,KOR"),
            ("topic", "dprk.military.movement"),
            ("drop", "jpn-kor-2019-suspension"),
        ],
    ).json()
    assert g == [
        {
            "from": "JPN",
            "to": "KOR",
            "topic": "dprk.military.movement",
            "start": "2019-11-23T00:00+09:00",
            "end": "2020-01-01T00:00+09:00",
        }
    ]


def test_errors_are_problem_json(server: Server) -> None:
    r = httpx.get(server.url + "/api/v1/status", params={"agreement": "NOPE"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 404 and "unknown agreement" in r.json()["detail"]
    r = httpx.get(server.url + "/api/v1/route", params={"originator": "JPN"})
    assert r.status_code == 422 and r.json()["type"].endswith("invalid-request")
    r = httpx.get(server.url + "/api/v1/status", params={"at": "not-a-date"})
    assert r.status_code == 422 and "invalid instant" in r.json()["detail"]
    r = httpx.get(server.url + "/api/v1/nothing-here")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")


def test_openapi_documents_the_analysis_endpoints(server: Server) -> None:
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert {
        "/api/v1/status",
        "/api/v1/route",
        "/api/v1/coverage",
        "/api/v1/gaps",
        "/api/v1/stats",
        "/api/v1/whatif",
    } <= set(paths)
