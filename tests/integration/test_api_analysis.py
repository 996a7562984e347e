"""Analysis endpoints over a real socket: same JSON as the CLI, problem+json errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import start
from tests.integration.conftest import Server, start_server


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


def test_the_matrix_names_the_catalogues_topic_whatever_its_case(server: Server) -> None:
    r = httpx.get(server.url + "/api/v1/matrix", params={"topic": "DPRK.Missile.Launch", "at": "2019-11-22"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["topic"] == "dprk.missile.launch"
    assert {f["topic"] for f in body["flows"]} == {"dprk.missile.launch"}


def test_a_hypothetical_event_is_described_in_its_agreements_zone(server: Server) -> None:
    # a late notice, as every other instant is shown (…T12:00+09:00), not in UTC (…T03:00:00+00:00)
    add = "JPN-KOR-GSOMIA notice 2019-08-25T12:00+09:00 by KOR"
    drop = ["jpn-kor-2019-notice", "jpn-kor-2019-suspension", "jpn-kor-2023-withdrawal"]
    said = "; ".join(f"drop {d}" for d in drop) + f"; add {add}"
    params: list[tuple[str, str | int | float | bool | None]] = [("add", add), *(("drop", d) for d in drop)]
    r = httpx.get(server.url + "/api/v1/report", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["question"]["title"] == f"What if: {said}"
    assert body["whatif"]["whatif"]["description"] == said
    w = httpx.get(server.url + "/api/v1/whatif", params=[*params, ("parties", "JPN,KOR")])
    assert w.status_code == 200, w.text
    assert w.json()["whatif"]["description"] == said


def test_a_first_day_that_is_the_year_before_in_utc_says_so(server: Server) -> None:
    r = httpx.get(server.url + "/api/v1/gaps", params={"from": "1900-01-01", "to": "1900-02-01"})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "'1900-01-01' is 1899-12-31T15:32:08+00:00 in UTC" in detail
    assert "give a year from 1900 to 2999" not in detail


def test_the_whatif_comparison_with_no_change_is_the_record_as_the_dashboard_reads_it(server: Server) -> None:
    # documented in the operation: the dashboard reads the recorded gaps through it with no what-if
    r = httpx.get(server.url + "/api/v1/whatif", params={"parties": "JPN,KOR", "topic": "dprk.missile.launch"})
    assert r.status_code == 200, r.text
    assert r.json()["whatif"]["description"] == "no change" and r.json()["changes"] == []
    paths = httpx.get(server.url + "/openapi.json", timeout=60).json()["paths"]
    assert "no change" in paths["/api/v1/whatif"]["get"]["description"]
    # the traffic replay has nothing to replay without one: documented as refused
    assert '422 "give a what-if"' in paths["/api/v1/whatif/traffic"]["get"]["description"]


LONG = 257  # query values that name things are at most 256 characters


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/status", {"drop": "jpn-kor-" * 40}),
        ("/api/v1/status", {"agreement": "J" * LONG}),
        ("/api/v1/route", {"originator": "JPN", "recipient": "KOR", "level": "gokuhi", "topic": "dprk." * 60}),
        ("/api/v1/coverage", {"topic": "d" * LONG}),
        ("/api/v1/whatif", {"add": "JPN-KOR-GSOMIA termination 2019-12-01 " + "x" * LONG}),
        ("/api/v1/matrix", {"topic": "d" * LONG}),
        ("/api/v1/gaps", {"from": "2" * LONG, "to": "2020-01-01"}),
    ],
)
def test_an_overlong_name_is_refused_before_it_is_looked_up(server: Server, path: str, params: dict[str, str]) -> None:
    r = httpx.get(server.url + path, params=params)
    assert r.status_code == 422 and r.json()["type"].endswith("invalid-input"), r.text
    assert "characters long: at most 256" in r.json()["detail"]
    # a long unknown name within the bound is looked up (and answered with the closest names)
    shorter = httpx.get(server.url + "/api/v1/status", params={"drop": ("jpn-kor-" * 40)[:256]})
    assert shorter.status_code == 404 and len(shorter.json()["detail"]) < 2000


@pytest.fixture(scope="module")
def traffic_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """A server on an exchange that recorded decisions for two topics; and an auditor's token."""
    tmp = tmp_path_factory.mktemp("traffic-api")
    h = start(tmp)
    h.submit("JPN", recipients=("KOR", "USA"), id="launch-nov22")
    h.clock.set("2019-12-05T10:00+09:00")
    h.submit("JPN", recipients=("KOR",), id="launch-dec05")
    h.submit("JPN", recipients=("KOR",), id="movement-dec05", topic="dprk.military.movement")
    token = h.tokens["auditor"]
    h.close()
    # served from the same data directory: its KEK sealed the reports (serve checks it first)
    s = start_server(f"sqlite:///{tmp / 'exchange.db'}", tmp)
    yield s, token
    s.stop()


def test_the_traffic_replay_reads_a_topic_in_any_case(traffic_server: tuple[Server, str]) -> None:
    server, token = traffic_server

    def replay(topic: str) -> dict[str, Any]:
        r = httpx.get(
            server.url + "/api/v1/whatif/traffic",
            params={"drop": "jpn-kor-2019-suspension", "topic": topic},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    exact, shouted = replay("dprk.missile.launch"), replay("DPRK.MISSILE.LAUNCH")
    assert exact["decisions"] == 3 and shouted == exact
    assert shouted["selection"]["topic"] == "dprk.missile.launch"


def test_the_traffic_replay_needs_a_what_if_as_the_command_does(traffic_server: tuple[Server, str]) -> None:
    server, token = traffic_server
    r = httpx.get(server.url + "/api/v1/whatif/traffic", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert "give a what-if" in r.json()["detail"]
