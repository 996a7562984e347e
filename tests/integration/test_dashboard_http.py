"""The dashboard over a real socket: its page, assets, security headers and compact endpoints."""

from __future__ import annotations

import re

import httpx

from gsomia.web.routes import CONTENT_SECURITY_POLICY
from tests.integration.conftest import Server

DROP = ("drop", "jpn-kor-2019-suspension")


def assert_secure(r: httpx.Response) -> None:
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


def test_every_response_carries_the_security_headers(server: Server) -> None:
    for path in ("/", "/docs", "/healthz", "/api/v1/scenario", "/api/v1/nothing-here", "/openapi.json"):
        assert_secure(httpx.get(server.url + path))
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY and "unsafe" not in CONTENT_SECURITY_POLICY


def test_pages_name_only_local_hashed_assets_cached_for_good(server: Server) -> None:
    for page in ("/", "/docs"):
        r = httpx.get(server.url + page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert r.headers["cache-control"] == "no-cache"
        assert "<script>" not in r.text and "style=" not in r.text and "http" not in r.text
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', r.text)
        assert assets, page
        for asset in assets:
            a = httpx.get(server.url + asset)
            assert a.status_code == 200, asset
            assert re.search(r"-[A-Z0-9]{8}\.\w+$", asset), asset
            assert a.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert_secure(a)


def test_network_states_at_an_instant_with_and_without_the_whatif(server: Server) -> None:
    url = server.url + "/api/v1/network"
    r = httpx.get(url, params={"at": "2019-11-22T19:00+09:00"}).json()
    assert r["at"] == "2019-11-22T19:00+09:00"
    states = {s["agreement"]: s["state"] for s in r["states"]}
    assert states["JPN-KOR-GSOMIA"] == "notice_suspended" and states["TISA"] == "in_force"
    r = httpx.get(url, params=[("at", "2019-11-23T01:00+09:00"), DROP]).json()
    assert {s["agreement"]: s["state"] for s in r["states"]}["JPN-KOR-GSOMIA"] == "terminated"


def test_lifecycle_is_the_derived_timeline(server: Server) -> None:
    url = server.url + "/api/v1/lifecycles"
    (life,) = httpx.get(url, params={"agreement": "JPN-KOR-GSOMIA"}).json()
    assert [(s["start"], s["state"], s["cause"]) for s in life["segments"]] == [
        (None, "not_yet_in_force", None),
        ("2016-11-23T00:00+09:00", "in_force", "jpn-kor-gsomia-entry-into-force"),
        ("2019-08-23T15:30+09:00", "notice_pending", "jpn-kor-2019-notice"),
        ("2019-11-22T18:00+09:00", "notice_suspended", "jpn-kor-2019-suspension"),
        ("2023-03-21T00:00+09:00", "in_force", "jpn-kor-2023-withdrawal"),
    ]
    (life,) = httpx.get(url, params=[("agreement", "JPN-KOR-GSOMIA"), DROP]).json()
    # without the suspension the notice runs out at the end of the term: a derived end, no cause
    assert life["segments"][-1] == {
        "start": "2019-11-23T00:00+09:00",
        "state": "terminated",
        "ends_at": None,
        "cause": None,
        "notice": "jpn-kor-2019-notice",
    }
    assert {a["event"] for a in life["anomalies"]} == {"jpn-kor-2023-withdrawal"}


def test_matrix_among_chosen_parties(server: Server) -> None:
    url = server.url + "/api/v1/matrix"
    params = (("topic", "dprk.missile.launch"), ("at", "2019-12-01"), ("parties", "jpn,KOR,USA"), DROP)
    m = httpx.get(url, params=params).json()
    assert m["parties"] == ["JPN", "KOR", "USA"] and len(m["flows"]) == 6
    flow = next(f for f in m["flows"] if (f["from"], f["to"]) == ("JPN", "KOR"))
    assert (flow["route"], flow["via"], flow["delay"], flow["agreement"]) == ("relay", "USA", "PT4H", "TISA")
    everyone = httpx.get(url, params={"topic": "dprk.missile.launch", "at": "2019-12-01"}).json()
    assert len(everyone["parties"]) == 11 and len(everyone["flows"]) == 110

    unknown = httpx.get(url, params={"topic": "dprk.missile.launch", "parties": "JPN,XXX"})
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"


def test_network_and_lifecycles_say_which_states_are_unknown(server: Server) -> None:
    r = httpx.get(server.url + "/api/v1/network", params={"at": "2019-12-01"}).json()
    assert r["unknown"] == ["KOR-AUS-CMI"]
    assert httpx.get(server.url + "/api/v1/network", params={"at": "2009-01-01"}).json()["unknown"] == []
    lives = {x["agreement"]: x for x in httpx.get(server.url + "/api/v1/lifecycles").json()}
    assert lives["KOR-AUS-CMI"]["unknown"] == {"from": "2009-05-30T00:00+09:00"}
    assert lives["JPN-KOR-GSOMIA"]["unknown"] is None
    m = httpx.get(server.url + "/api/v1/matrix", params={"topic": "dprk.missile.launch", "at": "2019-12-01"}).json()
    assert {(f["from"], f["to"]): f["route"] for f in m["flows"]}["AUS", "KOR"] == "unknown"
