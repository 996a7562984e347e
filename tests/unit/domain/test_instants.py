"""Instants a user gives: ISO 8601 with an offset or a bare date, bounded to the years 1900–2999
as written and in UTC, so that no conversion (to UTC, into a zone, by a term or a notice period) can overflow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from gsomia.domain.instants import parse_duration, parse_instant, require_aware, require_supported
from gsomia.errors import InvalidInput


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00+14:00",  # before year 1 in UTC: datetime overflows
        "9999-12-31T23:59-14:00",  # after year 9999 in UTC: datetime overflows
        "0001-01-01",
        "9999-12-31",
        "1899-12-31T23:59Z",
        "3000-01-01T00:00Z",
        "0001-01-01T00:00:00+00:00",
    ],
)
def test_instants_outside_the_supported_years_are_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput, match="out of range: give a year from 1900 to 2999"):
        parse_instant(text, "Asia/Seoul")


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        # In range as written, out of range in UTC, as the instant is stored: accepted, it would
        # be refused on every later read of what was stored. The message names the UTC instant
        # and the bound in UTC, not a range the year as written is in.
        ("1900-01-01T00:00+14:00", "1899-12-31T10:00+00:00"),
        ("2999-12-31T23:59-14:00", "3000-01-01T13:59+00:00"),
        ("1900-01-01", "1899-12-31T15:32:08+00:00"),  # 00:00 in Seoul (LMT +08:27:52) is 1899 in UTC
    ],
)
def test_an_instant_in_range_as_written_but_not_in_utc_names_its_utc_instant(text: str, utc: str) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_instant(text, "Asia/Seoul")
    msg = str(e.value)
    assert f"{text!r} is {utc} in UTC" in msg, msg
    assert "from 1900-01-01T00:00+00:00 to 2999-12-31T23:59:59+00:00 in UTC" in msg, msg
    assert "give a year from 1900 to 2999" not in msg  # 1900 is such a year: no contradiction


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("1900-01-01T00:00-14:00", datetime(1900, 1, 1, 14, 0, tzinfo=UTC)),
        ("2999-12-31T23:59+14:00", datetime(2999, 12, 31, 9, 59, tzinfo=UTC)),
        ("2999-12-31", datetime(2999, 12, 30, 15, 0, tzinfo=UTC)),
        ("2019-11-22T10:00+09:00", datetime(2019, 11, 22, 1, 0, tzinfo=UTC)),
    ],
)
def test_the_first_and_last_supported_years_are_accepted_where_they_stay_in_range_in_utc(
    text: str, utc: datetime
) -> None:
    assert parse_instant(text, "Asia/Seoul") == utc


@pytest.mark.parametrize("text", ["２０１９-11-22", "2019-11-22T10:00", "²", "", "2019-13-01"])
def test_malformed_instants_are_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_instant(text, "UTC")


def test_an_aware_datetime_at_the_edge_of_the_calendar_is_invalid_input_not_an_overflow() -> None:
    edge = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))
    with pytest.raises(InvalidInput, match="outside the calendar"):
        require_aware(edge)
    with pytest.raises(InvalidInput, match="out of range"):
        require_supported(edge, "the exercise clock")
    with pytest.raises(InvalidInput, match="out of range"):
        require_supported(datetime(9999, 12, 31, 23, 59, tzinfo=UTC))
    with pytest.raises(InvalidInput, match=r"is 1899-12-31T15:00\+00:00 in UTC"):
        require_supported(datetime(1900, 1, 1, tzinfo=timezone(timedelta(hours=9))), "the exercise clock")
    assert require_supported(datetime(2019, 11, 22, 10, tzinfo=timezone(timedelta(hours=9)))) == datetime(
        2019, 11, 22, 1, tzinfo=UTC
    )


def test_durations_too_long_for_a_timedelta_are_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        parse_duration("P99999999999D")
    assert parse_duration("P1DT6H") == timedelta(days=1, hours=6)
