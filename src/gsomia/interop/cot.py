"""Cursor-on-Target events ⇄ gsomia reports (docs/interop.md §5).

In: a CoT event from a party's own sensor or TAK server becomes a report under the first rule
whose CoT type prefix matches (topic, level, recipients, caveats); an event no rule covers is
not sent (nothing goes out unmarked, docs/design.md §3 rule 7).

Out: a received missile-track report becomes a CoT event whose MIL-STD-6090 ``access``,
``caveat`` and ``releasableto`` attributes come from the translated marking, and it goes only to
an endpoint the marking allows: cleared at the delivery's level or above, and seen only by
parties the originator's caveats and the third-party rule allow (docs/design.md §3 rules 4
and 6). TAK clients display these attributes but do not enforce them, so the node does.

Stale: an event is valid until its ``stale`` time (the CoT event schema); past it, by more than
:data:`STALE_TOLERANCE`, it is neither sent as a report nor sent on to TAK (docs/interop.md §5).
An event valid for longer than :data:`MAX_VALIDITY`, or whose ``time`` or ``start`` is ahead of
the node's clock by more than :data:`AHEAD_TOLERANCE` (on the way out, by more than
:data:`RECIPIENT_AHEAD_TOLERANCE`, which allows for the two nodes' clocks being apart), is
refused: a track valid for ever, or from a date to come, would stay on the recipients' TAK
clients as a current one.

Out to TAK goes only what the node would take in (:func:`parse_cot`), and only tracks: a CoT
type of the atoms (``a-…``); a tasking such as the delete ``t-x-d-d`` is not sent on, whatever
the originator chose.

Pure: XML in, XML out; no sockets, no clock (the caller gives the instant).
"""

from __future__ import annotations

import math
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.parsers import expat

with warnings.catch_warnings():
    # pytak warns at import that its optional TAK-enrolment helper (aiohttp) is missing; the
    # bridge uses only its CoT builders.
    warnings.simplefilter("ignore", UserWarning)
    import pytak
from takproto.functions import parse_proto

from gsomia import jsontext
from gsomia.domain.parties import PARTY_ID
from gsomia.domain.topics import TOPIC, topic_matches
from gsomia.errors import InvalidInput
from gsomia.interop.stix import DeliveredMarking

COT_MEDIA_TYPE = "application/cot+xml"
"""The content type of a report whose payload is one CoT event."""
XML_MEDIA_TYPES = frozenset({COT_MEDIA_TYPE, "application/xml", "text/xml"})
"""Content types (without parameters) of a report whose payload is read as one CoT event."""
JSON_MEDIA_TYPE = "application/json"
"""The content type of a report whose payload is read as a JSON track."""
MAX_EVENT_BYTES = 64 * 1024
_TAK_MAGIC = 0xBF
_COT_TYPE = re.compile(r"^[a-zA-Z0-9](?:-[a-zA-Z0-9.:]+)*$")
MAX_DEPTH = 32
"""How deep elements may nest in a CoT event, ``<event>`` the first: a real event's ``<detail>``
is a few levels deep. Nesting thousands deep would pass the parser and then exhaust the stack of
the serializer that sends the event on."""
STALE_TOLERANCE = timedelta(seconds=5)
"""How far past its ``stale`` time an event is still taken: the clocks of a sensor, a TAK server
and the node are never quite together."""
MAX_VALIDITY = timedelta(hours=24)
"""The longest an event may be valid, from its ``start`` to its ``stale``: a sensor's track is
valid for seconds to minutes, and a position not reported again within a day is no current
track."""
AHEAD_TOLERANCE = timedelta(seconds=30)
"""How far ahead of the node's clock an event's ``time`` and ``start`` may be when it comes in
from a sensor: the sensor's clock and the node's are a few seconds apart."""
NODE_SKEW = AHEAD_TOLERANCE
"""How far apart the originator's node's clock and the recipient's may be. An event the
originator's node took in at up to :data:`AHEAD_TOLERANCE` ahead of its own clock may be that
much further ahead of the recipient's."""
RECIPIENT_AHEAD_TOLERANCE = AHEAD_TOLERANCE + NODE_SKEW
"""How far ahead of the recipient's clock a received event's ``time`` and ``start`` may be
before it is sent on to TAK (:func:`mark_event`): the ingest's tolerance and the nodes' skew."""
TRACK_STALE = timedelta(seconds=120)
"""How long a track received as JSON (which has no ``stale`` of its own) is valid from its
report's creation."""
JSON_TRACK_TYPE = "a-h-A-M"
"""The CoT type of a JSON track that names none (``cot_type``): a hostile air missile."""
_STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


def is_stale(stale: datetime, now: datetime) -> bool:
    """True if an event valid until ``stale`` is no longer valid at ``now`` (more than
    :data:`STALE_TOLERANCE` past it)."""
    return now - stale > STALE_TOLERANCE


@dataclass(frozen=True, slots=True)
class CotEvent:
    """The parts of a CoT event gsomia reads (the XML is kept as received)."""

    uid: str
    type: str
    time: str
    xml: bytes
    stale: str = ""

    def instant(self) -> datetime:
        """The event's ``time`` as an aware instant.

        Raises:
            InvalidInput: ``time`` is not an ISO 8601 instant with an offset.
        """
        return _cot_instant("time", self.time)

    def expires(self) -> datetime:
        """The event's ``stale`` as an aware instant: it is valid until then.

        Raises:
            InvalidInput: ``stale`` is not an ISO 8601 instant with an offset.
        """
        return _cot_instant("stale", self.stale)


def parse_cot(data: bytes, *, now: datetime | None = None, ahead: timedelta = AHEAD_TOLERANCE) -> CotEvent:
    """Read one CoT event (XML); ``now``, the node's clock, where given, refuses an event from
    the future (its ``time`` or ``start`` ahead by more than ``ahead``: :data:`AHEAD_TOLERANCE`
    on input from a sensor).

    Raises:
        InvalidInput: not a CoT event, too large, nested deeper than :data:`MAX_DEPTH`, valid
            for longer than :data:`MAX_VALIDITY`, or carrying a DTD (entity expansion is never
            attempted on input from the network).
    """
    if len(data) > MAX_EVENT_BYTES:
        raise InvalidInput(f"a CoT event is at most {MAX_EVENT_BYTES} bytes")
    _screen(data)
    try:
        root = ET.fromstring(data)  # noqa: S314 - no DTD (refused above), size bounded
    except (ET.ParseError, ValueError, LookupError) as e:
        raise InvalidInput(f"not XML: {e}") from e
    if root.tag != "event":
        raise InvalidInput("not a CoT event (the root element is not <event>)")
    uid, kind, time = root.get("uid"), root.get("type"), root.get("time")
    if not uid or not kind or not time:
        raise InvalidInput("a CoT event needs uid, type and time")
    if not _COT_TYPE.fullmatch(kind):
        raise InvalidInput(f"CoT type {kind!r} is malformed")
    point = root.find("point")
    if point is None:
        raise InvalidInput("a CoT event needs a <point>")
    _check_times(root, now, ahead)
    _check_point(point)
    return CotEvent(uid=uid, type=kind, time=time, xml=data, stale=root.get("stale", ""))


def _cot_instant(name: str, text: str | None) -> datetime:
    """The event attribute ``name`` (``time``, ``start``, ``stale``) as an aware UTC instant.

    Raises:
        InvalidInput: missing, not an ISO 8601 instant with an offset, or out of range in UTC.
    """
    if not text:
        raise InvalidInput(f"a CoT event needs {name} (an ISO 8601 instant with an offset)")
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidInput(f"CoT {name} {text!r} is not an instant") from e
    if at.tzinfo is None:
        raise InvalidInput(f"CoT {name} {text!r} has no offset")
    try:
        return at.astimezone(UTC)
    except OverflowError as e:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise InvalidInput(f"CoT {name} {text!r} is out of range") from e


def instant_or_none(text: str) -> datetime | None:
    """``text`` as an aware UTC instant if it is an ISO 8601 instant with an offset (a report's
    ``created``), else None."""
    try:
        return _cot_instant("created", text)
    except InvalidInput:
        return None


def _check_times(root: ET.Element, now: datetime | None, ahead: timedelta = AHEAD_TOLERANCE) -> None:
    """``time``, ``start`` and ``stale`` are instants, the event is not stale before it starts
    (the CoT event schema's validity interval) nor valid for longer than :data:`MAX_VALIDITY`,
    and, given the node's clock ``now``, ``time`` and ``start`` are not ahead of it by more than
    ``ahead``."""
    times = {name: _cot_instant(name, root.get(name)) for name in ("time", "start", "stale")}
    start, stale = times["start"], times["stale"]
    if stale < start:
        raise InvalidInput("a CoT event's stale is before its start")
    if stale - start > MAX_VALIDITY:
        raise InvalidInput(f"a CoT event is valid for at most {MAX_VALIDITY.total_seconds() / 3600:g} hours")
    if now is None:
        return
    for name in ("time", "start"):
        if times[name] - now > ahead:
            raise InvalidInput(
                f"CoT {name} {root.get(name)!r} is ahead of the node's clock by more than {ahead.total_seconds():g} s"
            )


def _check_point(point: ET.Element) -> None:
    """``lat`` and ``lon`` are WGS 84 degrees in range; ``hae``, ``ce`` and ``le``, where given,
    are finite numbers."""
    bounds = {"lat": 90.0, "lon": 180.0}
    for name in ("lat", "lon", "hae", "ce", "le"):
        text = point.get(name)
        if text is None:
            if name in bounds:
                raise InvalidInput(f"a CoT <point> needs {name}")
            continue
        try:
            value = float(text)
        except ValueError as e:
            raise InvalidInput(f"CoT point {name} {text!r} is not a number") from e
        if not math.isfinite(value) or abs(value) > bounds.get(name, math.inf):
            raise InvalidInput(f"CoT point {name} {text!r} is out of range")


def _screen(data: bytes) -> None:
    """Refuse a document type declaration in whatever encoding the XML parser would read the
    event in (a byte search misses ``<!DOCTYPE`` in UTF-16): expat reports it before it reads
    any entity declaration, and the handler stops the parse there. Refuse as well elements
    nested deeper than :data:`MAX_DEPTH`, as the parser reaches them.

    Raises:
        InvalidInput: a DTD, nesting too deep, or not XML (an encoding the parser cannot read
            included).
    """
    depth = 0

    def refuse(*_: object) -> None:
        raise InvalidInput("a CoT event with a DTD is refused")

    def opened(*_: object) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_DEPTH:
            raise InvalidInput(f"a CoT event nested deeper than {MAX_DEPTH} elements is refused")

    def closed(*_: object) -> None:
        nonlocal depth
        depth -= 1

    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = opened
    parser.EndElementHandler = closed
    try:
        parser.Parse(data, True)
    except (expat.ExpatError, ValueError, LookupError) as e:  # also an encoding expat cannot read
        raise InvalidInput(f"not XML: {e}") from e


def proto_to_xml(data: bytes) -> bytes:
    """A TAK protocol v1 message (mesh or stream framing) as CoT XML.

    Raises:
        InvalidInput: not a TAK protocol message with a CoT event.
    """
    try:
        msg = parse_proto(bytearray(data))
    except Exception as e:  # protobuf raises its own DecodeError, and others on garbage
        raise InvalidInput(f"not a TAK protocol message: {e.__class__.__name__}") from e
    if msg is None or not msg.HasField("cotEvent"):
        raise InvalidInput("a TAK protocol message without a CoT event")
    ev = msg.cotEvent

    def stamp(ms: int) -> str:
        try:
            return datetime.fromtimestamp(ms / 1000, UTC).strftime(_STAMP)
        except (ValueError, OverflowError, OSError) as e:
            raise InvalidInput(f"a TAK protocol time of {ms} ms since 1970 is out of range") from e

    event = pytak.cot_event(
        lat=ev.lat,
        lon=ev.lon,
        hae=ev.hae,
        ce=ev.ce,
        le=ev.le,
        uid=ev.uid,
        cot_type=ev.type,
        how=ev.how or "m-g",
        flow_tag=False,
    )
    event.set("time", stamp(ev.sendTime))
    event.set("start", stamp(ev.startTime))
    event.set("stale", stamp(ev.staleTime))
    for name in ("access", "qos", "opex"):
        if getattr(ev, name):
            event.set(name, getattr(ev, name))
    if ev.HasField("detail"):
        detail = event.find("detail")
        if detail is None:
            detail = ET.SubElement(event, "detail")
        detail.extend(_proto_detail(ev.detail))
    return bytes(pytak.serialize_cot(event))


# The TAK protocol's typed detail fields: (field, CoT XML element, attributes), as takproto
# maps them from XML.
_TYPED_DETAIL = (
    ("contact", "contact", ("endpoint", "callsign")),
    ("group", "__group", ("name", "role")),
    ("precisionLocation", "precisionlocation", ("geopointsrc", "altsrc")),
    ("status", "status", ("battery",)),
    ("takv", "takv", ("device", "platform", "os", "version")),
    ("track", "track", ("speed", "course")),
)


def _proto_detail(detail: Any) -> list[ET.Element]:
    """The CoT ``<detail>`` children a TAK protocol detail carries: its ``xmlDetail`` (the
    elements the typed fields do not cover, as XML text) and its typed fields (a track's speed
    and course, a contact, a group…), so that nothing of the event is lost on the way to XML.

    Raises:
        InvalidInput: ``xmlDetail`` is not XML elements (or carries a DTD, or nests too deep).
    """
    out: list[ET.Element] = []
    if detail.xmlDetail:
        text = f"<detail>{detail.xmlDetail}</detail>".encode()
        _screen(text)
        try:
            out += list(ET.fromstring(text))  # noqa: S314 - no DTD (refused above), size bounded by the message
        except ET.ParseError as e:
            raise InvalidInput(f"a TAK protocol detail that is not XML: {e}") from e
    for field, tag, attributes in _TYPED_DETAIL:
        if detail.HasField(field):
            message = getattr(detail, field)
            out.append(ET.Element(tag, {a: str(getattr(message, a)) for a in attributes}))
    return out


def read_event(data: bytes, *, now: datetime | None = None) -> CotEvent:
    """One CoT event from XML or TAK protocol bytes, checked as :func:`parse_cot` checks it
    (against the node's clock ``now``, where given).

    Raises:
        InvalidInput: neither, or an event :func:`parse_cot` refuses.
    """
    if data[:1] == bytes([_TAK_MAGIC]):
        data = proto_to_xml(data)
    return parse_cot(data, now=now)


# --- rules: CoT in ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CotRule:
    """CoT events whose type starts with ``type_prefix`` become reports on ``topic`` at
    ``level`` (of the party's own ladder) to ``recipients`` (None: every party), with caveats."""

    type_prefix: str
    topic: str
    level: str
    recipients: tuple[str, ...] | None = None
    rel_to: tuple[str, ...] | None = None
    noforn: bool = False
    orcon: bool = False

    def __post_init__(self) -> None:
        if not self.type_prefix or not _COT_TYPE.fullmatch(self.type_prefix.rstrip("-")):
            raise InvalidInput(f"CoT rule: type prefix {self.type_prefix!r} is malformed")
        if not TOPIC.fullmatch(self.topic):
            raise InvalidInput(f"CoT rule: {self.topic!r} is not a topic")
        if not self.level.strip():
            raise InvalidInput("CoT rule: give a level of the party's ladder")
        for p in (*(self.recipients or ()), *(self.rel_to or ())):
            if not PARTY_ID.fullmatch(p):
                raise InvalidInput(f"CoT rule: {p!r} is not a party id")

    def covers(self, cot_type: str) -> bool:
        """True if the rule applies to events of ``cot_type`` (whole dash-separated atoms)."""
        prefix = self.type_prefix.rstrip("-")
        return cot_type == prefix or cot_type.startswith(prefix + "-")


def rule_for(rules: Sequence[CotRule], cot_type: str) -> CotRule | None:
    """The most specific rule (longest prefix) covering ``cot_type``, or None."""
    best: CotRule | None = None
    for r in rules:
        if r.covers(cot_type) and (best is None or len(r.type_prefix) > len(best.type_prefix)):
            best = r
    return best


def rules_from_config(items: Sequence[Mapping[str, Any]]) -> tuple[CotRule, ...]:
    """Rules from the configuration's ``cot.rules``.

    Raises:
        InvalidInput: a rule has unknown members or bad values.
    """
    out = []
    for item in items:
        unknown = set(item) - {"type_prefix", "topic", "level", "recipients", "rel_to", "noforn", "orcon"}
        if unknown:
            raise InvalidInput(f"CoT rule: unknown member(s) {', '.join(sorted(unknown))}")
        out.append(
            CotRule(
                type_prefix=str(item.get("type_prefix", "")),
                topic=str(item.get("topic", "")),
                level=str(item.get("level", "")),
                recipients=tuple(item["recipients"]) if item.get("recipients") is not None else None,
                rel_to=tuple(item["rel_to"]) if item.get("rel_to") is not None else None,
                noforn=bool(item.get("noforn", False)),
                orcon=bool(item.get("orcon", False)),
            )
        )
    return tuple(out)


# --- endpoints: CoT out ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CotEndpoint:
    """A TAK endpoint of the party: where, the highest level it is cleared for (a level of the
    party's own ladder), which parties' people see it, and whether it takes exercise traffic."""

    name: str
    url: str
    cleared_to: str
    audience: tuple[str, ...]
    exercise: bool = False

    def __post_init__(self) -> None:
        if not re.fullmatch(r"(tcp|udp)://[^\s/:]+:[0-9]{1,5}", self.url):
            raise InvalidInput(f"CoT endpoint {self.name}: url is tcp://HOST:PORT or udp://HOST:PORT")
        if not self.audience or not all(PARTY_ID.fullmatch(p) for p in self.audience):
            raise InvalidInput(f"CoT endpoint {self.name}: audience lists the party ids whose people see it")

    @property
    def transport(self) -> tuple[str, str, int]:
        """``(scheme, host, port)``."""
        scheme, rest = self.url.split("://", 1)
        host, port = rest.rsplit(":", 1)
        return scheme, host, int(port)


def releasable_to(delivered: DeliveredMarking) -> tuple[str, ...]:
    """Who may see a received report: the recipient, the originator, and the parties the
    originator's REL TO list names; only the recipient under NOFORN. Anyone else is a third
    party (docs/design.md §3 rule 6)."""
    o = delivered.originator
    if o.noforn:
        return (delivered.recipient,)
    return tuple(sorted({delivered.recipient, o.party, *(o.rel_to or ())}))


def refusal(endpoint: CotEndpoint, delivered: DeliveredMarking, ladder: Mapping[str, int]) -> str | None:
    """Why ``delivered`` may not go to ``endpoint``, or None if it may.

    ``ladder`` maps each level of the recipient's ladder to its rank (1 the highest). An unknown
    level refuses: nothing is released on a guess (rule 7)."""
    level_rank, cleared_rank = ladder.get(delivered.level), ladder.get(endpoint.cleared_to)
    if level_rank is None:
        return f"level {delivered.level!r} is not in the party's ladder"
    if cleared_rank is None:
        return f"endpoint {endpoint.name}: cleared_to {endpoint.cleared_to!r} is not in the party's ladder"
    if level_rank < cleared_rank:
        return f"endpoint {endpoint.name} is cleared to {endpoint.cleared_to}, below {delivered.level}"
    allowed = set(releasable_to(delivered))
    outside = sorted(set(endpoint.audience) - allowed)
    if outside:
        return f"endpoint {endpoint.name} is seen by {', '.join(outside)}, to whom the marking does not release"
    if delivered.exercise and not endpoint.exercise:
        return f"an exercise delivery does not go to {endpoint.name}, which takes no exercise traffic"
    return None


def marking_attributes(delivered: DeliveredMarking) -> dict[str, str]:
    """MIL-STD-6090 event attributes for a received report: ``access`` is the recipient's own
    level (Art. 4.2), ``caveat`` names the originator's marking and its handling caveats,
    ``releasableto`` the parties it may reach (space-separated ids), and ``opex`` ``e`` for an
    exercise (an event the originator marked as an exercise or a simulation keeps its own
    ``opex``: :func:`mark_event`)."""
    o = delivered.originator
    caveat = [f"ORIGINATOR {o.party} {o.level}"]
    if o.orcon:
        caveat.append("ORCON")
    if o.noforn:
        caveat.append("NOFORN")
    attrs = {
        "access": delivered.level,
        "caveat": " ".join(caveat),
        "releasableto": " ".join(releasable_to(delivered)),
    }
    if delivered.exercise:
        attrs["opex"] = "e"
    return attrs


def received_opex(originator: str | None, *, exercise: bool) -> str | None:
    """The ``opex`` a received event goes out with, given the originator's (None: it set none).

    MIL-STD-6090 ``opex`` values begin with ``o`` (operation), ``e`` (exercise) or ``s``
    (simulation), optionally followed by a name. The originator's is kept when it says exercise
    or simulation: such a track must never reach a TAK client as a real one. Otherwise an
    exercise delivery's event says ``e``, and any other says nothing (a TAK client takes an
    event without ``opex`` as real): a received event never says operation for an exercise
    delivery."""
    if originator and originator[:1].lower() in ("e", "s"):
        return originator
    return "e" if exercise else None


def marked_event(
    payload: bytes,
    content_type: str,
    delivered: DeliveredMarking,
    *,
    report_id: str,
    created: datetime | None = None,
    now: datetime | None = None,
) -> bytes | None:
    """:func:`mark_event`, or None when the payload is not a track the node sends on."""
    try:
        return mark_event(payload, content_type, delivered, report_id=report_id, created=created, now=now)
    except InvalidInput:
        return None


def mark_event(
    payload: bytes,
    content_type: str,
    delivered: DeliveredMarking,
    *,
    report_id: str,
    created: datetime | None = None,
    now: datetime | None = None,
) -> bytes:
    """The CoT event to emit for a received report, its marking attributes set. The payload is
    a CoT event or JSON ``{"track": [[lat, lon, hae], …]}`` (with ``cot_type``, where given).

    Attributes the originator set on its event (``access``, ``caveat``, ``releasableto``) are
    replaced: they spoke of the originator's ladder. Its ``opex`` is kept when it says exercise
    or simulation, and is ``e`` for an exercise delivery otherwise (:func:`received_opex`). Its
    ``time``, ``start`` and ``stale`` are kept. A JSON track's event is of the report's creation
    instant ``created`` (``time`` and ``start``), valid for :data:`TRACK_STALE` from it
    (``stale``); without ``created``, from now. Either way the event is one :func:`parse_cot`
    takes, of a track type (the atoms, ``a-…``); its times are checked against the recipient's
    clock ``now``, where given, with :data:`RECIPIENT_AHEAD_TOLERANCE` (the originator's node
    checked them against its own clock, which may be apart from the recipient's).

    Raises:
        InvalidInput: the payload is not such a track: not a CoT event nor a JSON track, an
            event the node would refuse on input, or a type that is no track (a tasking).
    """
    attrs = marking_attributes(delivered)
    kind = media_type(content_type)
    if kind in XML_MEDIA_TYPES:
        _check_track_type(parse_cot(payload, now=now, ahead=RECIPIENT_AHEAD_TOLERANCE).type)
        event = ET.fromstring(payload)  # noqa: S314 - checked by parse_cot
        opex = received_opex(event.get("opex"), exercise=delivered.exercise)
        for name in ("access", "caveat", "releasableto", "rel_to", "opex"):
            event.attrib.pop(name, None)
        for name, value in attrs.items():
            event.set(name, value)
        if opex is not None:
            event.set("opex", opex)
    elif kind == JSON_MEDIA_TYPE:
        event = _json_track(payload, attrs, report_id=report_id, created=created, now=now)
    else:
        raise InvalidInput(f"a payload of content type {kind!r} is not a track")
    try:
        return bytes(pytak.serialize_cot(event))
    except RecursionError as e:  # nesting is bounded on input: not expected
        raise InvalidInput("a CoT event nested too deep to write") from e


def _check_track_type(kind: str) -> None:
    """``kind`` is a CoT type of the atoms (``a-`` and at least one more atom): what a track
    is. A tasking (``t-…``, the delete ``t-x-d-d`` among them), a drawing or a waypoint
    (``u-…``, ``b-…``) is not sent on to TAK, whatever the originator chose.

    Raises:
        InvalidInput: a malformed type, or one that is no track.
    """
    if not _COT_TYPE.fullmatch(kind):
        raise InvalidInput(f"CoT type {kind!r} is malformed")
    if not kind.startswith("a-"):
        raise InvalidInput(f"CoT type {kind!r} is not a track (only atoms, a-…, are sent on)")


def _json_track(
    payload: bytes, attrs: Mapping[str, str], *, report_id: str, created: datetime | None, now: datetime | None
) -> ET.Element:
    """The event of a JSON track's last point, checked as :func:`parse_cot` checks an event.

    Raises:
        InvalidInput: not a JSON track, a point out of range, a type that is no track, or times
            the node would refuse.
    """
    try:
        doc = jsontext.parse(payload)
        lat, lon, hae = (float(v) for v in doc["track"][-1][:3])
        cot_type = doc.get("cot_type", JSON_TRACK_TYPE)
    except (ValueError, KeyError, IndexError, TypeError, OverflowError, UnicodeDecodeError) as e:
        raise InvalidInput("not a JSON track") from e
    if not isinstance(cot_type, str):
        raise InvalidInput("a JSON track's cot_type is not text")
    _check_track_type(cot_type)
    # Checked before the event is built: pytak cannot write an infinite coordinate.
    _check_point(ET.Element("point", {"lat": str(lat), "lon": str(lon), "hae": str(hae)}))
    event: ET.Element = pytak.cot_event(
        lat=lat,
        lon=lon,
        hae=hae,
        uid=f"gsomia.{report_id}",
        cot_type=cot_type,
        how="m-g",
        stale=int(TRACK_STALE.total_seconds()),
        access=attrs["access"],
        caveat=attrs["caveat"],
        extra_attrs={k: v for k, v in attrs.items() if k not in ("access", "caveat")},
    )
    if created is not None:
        try:
            at = created.astimezone(UTC)
            until = at + TRACK_STALE
        except OverflowError as e:
            raise InvalidInput(f"a JSON track created {created.isoformat()} is out of range") from e
        event.set("time", at.strftime(_STAMP))
        event.set("start", at.strftime(_STAMP))
        event.set("stale", until.strftime(_STAMP))
    _check_times(event, now, RECIPIENT_AHEAD_TOLERANCE)
    return event


def event_stale(event: bytes) -> datetime:
    """The ``stale`` instant of an event :func:`marked_event` made.

    Raises:
        InvalidInput: not such an event.
    """
    try:
        root = ET.fromstring(event)  # noqa: S314 - made by marked_event, which refuses a DTD
    except ET.ParseError as e:
        raise InvalidInput(f"not XML: {e}") from e
    return _cot_instant("stale", root.get("stale"))


def endpoints_from_config(items: Sequence[Mapping[str, Any]]) -> tuple[CotEndpoint, ...]:
    """Endpoints from the configuration's ``cot.outputs``.

    Raises:
        InvalidInput: an endpoint has unknown members or bad values.
    """
    out = []
    for item in items:
        unknown = set(item) - {"name", "url", "cleared_to", "audience", "exercise"}
        if unknown:
            raise InvalidInput(f"CoT endpoint: unknown member(s) {', '.join(sorted(unknown))}")
        out.append(
            CotEndpoint(
                name=str(item.get("name", "")),
                url=str(item.get("url", "")),
                cleared_to=str(item.get("cleared_to", "")),
                audience=tuple(item.get("audience") or ()),
                exercise=bool(item.get("exercise", False)),
            )
        )
    return tuple(out)


def media_type(content_type: str) -> str:
    """``content_type`` without its parameters, in lower case: ``application/cot+xml``."""
    return content_type.split(";", maxsplit=1)[0].strip().lower()


def is_track_content(content_type: str) -> bool:
    """True if a report of ``content_type`` may carry a track (:func:`mark_event`): CoT XML or a
    JSON track. Anything else (STIX content, a document) is no CoT at all: it is not offered to
    the TAK endpoints, and not counted as a track refused."""
    kind = media_type(content_type)
    return kind in XML_MEDIA_TYPES or kind == JSON_MEDIA_TYPE


def is_track_topic(topic: str, prefixes: Sequence[str]) -> bool:
    """True if ``topic`` is one the node emits as CoT."""
    return any(topic_matches(p, topic) for p in prefixes)
