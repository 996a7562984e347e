"""A what-if as one line: its hypothetical events shown in their agreement's zone, as every
other instant is, not in UTC."""

from __future__ import annotations

from gsomia.domain.record import Record, WhatIf
from gsomia.scenario.loader import parse_event_spec


def test_a_hypothetical_event_is_described_in_its_agreements_zone(record: Record) -> None:
    notice = parse_event_spec("JPN-KOR-GSOMIA notice 2019-08-25T12:00+09:00 by KOR", record, 1)
    effective = parse_event_spec("JPN-KOR-GSOMIA termination 2019-11-23 effective 2019-11-23T00:00Z", record, 2)
    w = WhatIf("what-if", add=(notice, effective), drop=("jpn-kor-2019-suspension",))
    assert w.describe(record) == (
        "drop jpn-kor-2019-suspension; "
        "add JPN-KOR-GSOMIA notice 2019-08-25T12:00+09:00 by KOR; "
        "add JPN-KOR-GSOMIA termination 2019-11-23T00:00+09:00 effective 2019-11-23T09:00+09:00"
    )
    assert WhatIf("").describe(record) == "no change"
