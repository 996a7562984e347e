"""Domain values refuse what cannot be true (a ladder without levels, a level in two rows of an
equivalence table, a party cleared to a level it does not have, an instant that is no date), and
name the change a what-if makes to a flow."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from gsomia.domain.instants import add_years, parse_duration, parse_instant
from gsomia.domain.markings import EquivalenceTable
from gsomia.domain.parties import CompetentAuthority, Ladder, Level, Party
from gsomia.domain.topics import Scope, check_topic_prefix, topic_matches
from gsomia.domain.whatif import FlowChange
from gsomia.errors import InvalidInput

LADDER = Ladder((Level("極秘", 2), Level("秘", 3)))

INVALID: list[tuple[str, Callable[[], object], str]] = [
    (
        "a common level twice",
        lambda: EquivalenceTable.build(["SECRET", "SECRET"], {}),
        "lists a common level twice",
    ),
    (
        "a row that is not a common level",
        lambda: EquivalenceTable.build(["SECRET"], {"TOP": {"JPN": ["機密"]}}),
        "'TOP' is not one of the common levels",
    ),
    (
        "a party with no level in a row",
        lambda: EquivalenceTable.build(["SECRET"], {"SECRET": {"JPN": []}}),
        "JPN lists no level",
    ),
    (
        "a national level in two rows",
        lambda: EquivalenceTable.build(
            ["SECRET", "CONFIDENTIAL"], {"SECRET": {"JPN": ["極秘"]}, "CONFIDENTIAL": {"JPN": ["極秘"]}}
        ),
        "JPN '極秘' maps to both SECRET and CONFIDENTIAL",
    ),
    ("a level without a name", lambda: Level("  ", 1), "needs a name"),
    ("a rank of zero", lambda: Level("極秘", 0), "rank must be 1"),
    ("a ladder without levels", lambda: Ladder(()), "at least one level"),
    ("a level twice in a ladder", lambda: Ladder((Level("秘", 3), Level("秘", 4))), "appears twice"),
    ("a lower-case party id", lambda: Party(id="jpn", name="Japan", ladder=LADDER), "party id 'jpn'"),
    (
        "an authority cleared above the ladder",
        lambda: Party(id="JPN", name="Japan", ladder=LADDER, authority=CompetentAuthority("MOD", "機密")),
        "cleared to '機密', which is not in its ladder",
    ),
    ("a prefix that is no topic", lambda: check_topic_prefix("DPRK missiles"), "a dotted topic prefix"),
    ("a scope entry that is no topic", lambda: Scope.of("dprk.missile", "Missiles!"), "not a dotted path"),
    ("a date that does not exist", lambda: parse_instant("2019-02-30", "Asia/Seoul"), "invalid date '2019-02-30'"),
    ("an empty duration", lambda: parse_duration("PT"), "invalid duration 'PT'"),
    ("a duration in words", lambda: parse_duration("four hours"), "invalid duration"),
]


@pytest.mark.parametrize(("make", "message"), [pytest.param(m, msg, id=name) for name, m, msg in INVALID])
def test_values_that_cannot_be_true_are_refused(make: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        make()


def test_scopes_and_prefixes_cover_what_they_say() -> None:
    scope = Scope.of("dprk.missile.*", "dprk.nuclear*")
    assert scope.prefixes == frozenset({"dprk.missile", "dprk.nuclear"})
    assert scope.covers("dprk.missile.launch") and not scope.covers("dprk.missiles")
    assert scope.describe() == "dprk.missile*, dprk.nuclear*"
    assert Scope.of("*").describe() == "everything" and Scope(frozenset()).describe() == "nothing"
    assert check_topic_prefix("*") == "*" and topic_matches("*", "dprk.sigint")
    assert not topic_matches("dprk.missile", "dprk.missiles")


def test_a_leap_day_anniversary_falls_on_the_28th() -> None:
    assert add_years(date(2016, 2, 29), 1) == date(2017, 2, 28)
    assert add_years(date(2016, 2, 29), 4) == date(2020, 2, 29)
    assert parse_duration("P1DT2H30M") == timedelta(days=1, hours=2, minutes=30)
    assert parse_instant("2019-11-22T18:00Z", "Asia/Seoul") == datetime(2019, 11, 22, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        ("direct", "none", "stopped"),
        ("direct", "relay", "rerouted"),
        ("none", "direct", "restored"),
        ("none", "relay", "restored"),
        ("relay", "direct", "changed"),
        ("relay", "relay", "changed"),
    ],
)
def test_a_what_if_names_the_change_to_a_flow(before: str, after: str, kind: str) -> None:
    at = datetime(2019, 11, 23, tzinfo=UTC)
    change = FlowChange(
        "JPN", "KOR", "dprk.missile.launch", at, at + timedelta(days=1), before, None, after, None, timedelta()
    )
    assert change.kind == kind
