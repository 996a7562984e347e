"""STIX 2.1 ⇄ gsomia: the national marking extension, TLP 2.0 and ACS 3.0 read as caveats,
envelopes grouped into reports, deliveries mapped into the recipient's ladder."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from stix2validator import ValidationOptions, validate_instance

from gsomia.errors import InvalidInput
from gsomia.interop.stix import (
    ACS_3_0_EXTENSION,
    NATIONAL_MARKING_EXTENSION,
    TLP_2_0,
    DeliveredMarking,
    MarkingPolicy,
    NationalMarking,
    TopicMap,
    delivery_objects,
    extension_definition,
    gsomia_identity,
    national_marking_definition,
    parse_timestamp,
    party_identity,
    plan_envelope,
    read_bundle,
    stix_timestamp,
)

SCHEMA = json.loads(
    (Path(__file__).parents[3] / "docs/interop/gsomia-national-marking.schema.json").read_text(encoding="utf-8")
)
POLICY = MarkingPolicy(party="JPN", levels=("機密", "極秘", "特定秘密", "秘"), acs_levels={"S": "極秘", "C": "秘"})
SECRET = national_marking_definition(NationalMarking(party="JPN", level="極秘"))
TLP = {label: mid for mid, label in TLP_2_0.items()}


def valid(obj: dict[str, Any]) -> None:
    result = validate_instance(obj, ValidationOptions(version="2.1"))
    assert result.is_valid, [str(e) for e in result.errors]


def obj(n: int, *refs: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--00000000-0000-4000-8000-{n:012d}",
        "created": "2019-11-22T00:58:00.000Z",
        "modified": "2019-11-22T00:58:00.000Z",
        "name": f"i{n}",
        "pattern": "[ipv4-addr:value = '198.51.100.1']",
        "pattern_type": "stix",
        "valid_from": "2019-11-22T00:58:00Z",
        "object_marking_refs": list(refs),
        "x_gsomia_topic": "dprk.missile.launch",
        **extra,
    }


def plan(*objects: dict[str, Any], topics: TopicMap | None = None) -> Any:
    return plan_envelope(list(objects), policy=POLICY, topics=topics or TopicMap(), known_definitions={})


def test_the_extension_definition_and_markings_are_valid_stix_and_match_the_schema() -> None:
    ext = extension_definition()
    assert ext["id"] == NATIONAL_MARKING_EXTENSION == "extension-definition--558995fd-2ea2-4a15-bfd4-8f0a691d1343"
    for o in (ext, gsomia_identity(), party_identity("KOR", "Republic of Korea"), SECRET):
        valid(o)
    jsonschema.validate(SECRET["extensions"][NATIONAL_MARKING_EXTENSION], SCHEMA)
    # The same marking is always the same object (marking definitions are never versioned).
    assert national_marking_definition(NationalMarking(party="JPN", level="極秘")) == SECRET
    assert national_marking_definition(NationalMarking(party="JPN", level="秘"))["id"] != SECRET["id"]


def _nulls_or_empty_lists(value: Any, path: str = "") -> list[str]:
    if value is None or value == []:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nulls_or_empty_lists(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nulls_or_empty_lists(v, f"{path}[{i}]")]
    return []


def test_markings_carry_no_null_and_no_empty_list() -> None:
    # STIX 2.1 has no null and forbids empty lists: an absent REL TO list is left out, and a
    # REL TO list allowing no other party is NOFORN.
    plain = SECRET["extensions"][NATIONAL_MARKING_EXTENSION]
    nobody = national_marking_definition(NationalMarking(party="JPN", level="極秘", rel_to=()))
    nobody_ext = nobody["extensions"][NATIONAL_MARKING_EXTENSION]
    assert plain["caveats"] == {"noforn": False, "orcon": False}
    assert nobody_ext["caveats"] == {"noforn": True, "orcon": False}
    delivered = DeliveredMarking(
        recipient="KOR",
        level="군사II급비밀",
        originator=NationalMarking(party="JPN", level="極秘", rel_to=("KOR", "USA")),
        common_level=None,
        banner="군사II급비밀 (JPN 極秘)",
        agreement=None,
        delivery="d-7",
        ledger_index=7,
    )
    out = delivery_objects([obj(1, SECRET["id"])], delivered=delivered, created=datetime(2019, 11, 22, tzinfo=UTC))
    for o in (nobody, *out):
        assert _nulls_or_empty_lists(o) == [], o["id"]
        valid(o)
    ext = out[3]["extensions"][NATIONAL_MARKING_EXTENSION]
    jsonschema.validate(ext, SCHEMA)
    jsonschema.validate(nobody_ext, SCHEMA)
    assert "agreement" not in ext and "common_level" not in ext and "via" not in ext["delivery"]
    assert ext["caveats"] == {"rel_to": ["KOR", "USA"], "noforn": False, "orcon": False}
    # Read back, the NOFORN form releases to the same parties as the empty list: none.
    m = plan(nobody, obj(2, nobody["id"])).groups[0].marking
    assert m.noforn and not m.rel_to


def test_the_extension_definition_is_the_one_docs_interop_md_shows() -> None:
    # The first JSON block of docs/interop.md §2.1 is what every node serves, member for member.
    text = (Path(__file__).parents[3] / "docs/interop.md").read_text(encoding="utf-8")
    section = text[text.index("### 2.1 The extension definition") :]
    block = section[section.index("```json") + len("```json") : section.index("```", section.index("```json") + 7)]
    assert json.loads(block) == extension_definition()


def test_what_the_node_makes_passes_the_validator_s_strict_mode() -> None:
    # docs/interop.md §3.2: the objects a node makes meet every SHOULD of STIX 2.1 as well (the
    # originator's objects are served as signed, with whatever the validator warns of).
    delivered = DeliveredMarking(
        recipient="KOR",
        level="군사II급비밀",
        originator=NationalMarking(party="JPN", level="極秘", rel_to=("KOR", "USA")),
        common_level="SECRET",
        banner="군사II급비밀 (JPN 極秘)",
        agreement="JPN-KOR-GSOMIA",
        delivery="d-7",
        ledger_index=7,
    )
    made = delivery_objects([], delivered=delivered, created=datetime(2019, 11, 22, 0, 0, 0, 123456, tzinfo=UTC))
    assert [o["type"] for o in made] == ["extension-definition", "identity", "identity", "marking-definition"]
    strict = ValidationOptions(version="2.1", strict=True)
    for o in (*made, SECRET):
        result = validate_instance(o, strict)
        assert result.is_valid and not result.warnings, [str(e) for e in (*result.errors, *result.warnings)]


def test_one_report_per_marking_and_topic_with_the_definitions_it_references() -> None:
    other = national_marking_definition(NationalMarking(party="JPN", level="秘", rel_to=("USA", "KOR")))
    p = plan(
        SECRET,
        other,
        obj(1, SECRET["id"]),
        obj(2, SECRET["id"]),
        obj(3, other["id"]),
        obj(4, SECRET["id"], x_gsomia_topic="dprk.nuclear.test"),
    )
    assert not p.refused and len(p.definitions) == 2
    groups = {(g.marking.level, g.topic): g for g in p.groups}
    assert set(groups) == {
        ("極秘", "dprk.missile.launch"),
        ("秘", "dprk.missile.launch"),
        ("極秘", "dprk.nuclear.test"),
    }
    g = groups[("極秘", "dprk.missile.launch")]
    assert [o["id"] for o in g.objects] == [obj(1)["id"], obj(2)["id"]]
    bundle = read_bundle(g.payload)
    assert [o["id"] for o in bundle] == [SECRET["id"], obj(1)["id"], obj(2)["id"]]
    assert groups[("秘", "dprk.missile.launch")].marking.rel_to == ("KOR", "USA")
    # Report ids are fixed by content: sending the same again is the same report.
    assert plan(SECRET, obj(1, SECRET["id"]), obj(2, SECRET["id"])).groups[0].report_id == g.report_id


def test_a_report_payload_is_the_compact_bundle_and_each_object_is_encoded_once() -> None:
    p = plan(SECRET, obj(1, SECRET["id"], name="発射場の活動"), obj(2, SECRET["id"]))
    (g,) = p.groups
    doc = json.loads(g.payload)
    # The payload is byte for byte the compact encoding of the bundle document (its bytes are
    # what the report id and the originator's signature cover).
    assert g.payload == json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert doc["type"] == "bundle" and doc["id"].startswith("bundle--")
    assert doc["objects"] == [SECRET, obj(1, SECRET["id"], name="発射場の活動"), obj(2, SECRET["id"])]
    assert [json.loads(t) for t in g.texts] == [dict(o) for o in g.objects]
    assert all(t.encode("utf-8") in g.payload for t in g.texts)


@pytest.mark.parametrize(
    ("refs", "reason"),
    [
        ((), "no national marking"),
        (("marking-definition--11111111-1111-4111-8111-111111111111",), "neither in the envelope"),
        ((TLP["green"],), "no national marking"),
    ],
)
def test_an_object_without_a_readable_national_marking_is_refused(refs: tuple[str, ...], reason: str) -> None:
    p = plan(SECRET, obj(1, *refs))
    assert not p.groups and len(p.refused) == 1 and reason in p.refused[0].reason


def test_refusals_name_the_cause() -> None:
    kor = national_marking_definition(NationalMarking(party="KOR", level="군사II급비밀"))
    bad_level = national_marking_definition(NationalMarking(party="JPN", level="TOP SECRET"))
    hi = national_marking_definition(NationalMarking(party="JPN", level="機密"))
    cases = {
        "KOR's information": plan(kor, obj(1, kor["id"])),
        "not a level of JPN's ladder": plan(bad_level, obj(2, bad_level["id"])),
        "different levels": plan(SECRET, hi, obj(3, SECRET["id"], hi["id"])),
        "no topic": plan(SECRET, obj(4, SECRET["id"], x_gsomia_topic=None)),
        "STIX 2.1 only": plan({**obj(5, SECRET["id"]), "spec_version": "2.0"}),
        "not a STIX identifier": plan({**obj(6, SECRET["id"]), "id": "indicator--nope"}),
        "granular_markings": plan(
            SECRET, obj(7, granular_markings=[{"marking_ref": SECRET["id"], "selectors": ["name"]}])
        ),
    }
    for reason, p in cases.items():
        assert not p.groups and reason in p.refused[0].reason, (reason, p.refused)


def test_a_received_marking_is_never_sent_on() -> None:
    delivered = DeliveredMarking(
        recipient="JPN",
        level="極秘",
        originator=NationalMarking(party="KOR", level="군사II급비밀"),
        common_level="SECRET",
        banner="極秘 (KOR 군사II급비밀)",
        agreement="JPN-KOR-GSOMIA",
        delivery="d-1",
        ledger_index=3,
    )
    translated = delivery_objects([obj(1)], delivered=delivered, created=datetime(2019, 11, 22, tzinfo=UTC))[3]
    p = plan(translated, obj(2, translated["id"]))
    assert not p.groups and "third-party rule" in p.refused[0].reason


def test_tlp_2_0_and_acs_3_0_read_as_caveats() -> None:
    red = plan(SECRET, obj(1, SECRET["id"], TLP["red"])).groups[0].marking
    strict = plan(SECRET, obj(1, SECRET["id"], TLP["amber+strict"])).groups[0].marking
    amber = plan(SECRET, obj(1, SECRET["id"], TLP["amber"])).groups[0].marking
    assert red.orcon and strict.orcon and not amber.orcon
    acs: dict[str, Any] = {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": "marking-definition--20864905-06a0-47be-a04c-2164af17d635",
        "created": "2020-06-18T00:00:00.000Z",
        "extensions": {
            ACS_3_0_EXTENSION: {
                "extension_type": "property-extension",
                "control_set": {
                    "classification": "S",
                    "permitted_nationalities": ["KOR", "USA"],
                    "formal_determination": ["NF"],
                },
                "further_sharing": [{"sharing_scope": ["USA"], "rule_effect": "deny"}],
            }
        },
    }
    m = plan(acs, obj(1, acs["id"])).groups[0].marking
    assert (m.level, m.rel_to, m.noforn, m.orcon) == ("極秘", ("KOR", "USA"), True, True)
    # An ACS classification the node does not map gives no level: refused, not guessed.
    ts: dict[str, Any] = {**acs, "extensions": {ACS_3_0_EXTENSION: {"control_set": {"classification": "TS"}}}}
    assert "no national marking" in plan(ts, obj(1, ts["id"])).refused[0].reason
    # With a national marking, ACS nationalities narrow its REL TO list (the most restrictive wins).
    rel = national_marking_definition(NationalMarking(party="JPN", level="極秘", rel_to=("KOR",)))
    both = plan(rel, acs, obj(1, rel["id"], acs["id"])).groups[0].marking
    assert both.rel_to == ("KOR",) and both.noforn


@pytest.mark.parametrize(
    ("control_set", "sharing", "why"),
    [
        ({"classification": "S", "permitted_nationalities": "KOR"}, None, "permitted_nationalities is not a list"),
        ({"classification": "S", "permitted_nationalities": ["KOR", 7]}, None, "permitted_nationalities is not a list"),
        ({"classification": "S", "permitted_nationalities": ["kor"]}, None, "not country trigraphs"),
        ({"classification": "S", "formal_determination": "NF"}, None, "formal_determination is not a list"),
        ({"classification": "S"}, {"rule_effect": "deny", "sharing_scope": "USA"}, "further_sharing is not a list"),
        ({"classification": "S"}, ["deny"], "further_sharing is not a list of objects"),
    ],
)
def test_an_acs_caveat_not_of_the_published_shape_is_refused_never_read_as_none(
    control_set: dict[str, Any], sharing: Any, why: str
) -> None:
    # "KOR" for ["KOR"] was read as no REL TO at all: released to every party
    ext: dict[str, Any] = {"extension_type": "property-extension", "control_set": control_set}
    if sharing is not None:
        ext["further_sharing"] = sharing
    acs: dict[str, Any] = {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": "marking-definition--20864905-06a0-47be-a04c-2164af17d635",
        "created": "2020-06-18T00:00:00.000Z",
        "extensions": {ACS_3_0_EXTENSION: ext},
    }
    p = plan(acs, obj(1, acs["id"]))
    assert not p.groups and why in p.refused[0].reason, p.refused


@pytest.mark.parametrize("rel_to", [["kor"], ["KOR", "usa"], ["K O R"], [""]])
def test_a_national_marking_whose_rel_to_is_not_party_ids_refuses_its_objects_with_the_reason(
    rel_to: list[str],
) -> None:
    # it was a 500 for every later envelope with an object referencing it
    bad = json.loads(json.dumps(SECRET))
    bad["id"] = "marking-definition--11111111-1111-4111-8111-111111111111"
    bad["extensions"][NATIONAL_MARKING_EXTENSION]["caveats"] = {"rel_to": rel_to}
    p = plan(bad, obj(1, bad["id"]))
    assert not p.groups and "rel_to is not a list of party ids" in p.refused[0].reason, p.refused


def test_topic_mapping_property_then_rules_then_default() -> None:
    topics = TopicMap.from_config(
        {
            "rules": [{"type": "malware", "topic": "dprk.sigint"}, {"label": "nuclear", "topic": "dprk.nuclear.test"}],
            "default": "dprk.humint",
        }
    )
    assert topics.topic_for({"type": "malware", "x_gsomia_topic": "dprk.missile.launch"}) == "dprk.missile.launch"
    assert topics.topic_for({"type": "malware"}) == "dprk.sigint"
    assert topics.topic_for({"type": "report", "labels": ["nuclear"]}) == "dprk.nuclear.test"
    assert topics.topic_for({"type": "report"}) == "dprk.humint"
    with pytest.raises(InvalidInput, match="unknown member"):
        TopicMap.from_config({"rulez": []})
    with pytest.raises(InvalidInput, match="not a topic"):
        TopicMap.from_config({"rules": [{"type": "x", "topic": "Not A Topic"}]})


def test_a_delivery_in_the_recipients_ladder() -> None:
    p = plan(
        SECRET,
        obj(1, SECRET["id"]),
        {
            "type": "ipv4-addr",
            "spec_version": "2.1",
            "id": "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd",
            "value": "198.51.100.3",
            "object_marking_refs": [SECRET["id"]],
            "x_gsomia_topic": "dprk.missile.launch",
        },
    )
    assert not p.refused
    delivered = DeliveredMarking(
        recipient="KOR",
        level="군사II급비밀",
        originator=NationalMarking(party="JPN", level="極秘"),
        common_level="SECRET",
        banner="군사II급비밀 (JPN 極秘)",
        agreement="JPN-KOR-GSOMIA",
        delivery="d-00112233445566778899",
        ledger_index=12,
        exercise=True,
    )
    out = delivery_objects(
        read_bundle(p.groups[0].payload), delivered=delivered, created=datetime(2019, 11, 22, 1, tzinfo=UTC)
    )
    definition, publisher, identity, marking, original, ind, sco = out
    assert definition == extension_definition() and definition["created_by_ref"] == publisher["id"]
    for o in out:
        valid(o)
    ext = marking["extensions"][NATIONAL_MARKING_EXTENSION]
    jsonschema.validate(ext, SCHEMA)
    assert marking["name"] == "EXERCISE 군사II급비밀 (JPN 極秘)" and ext["exercise"] is True
    assert ext["delivery"] == {"delivery_id": "d-00112233445566778899", "ledger_index": 12, "purpose": "direct"}
    assert original == SECRET
    assert ind["object_marking_refs"] == [SECRET["id"], marking["id"]] and ind["created_by_ref"] == identity["id"]
    assert "created_by_ref" not in sco and sco["object_marking_refs"][-1] == marking["id"]  # SCOs name no creator


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2999, 1, 1), timezones=st.just(UTC)))  # noqa: DTZ001 - hypothesis bounds are naive by its API
def test_timestamps_round_trip(at: datetime) -> None:
    assert parse_timestamp(stix_timestamp(at)) == at


def test_malformed_timestamps_are_refused() -> None:
    for bad in (
        "yesterday",
        "2019-11-22T01:00:00",
        "2019-13-22T01:00:00Z",
        5,
        "2024-02-30T00:00:00Z",
        # Valid text, but before year 1 or after 9999 once in UTC: an overflow, not a crash.
        "0001-01-01T00:00:00.000+01:00",
        "9999-12-31T23:59:59.000-01:00",
    ):
        with pytest.raises(InvalidInput):
            parse_timestamp(bad)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"modified": "2024-01-01T00:00:00"}, "modified: '2024-01-01T00:00:00' is not an RFC 3339 timestamp"),
        ({"modified": "2024-02-30T00:00:00Z"}, "modified: '2024-02-30T00:00:00Z' is not a valid instant"),
        ({"created": "9999-12-31T23:59:59-01:00"}, "created: '9999-12-31T23:59:59-01:00' is not a valid instant"),
        ({"modified": ""}, "modified: '' is not an RFC 3339 timestamp"),
        ({"created": 20191122}, "created: 20191122 is not an RFC 3339 timestamp"),
        ({"modified": "2019-11-21T00:00:00.000Z"}, "modified is before created"),
    ],
)
def test_an_object_whose_version_is_not_a_timestamp_is_refused(change: dict[str, Any], reason: str) -> None:
    # Its version would be stored (and compared) as an instant: refused here, with the reason,
    # rather than failing the store after the exchange has taken the report.
    p = plan(SECRET, {**obj(1, SECRET["id"]), **change}, obj(2, SECRET["id"]))
    assert len(p.refused) == 1 and p.refused[0].reason.startswith(reason), p.refused
    assert [m[0] for g in p.groups for m in g.members()] == [obj(2)["id"]]


@pytest.mark.parametrize(
    "change",
    [
        {"created": "2019-11-22T09:58:00.000+09:00", "modified": "2019-11-22T09:58:00.000+09:00"},
        {"modified": "2019-11-22T00:58:00.000+00:00"},
        {"modified": "2019-11-22T00:58:00Z"},
        {"created": "2019-11-22T00:58:00.5Z", "modified": "2019-11-22T00:58:00.500Z"},
    ],
    ids=["offset", "plus-zero", "no-milliseconds", "tenths"],
)
def test_a_version_that_is_no_stix_timestamp_is_refused_sent_or_received(change: dict[str, Any]) -> None:
    # STIX 2.1 §3.2: created and modified are UTC with "Z", to the millisecond. Sent on,
    # the object was served with a TAXII version that is no TAXII timestamp, and failed
    # stix2-validator at every recipient.
    bad = {**obj(1, SECRET["id"]), **change}
    assert not validate_instance(bad, ValidationOptions(version="2.1")).is_valid
    p = plan(SECRET, bad, obj(2, SECRET["id"]))
    assert len(p.refused) == 1 and "is not a STIX timestamp: write it in UTC with Z" in p.refused[0].reason
    assert [m[0] for g in p.groups for m in g.members()] == [obj(2)["id"]]
    payload = json.dumps({"type": "bundle", "id": "bundle--x", "objects": [obj(2), bad]}).encode()
    with pytest.raises(InvalidInput, match="not a STIX timestamp"):
        read_bundle(payload)


def test_a_bundle_in_an_envelope_is_refused_not_sent_with_its_objects_unchecked() -> None:
    unmarked = obj(2)  # no marking of its own
    bundle = {
        "type": "bundle",
        "id": "bundle--00000000-0000-4000-8000-000000000001",
        "object_marking_refs": [SECRET["id"]],
        "x_gsomia_topic": "dprk.missile.launch",
        "objects": [unmarked],
    }
    p = plan(SECRET, bundle)
    assert not p.groups
    assert "a bundle is not a STIX object" in p.refused[0].reason


def test_a_marking_definition_is_never_redefined() -> None:
    # The same id with another level: refused, and objects referencing the id keep the meaning
    # the outbox already holds (STIX 2.1 §7.2.1: marking definitions are not versioned).
    lowered = {**SECRET, "created": "2027-01-01T00:00:00.000Z"}
    lowered["extensions"] = json.loads(json.dumps(SECRET["extensions"]).replace("極秘", "秘"))
    p = plan_envelope(
        [lowered, obj(1, SECRET["id"])], policy=POLICY, topics=TopicMap(), known_definitions={SECRET["id"]: SECRET}
    )
    assert [r.object_id for r in p.refused] == [SECRET["id"]]
    assert "never versioned" in p.refused[0].reason
    assert [g.marking.level for g in p.groups] == ["極秘"]
    # Twice in one envelope, differently: the second is refused; identical copies are not.
    p = plan(SECRET, lowered, obj(1, SECRET["id"]))
    assert [r.object_id for r in p.refused] == [SECRET["id"]] and [g.marking.level for g in p.groups] == ["極秘"]
    p = plan(SECRET, dict(SECRET), obj(1, SECRET["id"]))
    assert not p.refused and [g.marking.level for g in p.groups] == ["極秘"]


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "indicator", "name": "no id"},
        {**obj(1), "modified": "2024-01-01T00:00:00"},
        {**obj(1), "id": "indicator--nope"},
    ],
)
def test_a_delivered_bundle_with_an_object_no_node_would_send_is_refused(bad: dict[str, Any]) -> None:
    # Another party's node (or a client of the exchange's API) can put anything into a payload:
    # what the recipient's TAXII inbox could not store is refused as a whole, with the reason.
    payload = json.dumps({"type": "bundle", "id": "bundle--x", "objects": [obj(2), bad]}).encode()
    with pytest.raises(InvalidInput):
        read_bundle(payload)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-18446744073709551617"])
def test_a_delivered_bundle_with_a_number_json_cannot_carry_is_not_a_bundle(number: str) -> None:
    payload = f'{{"type":"bundle","id":"bundle--x","objects":[{{"type":"note","n":{number}}}]}}'.encode()
    with pytest.raises(InvalidInput, match="not a JSON STIX bundle"):
        read_bundle(payload)


def test_a_delivered_bundle_naming_a_member_twice_is_not_a_bundle() -> None:
    # The originator signed these bytes; one parser reads the first pattern, another the last
    # (RFC 7493 §2.3). The recipient's node serves neither.
    one = json.dumps(obj(1))[:-1] + ', "pattern": "[ipv4-addr:value = \'203.0.113.9\']"}'
    payload = ('{"type":"bundle","id":"bundle--x","objects":[' + one + "]}").encode()
    with pytest.raises(InvalidInput, match="given twice"):
        read_bundle(payload)


def _usa_delivery() -> DeliveredMarking:
    return DeliveredMarking(
        recipient="KOR",
        level="군사II급비밀",
        originator=NationalMarking(party="USA", level="SECRET"),
        common_level="SECRET",
        banner="군사II급비밀 (USA SECRET)",
        agreement="KOR-USA-GSOMIA",
        delivery="d-99887766554433221100",
        ledger_index=7,
    )


def test_a_delivery_speaks_for_its_originator_only() -> None:
    # USA writes JPN's marking under the id anyone can compute (and its own under the id of
    # another of JPN's), renames JPN's identity, claims JPN as the creator of a marking and of
    # its own indicator, and marks another with a marking shaped like the one KOR's node makes
    # for a delivery: none of it is served as JPN's or as KOR's node's.
    jpn_identity = party_identity("JPN")["id"]
    widened = {
        **SECRET,
        "name": "JPN 秘 REL TO GBR, KOR, USA",
        "extensions": {
            NATIONAL_MARKING_EXTENSION: {
                "extension_type": "property-extension",
                "party": "JPN",
                "level": "秘",
                "caveats": {"rel_to": ["GBR", "KOR", "USA"], "noforn": False, "orcon": False},
            }
        },
    }
    renamed = {**party_identity("JPN"), "modified": "2099-01-01T00:00:00.000Z", "name": "JPN (as USA says)"}
    received = national_marking_definition(NationalMarking(party="KOR", level="군사III급비밀"))
    received["extensions"][NATIONAL_MARKING_EXTENSION]["originator_marking"] = {"party": "JPN", "level": "秘"}
    received["extensions"][NATIONAL_MARKING_EXTENSION]["banner"] = "군사III급비밀 (JPN 秘)"
    own = national_marking_definition(NationalMarking(party="USA", level="SECRET"))
    squatter = {**own, "id": national_marking_definition(NationalMarking(party="JPN", level="秘"))["id"]}
    by_jpn = {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": "marking-definition--00000000-0000-4000-8000-0000000000aa",
        "created": "2026-01-01T00:00:00.000Z",
        "created_by_ref": jpn_identity,
        "name": "statement",
        "definition_type": "statement",
        "definition": {"statement": "Copyright JPN"},
    }
    claimed = obj(1, widened["id"], own["id"], squatter["id"], by_jpn["id"], created_by_ref=jpn_identity)
    forged = obj(2, received["id"], created_by_ref=party_identity("KOR")["id"])
    granular = obj(3, own["id"], granular_markings=[{"marking_ref": widened["id"], "selectors": ["name"]}])
    bundle = [widened, renamed, received, own, squatter, by_jpn, claimed, forged, granular]
    out = delivery_objects(bundle, delivered=_usa_delivery(), created=datetime(2026, 1, 1, tzinfo=UTC))
    by_id = {o["id"]: o for o in out}
    usa, marking = party_identity("USA")["id"], out[3]["id"]
    assert not {widened["id"], received["id"], squatter["id"], by_jpn["id"]} & set(by_id)
    assert jpn_identity not in by_id
    assert by_id[own["id"]] == own
    assert by_id[claimed["id"]]["object_marking_refs"] == [own["id"], marking]
    assert by_id[claimed["id"]]["created_by_ref"] == usa
    assert by_id[forged["id"]]["object_marking_refs"] == [marking] and by_id[forged["id"]]["created_by_ref"] == usa
    assert "granular_markings" not in by_id[granular["id"]]
    for o in out:
        valid(o)
