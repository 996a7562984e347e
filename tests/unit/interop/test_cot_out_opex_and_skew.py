"""CoT out: an exercise or a simulation never reaches a TAK endpoint as a real track, and the
recipient allows for the clocks of the originator's node and its own being apart."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from gsomia.errors import InvalidInput
from gsomia.interop.cot import AHEAD_TOLERANCE, marked_event, parse_cot
from gsomia.interop.stix import DeliveredMarking, NationalMarking

EVENT = (
    b'<event version="2.0" uid="t-1" type="a-h-A-M-B" how="m-r" time="2019-11-22T00:58:00Z" '
    b'start="2019-11-22T00:58:00Z" stale="2019-11-22T01:00:00Z"{opex}>'
    b'<point lat="39.0" lon="125.7" hae="950" ce="50" le="50"/><detail><track speed="1800"/></detail></event>'
)
AT = datetime(2019, 11, 22, 0, 58, tzinfo=UTC)  # EVENT's time and start
TRACK = b'{"track": [[39.0, 125.7, 950]]}'


def _delivered(*, exercise: bool = False) -> DeliveredMarking:
    return DeliveredMarking(
        recipient="KOR",
        level="군사II급비밀",
        originator=NationalMarking(party="JPN", level="極秘"),
        common_level="SECRET",
        banner="군사II급비밀 (JPN 極秘)",
        agreement="JPN-KOR-GSOMIA",
        delivery="d-1",
        ledger_index=5,
        exercise=exercise,
    )


def _event(opex: str | None) -> bytes:
    return EVENT.replace(b"{opex}", f' opex="{opex}"'.encode() if opex is not None else b"")


@pytest.mark.parametrize(
    ("opex", "exercise", "out"),
    [
        ("e", False, "e"),  # the originator's exercise track
        ("s", False, "s"),  # a simulation
        ("e-VIGILANT-DEFENSE", False, "e-VIGILANT-DEFENSE"),  # an exercise with its name
        ("s", True, "s"),
        ("e", True, "e"),
        ("o", True, "e"),  # an exercise delivery never says operation
        (None, True, "e"),
        ("o", False, None),  # real: no opex, as a TAK client reads an event without one
        (None, False, None),
    ],
)
def test_an_exercise_or_simulation_never_reaches_tak_as_a_real_track(
    opex: str | None, exercise: bool, out: str | None
) -> None:
    marked = marked_event(_event(opex), "application/cot+xml", _delivered(exercise=exercise), report_id="r")
    assert marked is not None
    event = ET.fromstring(marked)
    assert event.get("opex") == out
    assert event.get("access") == "군사II급비밀"  # the marking attributes are still the recipient's


def test_a_json_track_of_an_exercise_delivery_says_exercise() -> None:
    marked = marked_event(TRACK, "application/json", _delivered(exercise=True), report_id="r", created=AT)
    assert marked is not None and ET.fromstring(marked).get("opex") == "e"
    real = marked_event(TRACK, "application/json", _delivered(), report_id="r", created=AT)
    assert real is not None and ET.fromstring(real).get("opex") is None


def test_the_recipient_allows_for_the_two_nodes_clocks_being_apart() -> None:
    # A sensor 25 s ahead of the originator's node: taken in there.
    originator_clock = AT - timedelta(seconds=25)
    assert parse_cot(_event(None), now=originator_clock).uid == "t-1"
    # The recipient's clock is 6 s behind the originator's node: 31 s behind the event. The
    # ingest's check stays as it was; the recipient's allows for the skew.
    recipient_clock = originator_clock - timedelta(seconds=6)
    with pytest.raises(InvalidInput, match="ahead of the node's clock"):
        parse_cot(_event(None), now=recipient_clock)
    delivered = _delivered()
    assert marked_event(_event(None), "application/cot+xml", delivered, report_id="r", now=recipient_clock) is not None
    track = marked_event(TRACK, "application/json", delivered, report_id="r", created=AT, now=recipient_clock)
    assert track is not None
    # Twice the ingest's tolerance, and no further.
    most = AT - 2 * AHEAD_TOLERANCE
    assert marked_event(_event(None), "application/cot+xml", delivered, report_id="r", now=most) is not None
    beyond = most - timedelta(seconds=1)
    assert marked_event(_event(None), "application/cot+xml", delivered, report_id="r", now=beyond) is None
    assert marked_event(TRACK, "application/json", delivered, report_id="r", created=AT, now=beyond) is None
