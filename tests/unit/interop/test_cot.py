"""CoT ⇄ gsomia: rules in, MIL-STD-6090 marking out, endpoints only where the marking allows."""

from __future__ import annotations

import re
import socket
import threading
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
import takproto
from takproto.functions import xml2proto

from gsomia.errors import InvalidInput
from gsomia.interop.cot import (
    AHEAD_TOLERANCE,
    MAX_DEPTH,
    MAX_VALIDITY,
    NODE_SKEW,
    STALE_TOLERANCE,
    TRACK_STALE,
    CotEndpoint,
    CotEvent,
    endpoints_from_config,
    event_stale,
    is_stale,
    marked_event,
    parse_cot,
    read_event,
    refusal,
    releasable_to,
    rule_for,
    rules_from_config,
)
from gsomia.interop.stix import DeliveredMarking, NationalMarking
from gsomia.node.cot.bridge import CotListeners, Listen, split_stream

EVENT = (
    b'<?xml version="1.0"?><event version="2.0" uid="t-1" type="a-h-A-M-B" how="m-r" time="2019-11-22T00:58:00Z" '
    b'start="2019-11-22T00:58:00Z" stale="2019-11-22T01:00:00Z" access="Unclassified" caveat="FOUO">'
    b'<point lat="39.0" lon="125.7" hae="950" ce="50" le="50"/><detail><track speed="1800"/></detail></event>'
)
LADDER = {"군사I급비밀": 1, "군사II급비밀": 2, "군사III급비밀": 3, "대외비": 4}


def delivered(level: str = "군사II급비밀", **caveats: object) -> DeliveredMarking:
    return DeliveredMarking(
        recipient="KOR",
        level=level,
        originator=NationalMarking(party="JPN", level="極秘", **caveats),  # type: ignore[arg-type]
        common_level="SECRET",
        banner=f"{level} (JPN 極秘)",
        agreement="JPN-KOR-GSOMIA",
        delivery="d-1",
        ledger_index=5,
    )


def endpoint(**kw: object) -> CotEndpoint:
    base: dict[str, object] = {
        "name": "ops",
        "url": "tcp://127.0.0.1:8087",
        "cleared_to": "군사II급비밀",
        "audience": ("KOR",),
    }
    return CotEndpoint(**(base | kw))  # type: ignore[arg-type]


def test_events_parse_from_xml_and_tak_protocol() -> None:
    ev = parse_cot(EVENT)
    assert (ev.uid, ev.type, ev.instant().isoformat()) == ("t-1", "a-h-A-M-B", "2019-11-22T00:58:00+00:00")
    proto = bytes(xml2proto(EVENT.decode()))
    assert read_event(proto).type == "a-h-A-M-B" and read_event(proto).uid == "t-1"
    for bad in (
        b"<nope/>",
        b"not xml",
        b'<!DOCTYPE x [<!ENTITY a "b">]><event/>',
        b"<event uid='x' type='a' time='t'/>",
    ):
        with pytest.raises(InvalidInput):
            parse_cot(bad)
    with pytest.raises(InvalidInput):
        read_event(b"\xbf\x01\xbfgarbage")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-16-le", "utf-16-be"])
def test_a_dtd_is_refused_in_every_encoding_the_parser_reads(encoding: str) -> None:
    # Entity declarations that would expand the uid tenfold: never expanded, whatever the encoding.
    declared = f'<?xml version="1.0" encoding="{encoding.upper()}"?>' if encoding in ("utf-8", "utf-16") else ""
    doc = (
        declared
        + '<!DOCTYPE event [<!ENTITY a "AAAAAAAAAA"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        + EVENT.decode().split("?>", 1)[1].replace('uid="t-1"', 'uid="&b;"')
    )
    with pytest.raises(InvalidInput, match="DTD"):
        parse_cot(doc.encode(encoding))
    with pytest.raises(InvalidInput, match="DTD"):
        read_event(doc.encode(encoding))
    plain = EVENT.decode().replace('encoding="UTF-8"', "").encode(encoding)  # no DTD: read as before
    assert parse_cot(plain).uid == "t-1"


@pytest.mark.parametrize("encoding", ["UTF-16-LE", "EUC-JP", "Shift_JIS", "UTF-7", "x-none"])
def test_an_encoding_the_parser_cannot_read_is_a_malformed_event(encoding: str) -> None:
    data = EVENT.replace(b'<?xml version="1.0"?>', f'<?xml version="1.0" encoding="{encoding}"?>'.encode())
    with pytest.raises(InvalidInput, match="not XML"):
        read_event(data)
    assert marked_event(data, "application/cot+xml", delivered(), report_id="r") is None


def test_the_most_specific_rule_wins_and_unmapped_types_stay_home() -> None:
    rules = rules_from_config(
        [
            {"type_prefix": "a-h-A", "topic": "dprk.military.movement", "level": "秘"},
            {"type_prefix": "a-h-A-M", "topic": "dprk.missile.launch", "level": "極秘", "recipients": ["KOR"]},
        ]
    )
    assert rule_for(rules, "a-h-A-M-B").topic == "dprk.missile.launch"  # type: ignore[union-attr]
    assert rule_for(rules, "a-h-A-C").topic == "dprk.military.movement"  # type: ignore[union-attr]
    assert rule_for(rules, "a-h-A-MX") is not None and rule_for(rules, "a-h-A-MX").topic == "dprk.military.movement"  # type: ignore[union-attr]
    assert rule_for(rules, "a-f-G") is None
    with pytest.raises(InvalidInput, match="unknown member"):
        rules_from_config([{"type_prefix": "a", "topic": "x", "level": "秘", "colour": "red"}])


def test_marking_attributes_replace_the_originators() -> None:
    marked = marked_event(EVENT, "application/cot+xml", delivered(orcon=True, rel_to=("KOR", "USA")), report_id="r")
    assert marked is not None
    out = ET.fromstring(marked)
    assert out.get("access") == "군사II급비밀"
    assert out.get("caveat") == "ORIGINATOR JPN 極秘 ORCON"
    assert out.get("releasableto") == "JPN KOR USA"
    assert out.find("point").get("lat") == "39.0"  # type: ignore[union-attr]
    from_json = marked_event(
        b'{"track": [[39.0, 125.7, 0], [40.1, 133.2, 950]]}', "application/json", delivered(), report_id="r-1"
    )
    assert from_json is not None
    track = ET.fromstring(from_json)
    assert track.get("uid") == "gsomia.r-1" and track.find("point").get("lat") == "40.1"  # type: ignore[union-attr]
    assert track.get("releasableto") == "JPN KOR"
    assert marked_event(b"hello", "text/plain", delivered(), report_id="r") is None


def test_an_event_is_stale_past_its_stale_time_and_the_tolerance() -> None:
    ev = parse_cot(EVENT)
    stale = datetime(2019, 11, 22, 1, 0, tzinfo=UTC)
    assert ev.stale == "2019-11-22T01:00:00Z" and ev.expires() == stale
    assert timedelta(seconds=5) == STALE_TOLERANCE
    assert not is_stale(stale, stale + STALE_TOLERANCE)  # a sensor's clock a little ahead of ours
    assert is_stale(stale, stale + STALE_TOLERANCE + timedelta(microseconds=1))
    assert not is_stale(stale, stale - timedelta(hours=1))


def test_an_event_sent_on_keeps_the_originators_stale_and_a_json_track_is_stale_from_its_creation() -> None:
    marked = marked_event(EVENT, "application/cot+xml", delivered(), report_id="r")
    assert marked is not None and event_stale(marked) == datetime(2019, 11, 22, 1, 0, tzinfo=UTC)
    created = datetime(2019, 11, 22, 0, 58, 30, tzinfo=UTC)
    track = marked_event(
        b'{"track": [[39.0, 125.7, 0]]}', "application/json", delivered(), report_id="r", created=created
    )
    assert track is not None
    out = ET.fromstring(track)
    assert out.get("time") == out.get("start") == "2019-11-22T00:58:30.000000Z"
    assert event_stale(track) == created + TRACK_STALE
    # with no creation instant known, a JSON track is valid for TRACK_STALE from now
    fresh = marked_event(b'{"track": [[39.0, 125.7, 0]]}', "application/json", delivered(), report_id="r")
    assert fresh is not None and event_stale(fresh) > datetime.now(UTC) + TRACK_STALE - timedelta(seconds=30)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"track": ' + b"[" * 100_000 + b"0" + b"]" * 100_000 + b"}",  # deeper than the stack
        b'{"track": [[NaN, 125.7, 0]]}',
        b'{"track": [[39.0, 125.7]]}',
        b'{"track": []}',
        b"[1, 2, 3]",
        b'{"track": [[39.0, 125.7, 0]]',
        b'"\xff"',
    ],
)
def test_a_json_payload_that_is_not_a_track_makes_no_event(payload: bytes) -> None:
    assert marked_event(payload, "application/json", delivered(), report_id="r") is None


def test_endpoints_get_only_what_the_marking_allows() -> None:
    assert refusal(endpoint(), delivered(), LADDER) is None
    assert refusal(endpoint(cleared_to="군사I급비밀"), delivered(), LADDER) is None
    assert "cleared to 군사III급비밀" in str(refusal(endpoint(cleared_to="군사III급비밀"), delivered(), LADDER))
    assert "USA" in str(refusal(endpoint(audience=("KOR", "USA")), delivered(), LADDER))
    assert refusal(endpoint(audience=("KOR", "USA")), delivered(rel_to=("USA",)), LADDER) is None
    assert "not in the party's ladder" in str(refusal(endpoint(), delivered(level="??"), LADDER))
    assert releasable_to(delivered(noforn=True, rel_to=("USA",))) == ("KOR",)
    ex = DeliveredMarking(**{**{s: getattr(delivered(), s) for s in DeliveredMarking.__slots__}, "exercise": True})
    assert "exercise" in str(refusal(endpoint(), ex, LADDER)) and refusal(endpoint(exercise=True), ex, LADDER) is None
    with pytest.raises(InvalidInput):
        endpoints_from_config([{"name": "x", "url": "http://h:1", "cleared_to": "x", "audience": ["KOR"]}])


def test_tcp_streams_split_into_events() -> None:
    proto = bytes(xml2proto(EVENT.decode(), None))
    stream = bytes(xml2proto(EVENT.decode(), __import__("takproto").TAKProtoVer.STREAM))
    buf = bytearray(EVENT + b"\n" + EVENT[:40])
    assert split_stream(buf) == [EVENT] and bytes(buf) == EVENT[:40]
    buf += EVENT[40:] + stream
    out = split_stream(buf)
    assert out[0] == EVENT and read_event(out[1]).uid == "t-1" and not buf
    assert proto[:3] == b"\xbf\x01\xbf"
    with pytest.raises(InvalidInput):
        split_stream(bytearray(b"<event " + b"x" * 70_000))


def _event(**attrs: str) -> bytes:
    """EVENT with attributes of the event or its point replaced (a value of "" removes one)."""
    doc = EVENT.decode()
    for name, value in attrs.items():
        doc = re.sub(rf' {name}="[^"]*"', f' {name}="{value}"' if value else "", doc, count=1)
    return doc.encode()


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ({"time": "0001-01-01T00:00:00+01:00"}, "CoT time '0001-01-01T00:00:00+01:00' is out of range"),
        ({"start": ""}, "needs start"),
        ({"stale": ""}, "needs stale"),
        ({"stale": "yesterday"}, "CoT stale 'yesterday' is not an instant"),
        ({"stale": "2019-11-22T00:57:00Z"}, "stale is before its start"),
        ({"start": "2019-11-22T00:58:00"}, "has no offset"),
        ({"lat": "999"}, "lat '999' is out of range"),
        ({"lon": "abc"}, "lon 'abc' is not a number"),
        ({"lon": "-180.5"}, "out of range"),
        ({"hae": "nan"}, "hae 'nan' is out of range"),
        ({"lat": ""}, "needs lat"),
    ],
)
def test_an_event_whose_times_or_point_do_not_read_is_refused(attrs: dict[str, str], reason: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(reason)):
        parse_cot(_event(**attrs))


def test_an_event_time_out_of_range_is_malformed_not_a_crash() -> None:
    # Read as text it is an instant; in UTC it would be before year 1.
    event = CotEvent(uid="u", type="a-h-A", time="0001-01-01T00:00:00+01:00", xml=b"")
    with pytest.raises(InvalidInput, match="out of range"):
        event.instant()
    proto = takproto.functions.parse_proto(bytearray(xml2proto(EVENT.decode(), None)))
    proto.cotEvent.sendTime = 2**63 - 1
    with pytest.raises(InvalidInput, match="out of range"):
        read_event(b"\xbf\x01\xbf" + proto.SerializeToString())


def test_a_stream_length_that_never_ends_closes_the_stream_not_fills_memory() -> None:
    with pytest.raises(InvalidInput, match="over the size limit"):
        split_stream(bytearray(b"\xbf" + b"\xff" * 10 + b"x" * 1000))
    with pytest.raises(InvalidInput, match="over the size limit"):
        split_stream(bytearray(b"\xbf\xff\xff\xff"))
    with pytest.raises(InvalidInput, match="longer than a varint"):
        split_stream(bytearray(b"\xbf" + b"\x80" * 11))  # continuation bytes that add nothing
    partial = bytearray(b"\xbf\x81")  # the length's next byte has not arrived
    assert split_stream(partial) == [] and partial == b"\xbf\x81"


def test_udp_keeps_a_tak_message_whole_and_trims_only_xml() -> None:
    # A TAK protocol message is binary: its last byte may be 0x0a (a detail ending in a newline).
    offered: list[bytes] = []
    arrived = threading.Event()

    class Ingest:
        def offer(self, data: bytes, source: str = "") -> bool:
            offered.append(data)
            if len(offered) == 2:
                arrived.set()
            return True

    listeners = CotListeners([Listen("udp", "127.0.0.1", 0)], Ingest())  # type: ignore[arg-type]
    ((_, host, port),) = listeners.start()
    try:
        tak = b"\xbf\x01\xbf" + b"\x12\x03abc\n"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(tak, (host, port))
            s.sendto(b"\n " + EVENT + b"\n", (host, port))
        assert arrived.wait(10)
    finally:
        listeners.stop()
    assert sorted(offered) == sorted([tak, EVENT])


def test_a_tak_message_keeps_its_detail_and_marking_attributes_in_xml() -> None:
    # Typed detail fields (a track's speed and course, a contact) and the elements only
    # xmlDetail carries (remarks) come back as the XML event had them.
    xml = EVENT.replace(
        b'<detail><track speed="1800"/></detail>',
        b'<detail><track speed="1800.5" course="95.0"/><contact callsign="SENTINEL-1"/>'
        b"<remarks>TEL seen leaving the site</remarks></detail>",
    )
    for framing in (None, takproto.TAKProtoVer.STREAM):
        event = ET.fromstring(read_event(bytes(xml2proto(xml.decode(), framing))).xml)
        detail = event.find("detail")
        assert detail is not None
        track, contact = detail.find("track"), detail.find("contact")
        assert track is not None and (float(track.get("speed", "")), float(track.get("course", ""))) == (1800.5, 95.0)
        assert contact is not None and contact.get("callsign") == "SENTINEL-1"
        assert detail.findtext("remarks") == "TEL seen leaving the site"
        assert (event.get("access"), event.get("uid")) == ("Unclassified", "t-1")


# --- what goes out to TAK is what the node would take in ----------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        b'{"track": [[1000, -500, 0]]}',  # out of range
        b'{"track": [["nan", "0", "inf"]]}',
        b'{"track": [[39.0, "1e999", 0]]}',  # infinite once read
        b'{"track": [[39.0, 125.7, 0]], "cot_type": "not a cot type!"}',
        b'{"track": [[39.0, 125.7, 0]], "cot_type": "a-h-A-M\\u0001"}',
        b'{"track": [[39.0, 125.7, 0]], "cot_type": "t-x-d-d"}',  # a TAK delete tasking
        b'{"track": [[39.0, 125.7, 0]], "cot_type": "b-m-p-w"}',  # a waypoint, not a track
        b'{"track": [[39.0, 125.7, 0]], "cot_type": "a"}',
        b'{"track": [[39.0, 125.7, 0]], "cot_type": 12}',
    ],
)
def test_a_json_track_the_node_would_not_take_in_is_not_sent_on(doc: bytes) -> None:
    assert marked_event(doc, "application/json", delivered(), report_id="r", created=datetime.now(UTC)) is None


def test_only_atoms_go_out_to_tak_whatever_type_the_originator_chose() -> None:
    # A tasking (delete, for one) passes the CoT type pattern but is no track: not sent on.
    for kind in ("t-x-d-d", "b-m-p-w", "u-d-f"):
        assert marked_event(_event(type=kind), "application/cot+xml", delivered(), report_id="r") is None
    friendly = marked_event(_event(type="a-f-G-U-C"), "application/cot+xml", delivered(), report_id="r")
    assert friendly is not None and ET.fromstring(friendly).get("type") == "a-f-G-U-C"
    track = b'{"track": [[39.0, 125.7, 0]], "cot_type": "a-h-A-M-B"}'
    out = marked_event(track, "application/json", delivered(), report_id="r", created=datetime.now(UTC))
    assert out is not None and ET.fromstring(out).get("type") == "a-h-A-M-B"


def _nested(depth: int) -> bytes:
    """EVENT with elements nested ``depth`` deep in all (``<event>`` the first)."""
    inner = depth - 3  # <event>, <detail> and the <track> inside
    return EVENT.replace(b"<detail>", b"<detail>" + b"<a>" * inner).replace(
        b"</detail>", b"</a>" * inner + b"</detail>"
    )


def test_an_event_nested_deeper_than_the_limit_is_refused_on_input_and_never_crashes_the_output() -> None:
    assert parse_cot(_nested(MAX_DEPTH)).uid == "t-1"
    assert marked_event(_nested(MAX_DEPTH), "application/cot+xml", delivered(), report_id="r") is not None
    for depth in (MAX_DEPTH + 1, 5000):
        with pytest.raises(InvalidInput, match="nested"):
            parse_cot(_nested(depth))
        assert marked_event(_nested(depth), "application/cot+xml", delivered(), report_id="r") is None
    proto = takproto.functions.parse_proto(bytearray(xml2proto(EVENT.decode(), None)))
    proto.cotEvent.detail.xmlDetail = "<a>" * 5000 + "</a>" * 5000
    with pytest.raises(InvalidInput, match="nested"):
        read_event(b"\xbf\x01\xbf" + proto.SerializeToString())


def test_an_event_valid_for_longer_than_the_limit_is_refused() -> None:
    with pytest.raises(InvalidInput, match="valid for at most"):
        parse_cot(_event(stale="9999-12-31T23:59:59Z"))
    start = datetime(2019, 11, 22, 0, 58, tzinfo=UTC)
    assert parse_cot(_event(stale=(start + MAX_VALIDITY).strftime("%Y-%m-%dT%H:%M:%SZ"))).uid == "t-1"
    with pytest.raises(InvalidInput, match="valid for at most"):
        parse_cot(_event(stale=(start + MAX_VALIDITY + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")))
    assert marked_event(_event(stale="9999-12-31T23:59:59Z"), "application/cot+xml", delivered(), report_id="r") is None


def test_an_event_from_the_future_is_refused_against_the_nodes_clock() -> None:
    at = datetime(2019, 11, 22, 0, 58, tzinfo=UTC)  # EVENT's time and start
    assert parse_cot(EVENT, now=at - AHEAD_TOLERANCE).uid == "t-1"  # a sensor's clock a little ahead
    for now in (at - AHEAD_TOLERANCE - timedelta(seconds=1), datetime(2000, 1, 1, tzinfo=UTC)):
        with pytest.raises(InvalidInput, match="ahead of the node's clock"):
            parse_cot(EVENT, now=now)
        with pytest.raises(InvalidInput, match="ahead of the node's clock"):
            read_event(EVENT, now=now)
        # the recipient allows for the nodes' clocks being apart as well
        assert marked_event(EVENT, "application/cot+xml", delivered(), report_id="r", now=now - NODE_SKEW) is None
    future = "2999-01-01T00:00:00Z"
    with pytest.raises(InvalidInput, match="CoT time '2999"):
        parse_cot(_event(time=future), now=at)
    track = b'{"track": [[39.0, 125.7, 0]]}'
    created = datetime(2999, 1, 1, tzinfo=UTC)  # a report's signed creation far ahead
    assert marked_event(track, "application/json", delivered(), report_id="r", created=created, now=at) is None
    assert marked_event(track, "application/json", delivered(), report_id="r", created=at, now=at) is not None
