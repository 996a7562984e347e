"""Analysis endpoints over a real socket: same JSON as the CLI, problem+json errors."""

from __future__ import annotations

import re
from typing import Any

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


def test_route_reads_names_as_an_analyst_types_them(server: Server) -> None:
    # as ``gsomia route`` does: aliases, any case, a level's English name; the answer names the ids
    params = {"originator": "jp", "recipient": "ROK", "topic": "DPRK.Missile.Launch", "level": "gokuhi"}
    r = httpx.get(server.url + "/api/v1/route", params={**params, "at": "2019-12-01", "rel_to": "kr"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["decision"], body["originator"], body["recipient"], body["topic"]) == (
        "direct",
        "JPN",
        "KOR",
        "dprk.missile.launch",
    )
    assert body["marking"]["recipient_level"] == "군사II급비밀"
    # a name nothing is known by is a 404 naming the closest, not a denial between strangers
    for key, value in (("recipient", "XYZ"), ("level", "ultra"), ("topic", "nope.topic"), ("rel_to", "KOR,QQQ")):
        r = httpx.get(server.url + "/api/v1/route", params={**params, key: value})
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json"), (key, r.text)


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
    assert "get" not in paths["/api/v1/reports"]


def _named(schema: dict[str, Any]) -> bool:
    """A schema that is a named model, or a list of one, or text (a signed note, an event stream)."""
    if schema.get("type") == "array":
        return _named(schema["items"])
    return "$ref" in schema or schema == {"type": "string"}


def test_openapi_declares_every_answer_of_every_operation(server: Server) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    operations = [(m, p, op) for p, ops in spec["paths"].items() for m, op in ops.items()]
    assert len(operations) > 40
    for method, path, op in operations:
        where = f"{method.upper()} {path}"
        statuses = op["responses"]
        successes = [s for s in statuses if s.startswith("2")]
        assert successes, where
        for s in successes:
            content = statuses[s].get("content")
            assert content and all(_named(c["schema"]) for c in content.values()), (where, s, content)
        errors = [s for s in statuses if int(s) >= 400]
        assert errors, where
        for s in errors:
            assert statuses[s]["description"], (where, s)
            assert statuses[s]["content"] == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }, (where, s)
    # the analysis routes name what they answer, not a free-form object
    assert spec["paths"]["/api/v1/route"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RouteOut"
    }
    assert spec["components"]["schemas"]["RouteOut"]["additionalProperties"] is False


def test_sources_resolve_the_tags_as_recorded(server: Server) -> None:
    sources = httpx.get(server.url + "/api/v1/sources").json()
    by_id = {s["id"]: s for s in sources}
    assert by_id["S11"] == {
        "id": "S11",
        "title": "Japan MOD press release, 29 Dec 2014, on the Trilateral Information Sharing Arrangement",
        "date": "29 Dec 2014",
        "links": ["http://www.mod.go.jp/j/press/news/2014/12/29a.html"],
        "note": None,
    }
    # every source id a tag of the record cites is listed
    events = httpx.get(server.url + "/api/v1/events").json()
    cited = {sid for e in events for sid in re.findall(r"\bS\d+\b", " ".join(re.findall(r"\[[^\]]*\]", e["source"])))}
    assert cited and cited <= set(by_id)
    # the scenario gives each agreement its equivalence table
    scenario = httpx.get(server.url + "/api/v1/scenario").json()
    gsomia = next(a for a in scenario["agreements"] if a["id"] == "JPN-KOR-GSOMIA")
    assert gsomia["common_levels"] == ["SECRET", "CONFIDENTIAL"]
    assert gsomia["equivalence"]["SECRET"] == {"JPN": ["極秘", "特定秘密"], "KOR": ["군사II급비밀"]}


def test_record_reports_beside_the_exchange_reports(server: Server) -> None:
    new = httpx.get(server.url + "/api/v1/record/reports")
    assert new.status_code == 200
    assert len(new.json()) == 44 and new.json()[0]["id"] == "r-2016-01-06-nuclear"
    # /api/v1/reports is the exchange's: submitting there is a POST, and there is nothing to GET
    gone = httpx.get(server.url + "/api/v1/reports")
    assert gone.status_code == 405 and gone.headers["content-type"] == "application/problem+json"
    assert gone.headers["allow"] == "POST"


def test_unknown_coverage_is_not_a_gap(server: Server) -> None:
    url = server.url + "/api/v1/"
    pair = {"pair": "KOR,AUS", "topic": "dprk.missile.launch"}
    assert httpx.get(url + "gaps", params=pair).json() == []
    assert httpx.get(url + "unknowns", params=pair).json() == [
        {
            "from": "KOR",
            "to": "AUS",
            "topic": "dprk.missile.launch",
            "start": "2014-01-01T00:00+09:00",
            "end": "2024-01-01T00:00+09:00",
            "agreement": "KOR-AUS-CMI",
        }
    ]
    among = httpx.get(url + "unknowns", params={"parties": "JPN,KOR,USA", "topic": "dprk.missile.launch"}).json()
    assert among == []
    cov = httpx.get(url + "coverage", params={"at": "2019-12-01", **pair}).json()
    assert [(c["route"], c["agreement"]) for c in cov] == [("unknown", "KOR-AUS-CMI")]
    (status,) = httpx.get(url + "status", params={"at": "2019-12-01", "agreement": "KOR-AUS-CMI"}).json()
    assert (status["state"], status["unknown"]) == ("not_yet_in_force", True)
    bad = httpx.get(url + "unknowns", params={"parties": "KOR,XXX"})
    assert bad.status_code == 404 and bad.headers["content-type"] == "application/problem+json"


def test_whatif_parties_are_read_as_a_user_types_them_and_an_unknown_one_is_404(server: Server) -> None:
    def whatif(parties: str) -> httpx.Response:
        params = {
            "add": "JPN-KOR-GSOMIA termination 2019-12-01",
            "topic": "dprk.military.movement",
            "parties": parties,
        }
        return httpx.get(server.url + "/api/v1/whatif", params=params)

    ids, aliases = whatif("KOR,JPN"), whatif("ROK,jp")
    assert ids.status_code == 200 and ids.json()["changes"], ids.text  # ending it changes JPN↔KOR flows
    assert aliases.status_code == 200 and aliases.json() == ids.json()
    unknown = whatif("XYZ,QQQ")  # answered "nothing changes" between two strangers, before
    assert unknown.status_code == 404 and "unknown party 'XYZ'" in unknown.json()["detail"]
