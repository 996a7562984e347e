"""Mistakes a scenario author makes, each named with its file, line and path, nothing loaded:
events that do not fit their agreement, agreements that cannot relay or translate, reports,
provisions, the window and the question that point at nothing."""

from __future__ import annotations

import pytest

from gsomia.errors import ValidationFailed
from gsomia.scenario.loader import parse_scenario

BASE = """\
scenario:
  name: trio
  timezone: Asia/Seoul
  window: {from: "2016-01-01", to: "2020-01-01"}
  question:
    title: what if the bilateral ended
    agreement: JK
    parties: [JPN, KOR]
    whatif: {name: end, drop: [jk-notice]}
    stats_at: "2019-08-22"
topics:
  - {id: dprk.missile.launch}
  - {id: dprk.sigint}
parties:
  - id: JPN
    name: Japan
    ladder:
      - {name: 機密, rank: 1}
      - {name: 極秘, rank: 2}
      - {name: 秘, rank: 3}
    authority: {name: MOD, cleared_to: 機密}
  - id: KOR
    name: Korea
    ladder:
      - {name: 군사II급비밀, rank: 2}
      - {name: 군사III급비밀, rank: 3}
    authority: {name: MND, cleared_to: 군사II급비밀}
  - id: USA
    name: United States
    ladder:
      - {name: SECRET, rank: 2}
      - {name: CONFIDENTIAL, rank: 3}
agreements:
  - id: JK
    name: jk
    parties: [JPN, KOR]
    term: {years: 1}
    notice: {days: 90}
    common_levels: [SECRET, CONFIDENTIAL]
    max_level: SECRET
    equivalence:
      SECRET: {JPN: [極秘], KOR: [군사II급비밀]}
      CONFIDENTIAL: {JPN: [秘], KOR: [군사III급비밀]}
  - id: TRI
    name: tri
    parties: [JPN, KOR, USA]
    kind: arrangement
    direct: false
    hub: USA
    relay_delay: PT4H
    scope: [dprk.missile]
    common_levels: [SECRET]
    equivalence:
      SECRET: {JPN: [極秘], KOR: [군사II급비밀], USA: [SECRET]}
events:
  - {id: jk-signature, agreement: JK, kind: signature, at: "2016-11-23"}
  - {id: jk-eif, agreement: JK, kind: entry_into_force, at: "2016-11-23"}
  - {id: jk-notice, agreement: JK, kind: notice, at: "2019-08-23", by: KOR}
  - {id: tri-eif, agreement: TRI, kind: entry_into_force, at: "2016-01-01"}
reports:
  - {id: r-1, originator: JPN, topic: dprk.missile.launch, level: 極秘, created: "2019-07-25"}
provisions:
  - {id: p-1, agreement: JK, date: "2019-07-25", by: JPN}
  - {id: p-2, agreement: JK, count: 19, from: "2017-01-01", to: "2017-12-31"}
"""


def test_the_base_scenario_is_valid() -> None:
    record = parse_scenario(BASE, "s.yaml").record
    assert record.agreements["TRI"].hub == "USA" and record.question is not None


CASES: list[tuple[str, str, str, str]] = [
    # events
    (
        "notice by an outsider",
        'kind: notice, at: "2019-08-23", by: KOR}',
        'kind: notice, at: "2019-08-23", by: USA}',
        "USA is not a party to JK",
    ),
    (
        "revival without effective",
        'kind: notice, at: "2019-08-23", by: KOR}',
        'kind: notice, at: "2019-08-23", by: KOR}\n  - {id: rv, agreement: JK, kind: revival, at: "2019-09-01", by: KOR}',
        "a revival must name when it takes effect",
    ),
    (
        "notice with its own effect",
        'at: "2019-08-23", by: KOR}',
        'at: "2019-08-23", by: KOR, effective: "2019-09-01"}',
        "fixes when a notice takes effect",
    ),
    (
        "changes on a signature",
        'kind: signature, at: "2016-11-23"}',
        'kind: signature, at: "2016-11-23", changes: {max_level: CONFIDENTIAL}}',
        "only an amendment carries changes",
    ),
    (
        "an amendment to a malformed scope",
        "  - {id: tri-eif,",
        '  - {id: am, agreement: JK, kind: amendment, at: "2018-01-01", changes: {scope: ["Not A Topic"]}}\n  - {id: tri-eif,',
        "malformed scope entries",
    ),
    (
        "an amendment to an unknown level",
        "  - {id: tri-eif,",
        '  - {id: am, agreement: JK, kind: amendment, at: "2018-01-01", changes: {max_level: TOP}}\n  - {id: tri-eif,',
        "'TOP' is not a common level of JK",
    ),
    # agreements
    ("no hub and no direct exchange", "    hub: USA\n", "", "an agreement without direct exchange needs a relay hub"),
    ("a hub without a delay", "    relay_delay: PT4H\n", "", "a relay hub needs a relay_delay"),
    ("a malformed delay", "relay_delay: PT4H", "relay_delay: P", "invalid duration 'P'"),
    ("a malformed scope", "scope: [dprk.missile]", 'scope: ["DPRK missile"]', "malformed scope entries"),
    (
        "an equivalence level not common",
        "      SECRET: {JPN: [極秘], KOR: [군사II급비밀], USA: [SECRET]}",
        "      SECRET: {JPN: [極秘], KOR: [군사II급비밀], USA: [SECRET]}\n      TOP: {USA: [SECRET]}",
        "'TOP' is not one of common_levels",
    ),
    (
        "an equivalence for an outsider",
        "CONFIDENTIAL: {JPN: [秘], KOR: [군사III급비밀]}",
        "CONFIDENTIAL: {JPN: [秘], KOR: [군사III급비밀], USA: [CONFIDENTIAL]}",
        "USA is not a party to JK",
    ),
    (
        "a table that ranks upside down",
        "SECRET: {JPN: [極秘], KOR: [군사II급비밀]}\n      CONFIDENTIAL: {JPN: [秘],",
        "SECRET: {JPN: [秘], KOR: [군사II급비밀]}\n      CONFIDENTIAL: {JPN: [極秘],",
        "JPN 極秘 ranks above 秘 but maps to CONFIDENTIAL, below SECRET",
    ),
    (
        "a notice before a term that does not exist",
        "    term: {years: 1}\n",
        "",
        "a notice counted before the term's end needs a term",
    ),
    # parties and topics
    (
        "a ladder with one rank twice",
        "      - {name: 秘, rank: 3}",
        "      - {name: 秘, rank: 3}\n      - {name: 秘, rank: 4}",
        "ladder",
    ),
    (
        "a topic twice",
        "  - {id: dprk.sigint}",
        "  - {id: dprk.sigint}\n  - {id: dprk.sigint}",
        "duplicate topic id 'dprk.sigint'",
    ),
    # reports
    (
        "a report from nobody",
        "originator: JPN, topic: dprk.missile.launch",
        "originator: XYZ, topic: dprk.missile.launch",
        "unknown party 'XYZ'",
    ),
    (
        "a report at a level of another ladder",
        "level: 極秘, created",
        "level: SECRET, created",
        "'SECRET' is not a level of JPN",
    ),
    (
        "a report on an uncatalogued topic",
        "topic: dprk.missile.launch, level",
        "topic: dprk.weather, level",
        "topic 'dprk.weather' is not in the topic catalogue",
    ),
    (
        "a report to nobody",
        'created: "2019-07-25"}',
        'created: "2019-07-25", recipients: [XYZ]}',
        "unknown party 'XYZ'",
    ),
    (
        "a report releasable to nobody",
        'created: "2019-07-25"}',
        'created: "2019-07-25", caveats: {rel_to: [QQQ]}}',
        "unknown party 'QQQ'",
    ),
    # provisions
    (
        "a provision under no agreement",
        "{id: p-1, agreement: JK,",
        "{id: p-1, agreement: NOPE,",
        "unknown agreement 'NOPE'",
    ),
    (
        "a provision by an outsider",
        'date: "2019-07-25", by: JPN}',
        'date: "2019-07-25", by: USA}',
        "USA is not a party to JK",
    ),
    (
        "a provision with a date and a period",
        'date: "2019-07-25", by: JPN}',
        'date: "2019-07-25", from: "2019-01-01", to: "2019-02-01"}',
        "give either 'date'",
    ),
    (
        "a period that ends before it starts",
        'from: "2017-01-01", to: "2017-12-31"}',
        'from: "2017-12-01", to: "2017-01-31"}',
        "the period ends before it starts",
    ),
    (
        "a period across two years",
        'from: "2017-01-01", to: "2017-12-31"}',
        'from: "2017-06-01", to: "2018-05-31"}',
        "a counted period must fall within one calendar year",
    ),
    # window and question
    (
        "a window that ends first",
        'window: {from: "2016-01-01", to: "2020-01-01"}',
        'window: {from: "2020-01-01", to: "2016-01-01"}',
        "the window must end after it starts",
    ),
    (
        "a window without an end",
        'window: {from: "2016-01-01", to: "2020-01-01"}',
        'window: {from: "2016-01-01"}',
        "a window needs 'from' and 'to'",
    ),
    ("a question about no agreement", "    agreement: JK\n", "    agreement: NOPE\n", "unknown agreement 'NOPE'"),
    (
        "a question about nobody",
        "parties: [JPN, KOR]\n    whatif",
        "parties: [JPN, XYZ]\n    whatif",
        "unknown party 'XYZ'",
    ),
    (
        "a question dropping nothing",
        "drop: [jk-notice]",
        "drop: [no-such-event]",
        "no recorded event 'no-such-event' to drop",
    ),
    (
        "a question adding a bad event",
        "drop: [jk-notice]}",
        'drop: [], add: [{id: q-add, agreement: JK, kind: notice, at: "2019-08-23", by: USA}]}',
        "USA is not a party to JK",
    ),
]


@pytest.mark.parametrize(("old", "new", "fragment"), [pytest.param(o, n, f, id=name) for name, o, n, f in CASES])
def test_each_mistake_is_named_with_its_line_and_nothing_is_loaded(old: str, new: str, fragment: str) -> None:
    assert old in BASE
    with pytest.raises(ValidationFailed) as caught:
        parse_scenario(BASE.replace(old, new, 1), "s.yaml")
    problems = caught.value.problems
    assert any(fragment in p.message for p in problems), problems
    assert all(p.file == "s.yaml" for p in problems)
    assert any(p.line is not None for p in problems if fragment in p.message), problems
