"""Instants, dates and zones.

Every instant in the domain is a timezone-aware ``datetime`` normalised to UTC. Calendar
rules (term ends, notice deadlines) are computed in an agreement's own zone (docs/design.md §3).
Nothing here reads the clock.

Instants a user gives are bounded to the years :data:`FIRST_YEAR` to :data:`LAST_YEAR` (1900 to
2999), as written, in the instant's own offset or zone, and in UTC (as they are stored):
every agreement the product models lies far inside, and the bound keeps any instant, shifted into any zone or by a term, a notice period
or a relay delay, far from the edges of ``datetime`` (years 1 and 9999), where a conversion
overflows.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gsomia.errors import InvalidInput

_DATE_ONLY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_DURATION = re.compile(
    r"^P(?:(?P<d>[0-9]{1,6})D)?(?:T(?:(?P<h>[0-9]{1,8})H)?(?:(?P<m>[0-9]{1,10})M)?(?:(?P<s>[0-9]{1,12})S)?)?$"
)

FIRST_YEAR = 1900
"""The first year of the instants accepted from a user."""
LAST_YEAR = 2999
"""The last year of the instants accepted from a user."""
_RANGE_TEXT = f"give a year from {FIRST_YEAR} to {LAST_YEAR}"


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """Return the IANA zone ``name``.

    Raises:
        InvalidInput: if the zone is unknown.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise InvalidInput(f"unknown time zone {name!r} (use an IANA name such as Asia/Seoul)") from e


def require_aware(at: datetime, what: str = "instant") -> datetime:
    """Return ``at`` in UTC.

    Raises:
        InvalidInput: if ``at`` is naive: a naive time is a clock problem, and the
            domain denies rather than guesses (docs/design.md §3 rule 7); or if it cannot be
            expressed in UTC (an instant at the edge of the calendar).
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(f"{what} {at.isoformat()} has no time zone; give an offset such as +09:00")
    try:
        return at.astimezone(UTC)
    except (OverflowError, ValueError) as e:
        raise InvalidInput(f"{what} {at.isoformat()} is outside the calendar: {_RANGE_TEXT}") from e


def supported(at: datetime) -> bool:
    """True if ``at``'s year is in the supported range (see the module) in its own offset and,
    for an aware instant, in UTC too: what is accepted as written must also read back as
    stored (in UTC), or a stored record would be refused on every later read."""
    if not FIRST_YEAR <= at.year <= LAST_YEAR:
        return False
    if at.tzinfo is None or at.utcoffset() is None:
        return True
    return FIRST_YEAR <= at.astimezone(UTC).year <= LAST_YEAR  # a year in range: no overflow


def require_supported(at: datetime, what: str = "instant") -> datetime:
    """Return ``at`` in UTC if it is aware and in the supported range (see the module).

    Raises:
        InvalidInput: if ``at`` is naive or outside the supported range.
    """
    if not supported(at):
        raise InvalidInput(_out_of_range(at, f"{what} {at.isoformat()}"))
    return require_aware(at, what)


def _out_of_range(at: datetime, shown: str) -> str:
    """Why ``at`` (shown as ``shown``) is refused: its year as written, or, when that year is in
    range, the instant in UTC (as it is stored) and the range in UTC; "give a year from 1900"
    would contradict a date written in 1900 that is still 1899 in UTC (00:00 in Seoul)."""
    if not FIRST_YEAR <= at.year <= LAST_YEAR or at.tzinfo is None or at.utcoffset() is None:
        return f"{shown} is out of range: {_RANGE_TEXT}"
    first = datetime(FIRST_YEAR, 1, 1, tzinfo=UTC).isoformat(timespec="minutes")
    last = datetime(LAST_YEAR, 12, 31, 23, 59, 59, tzinfo=UTC).isoformat()
    utc = at.astimezone(UTC)  # a year in range as written: at most a day off, no overflow
    stored = utc.isoformat(timespec="minutes") if not utc.second and not utc.microsecond else utc.isoformat()
    return f"{shown} is {stored} in UTC, as it is stored: out of range, give an instant from {first} to {last} in UTC"


def _bounded(at: datetime, shown: str) -> datetime:
    """``at`` (aware) in UTC, or InvalidInput naming ``shown`` if it is outside the supported range."""
    if not supported(at):
        raise InvalidInput(_out_of_range(at, shown))
    return at.astimezone(UTC)  # a year in range is at least a day from the edges: no overflow


def parse_instant(text: str, default_zone: str) -> datetime:
    """Parse ISO 8601 with an offset, or a bare date read as 00:00 in ``default_zone``.

    The result lies in the supported range (see the module's docstring).

    Raises:
        InvalidInput: if the text is neither, a date-time has no offset, or the instant is
            outside the supported range.
    """
    raw = text.strip()
    if _DATE_ONLY.match(raw):
        try:
            d = date.fromisoformat(raw)
        except ValueError as e:
            raise InvalidInput(f"invalid date {raw!r}: {e}") from e
        return _bounded(datetime(d.year, d.month, d.day, tzinfo=zone(default_zone)), f"date {raw!r}")
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidInput(
            f"invalid instant {raw!r}: use ISO 8601 with an offset (2019-11-22T18:00+09:00) or a date"
        ) from e
    if parsed.tzinfo is None:
        raise InvalidInput(f"instant {raw!r} has no offset; add one such as +09:00, or give a bare date")
    return _bounded(parsed, f"instant {raw!r}")


def start_of_day(d: date, zone_name: str) -> datetime:
    """00:00 local on ``d`` in ``zone_name``, as a UTC instant.

    Raises:
        InvalidInput: if the zone is unknown, or the day is at the edge of the calendar.
    """
    return require_aware(datetime(d.year, d.month, d.day, tzinfo=zone(zone_name)), f"date {d.isoformat()}")


def local_date(at: datetime, zone_name: str) -> date:
    """The calendar date of ``at`` in ``zone_name``."""
    return at.astimezone(zone(zone_name)).date()


def add_years(d: date, years: int) -> date:
    """``d`` plus whole years; 29 February falls back to 28 February."""
    try:
        return d.replace(year=d.year + years)
    except ValueError:
        return d.replace(year=d.year + years, day=28)


def parse_duration(text: str) -> timedelta:
    """Parse an ISO 8601 duration of days/hours/minutes/seconds (``PT6H``, ``P1DT2H``).

    Raises:
        InvalidInput: if the text is not such a duration.
    """
    m = _DURATION.match(text.strip())
    if not m or text.strip() in ("P", "PT"):
        raise InvalidInput(f"invalid duration {text!r}: use ISO 8601 such as PT6H or P1D")
    parts = {k: int(v) if v else 0 for k, v in m.groupdict().items()}
    return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


def format_duration(delta: timedelta) -> str:
    """Render a timedelta as an ISO 8601 duration (``PT6H``); zero is ``PT0S``."""
    total = int(delta.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{seconds}S" if seconds else "")
    if clock:
        out += "T" + clock
    return out if out != "P" else "PT0S"


def iso(at: datetime | None, zone_name: str | None = None) -> str | None:
    """ISO 8601 text of ``at``, shown in ``zone_name`` when given, else UTC."""
    if at is None:
        return None
    shown = at.astimezone(zone(zone_name)) if zone_name else at.astimezone(UTC)
    # 2019-11-23T00:00+09:00 rather than …T00:00:00+09:00 when there are no seconds
    if shown.second == 0 and shown.microsecond == 0:
        return shown.isoformat(timespec="minutes")
    return shown.isoformat()


def utc_iso(at: datetime) -> str:
    """ISO 8601 text of ``at`` in UTC: how ledger entries and the exchange's API carry instants."""
    shown = at.astimezone(UTC)
    if shown.second == 0 and shown.microsecond == 0:
        return shown.isoformat(timespec="minutes")
    return shown.isoformat()
