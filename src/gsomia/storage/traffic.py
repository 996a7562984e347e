"""The exchange's recorded decisions, streamed for replay under a what-if.

Two queries in one read transaction (one snapshot: ``REPEATABLE READ`` on PostgreSQL, one
read transaction on SQLite): the reports' requests ordered by report id, and the decisions
ordered by their report's id, each read from its covering index (migration 0008) a page at a
time (a server-side cursor on PostgreSQL, ``fetchmany`` on SQLite), and joined here as they
stream, since both come in the same order. No row is looked up twice, the rows' large columns
(payload ciphertext, signed report, route JSON) are never read, and a million decisions never
sit in memory at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, String, Text, cast, func, select, type_coerce

from gsomia.domain.record import Caveats
from gsomia.domain.traffic import TrafficRow, TrafficSelection
from gsomia.errors import InvalidInput, StorageError
from gsomia.storage.exchange import DecisionRow, SubmittedReportRow
from gsomia.storage.store import Store

__all__ = ["NaiveInstants", "TextInstants", "TrafficReader"]


class TextInstants:
    """SQLite's instants: UTC as ``YYYY-MM-DD HH:MM:SS.ffffff`` text, which orders as the
    instants do; the replay compares them as stored, with no conversion per row."""

    def key(self, at: datetime) -> Any:
        """The text SQLite stores for ``at``."""
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def instant(self, key: Any) -> datetime:
        """The instant of stored text."""
        return datetime.fromisoformat(key).replace(tzinfo=UTC)


class NaiveInstants:
    """PostgreSQL's instants: UTC as ``timestamp without time zone``."""

    def key(self, at: datetime) -> Any:
        """The naive UTC datetime stored for ``at``."""
        return at.astimezone(UTC).replace(tzinfo=None)

    def instant(self, key: Any) -> datetime:
        """The instant of a naive UTC datetime."""
        return key.replace(tzinfo=UTC)  # type: ignore[no-any-return]


def _decisions(selection: TrafficSelection | None, raw: Any) -> Any:
    """The decisions' columns, by report id, restricted to what the decisions table can tell
    (recipient, instant); the report's side is selected while joining. ``raw`` is the SQL
    type the instant is read as (its stored form, unconverted)."""
    d = DecisionRow.__table__
    at = type_coerce(d.c.decided_at, raw)
    stmt = select(d.c.report_id, d.c.recipient, d.c.decision, d.c.outcome, at).order_by(d.c.report_id)
    if selection is not None:
        if selection.parties is not None:
            stmt = stmt.where(d.c.recipient.in_(selection.parties))
        if selection.start is not None:
            stmt = stmt.where(d.c.decided_at >= selection.start)
        if selection.end is not None:
            stmt = stmt.where(d.c.decided_at < selection.end)
    return stmt


def _rows(cursor: Any, page_size: int) -> Iterator[Any]:
    """Every row of ``cursor``, fetched ``page_size`` at a time."""
    while True:
        part = cursor.fetchmany(page_size)
        if not part:
            return
        yield from part


def _cursor(conn: Connection, stmt: Any, name: str) -> Any:
    """The driver's own cursor over ``stmt`` (which takes no parameters): rows as plain tuples
    with values as stored, no per-row processing; server-side (named) on PostgreSQL, so rows
    arrive as they are fetched."""
    sql = str(stmt.compile(dialect=conn.dialect))
    raw = conn.connection.dbapi_connection
    if raw is None:  # pragma: no cover - a connection checked out of the pool always has one
        raise StorageError("the database connection is closed")
    cursor = raw.cursor(name=name) if conn.dialect.name == "postgresql" else raw.cursor()
    cursor.execute(sql)
    return cursor


@dataclass(slots=True)
class TrafficReader:
    """Reads the exchange's decisions for :func:`gsomia.domain.traffic.replay_traffic`."""

    store: Store
    _caveats: dict[str, Caveats] = field(default_factory=dict)

    def key(self, at: datetime) -> Any:
        """The stored form of ``at`` (ordered as the instants are)."""
        return self._instants.key(at)

    def instant(self, key: Any) -> datetime:
        """The instant of a stored form."""
        return self._instants.instant(key)

    @property
    def _instants(self) -> TextInstants | NaiveInstants:
        return TextInstants() if self.store.dialect == "sqlite" else NaiveInstants()

    def _raw(self) -> Any:
        return String() if self.store.dialect == "sqlite" else DateTime()

    def count(self, selection: TrafficSelection | None = None) -> int:
        """How many recorded decisions a replay of ``selection`` reads (an upper bound of
        those it selects: the report's side is selected while replaying).

        Raises:
            StorageError: on any database error.
        """
        stmt = select(func.count()).select_from(_decisions(selection, self._raw()).order_by(None).subquery())
        with self.store.reading() as s:
            return int(s.scalar(stmt) or 0)

    def pages(
        self, selection: TrafficSelection | None = None, *, page_size: int = 20_000
    ) -> Iterator[list[TrafficRow]]:
        """Every recorded decision with its report's request, ``page_size`` at a time, in
        report id order (``selection`` is applied by the replay, which reads past the others).

        Raises:
            StorageError: on any database error, a decision whose report is missing, or a
                stored caveat that does not read.
        """
        r = SubmittedReportRow.__table__
        # the report's caveats as text: equal caveats are equal text, parsed once
        reports_q = select(r.c.id, r.c.originator, r.c.topic, r.c.level, cast(r.c.caveats, Text)).order_by(r.c.id)
        isolation = "REPEATABLE READ" if self.store.dialect == "postgresql" else "SERIALIZABLE"
        with self.store.reading() as s:
            conn = s.connection(execution_options={"isolation_level": isolation})
            reports = _rows(_cursor(conn, reports_q, "gsomia_replay_reports"), page_size)
            decisions = _cursor(conn, _decisions(None, self._raw()), "gsomia_replay_decisions")
            rid: Any = None
            orig: Any = None
            topic: Any = None
            level: Any = None
            caveats: Any = None
            while True:
                part = decisions.fetchmany(page_size)
                if not part:
                    return
                page: list[TrafficRow] = []
                append = page.append
                for report_id, recipient, decision, outcome, at in part:
                    if report_id != rid:
                        # both streams are in report id order: move the reports on to this one
                        for rid, orig, topic, level, caveats in reports:  # noqa: B007 - read after the loop
                            if rid == report_id:
                                break
                        else:
                            raise StorageError(f"decision for report {report_id!r}: the report is missing")
                    append((report_id, orig, recipient, topic, level, caveats, at, decision, outcome))
                yield page

    def caveats(self, stored: Any) -> Caveats:
        """The caveats of their stored text (parsed once per distinct text).

        Raises:
            StorageError: if the text does not read as caveats.
        """
        found = self._caveats.get(stored)
        return found if found is not None else self._parse(stored)

    def _parse(self, text: str) -> Caveats:
        try:
            doc: Any = json.loads(text)
            caveats = Caveats.from_json(doc, "stored caveats")
        except (ValueError, TypeError, InvalidInput) as e:
            raise StorageError(f"a stored report's caveats do not read: {e}") from e
        self._caveats[text] = caveats
        return caveats
