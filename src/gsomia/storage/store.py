"""The record store: the one scenario a database holds, and what happens to it over time.

Every write is one transaction: it lands whole or not at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from gsomia.errors import Conflict, StorageError
from gsomia.storage import db
from gsomia.storage.schema import EventRow, ProvisionRow, ReportRow, ScenarioRow, StateRow
from gsomia.storage.urls import masked_url

_TIME_FIELDS = ("at", "effective")

# Built once: every writer transaction reads the versions and stamps its instant, and building
# the statements (their cache keys) cost more than running them.
_STATE = cast(Table, StateRow.__table__)
_READ_VERSIONS = select(
    _STATE.c.record_version,
    _STATE.c.keys_version,
    _STATE.c.principals_version,
    _STATE.c.last_commit_at,
    _STATE.c.clock_offset_us,
).where(_STATE.c.id == 1)
_READ_VERSIONS_LOCKED = _READ_VERSIONS.with_for_update()
_STAMP = update(_STATE).where(_STATE.c.id == 1).values(last_commit_at=bindparam("b_at"))
_VERSIONS = "gsomia.storage.versions"


@dataclass(frozen=True, slots=True)
class ScenarioSummary:
    """What a database holds."""

    name: str
    title: str
    digest: str
    loaded_at: datetime
    events: int
    operator_events: int
    reports: int
    provisions: int


@dataclass(frozen=True, slots=True)
class LoadOutcome:
    """Result of loading a scenario: ``created``, ``replaced`` or ``unchanged``."""

    outcome: str
    summary: ScenarioSummary


@dataclass(frozen=True, slots=True, kw_only=True)
class Versions:
    """The stored versions (see :class:`~gsomia.storage.schema.StateRow`), read in one transaction."""

    record: int
    keys: int
    principals: int
    last_commit_at: datetime | None
    clock_offset_us: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredEvent:
    """An agreement event in storage form (instants as aware UTC datetimes)."""

    id: str
    agreement: str
    kind: str
    at: datetime
    by: str | None = None
    effective: datetime | None = None
    changes: Mapping[str, Any] | None = None
    note: str = ""
    source: str = ""
    origin: str = "scenario"


class Store:
    """SQLAlchemy-backed storage for the record (SQLite or PostgreSQL, same code)."""

    def __init__(self, url: str, **engine_options: Any) -> None:
        self.url = db.normalise_url(url)
        self.engine: Engine = db.create(self.url, **engine_options)
        self._writer = self.engine.execution_options(gsomia_write=True)
        db.migrate(self.engine)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def describe(self) -> str:
        """The database URL with every secret masked: the password and any query parameter that
        carries one (``?password=``, ``sslpassword``, ``passfile``, ``sslkey``; see
        :func:`gsomia.storage.urls.masked_url`), as banners, ``/healthz`` and reports show it."""
        return masked_url(self.engine.url)

    def close(self) -> None:
        """Release every connection."""
        self.engine.dispose()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session.

        Raises:
            StorageError: on any database error.
        """
        with db.storage_errors("reading the database"), Session(self.engine) as s:
            if self.dialect == "postgresql":
                # one snapshot for every statement of the session, as SQLite's transaction
                # gives: what is read with a version (the record, keys, a principal) is what
                # that version names, never a row committed between the two reads
                s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield s

    @contextmanager
    def writing(self, what: str = "writing to the database") -> Iterator[Session]:
        """A session whose changes commit together on exit, or not at all.

        Raises:
            StorageError: on any database error (the transaction is rolled back).
        """
        with db.storage_errors(what), Session(self._writer) as s, s.begin():
            yield s

    # --- versions ----------------------------------------------------------------------

    @staticmethod
    def versions(s: Session, *, lock: bool = False) -> Versions:
        """The stored versions as ``s``'s transaction sees them (read once per session, and
        again after :meth:`bump`).

        ``lock`` (a writer's transaction, first thing): read them locked (``FOR UPDATE`` on
        PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already excludes every other writer). A change
        that moves a version outside the writers' turn (a token revoked, a scenario replaced)
        holds the row until it commits; the locked read waits for it and sees it, so the writer
        never decides on the versions from before a change that commits ahead of it.

        Raises:
            StorageError: the state row is missing (the migrations create it).
        """
        cached: Versions | None = s.info.get(_VERSIONS)
        if cached is not None and not lock:
            return cached
        row = s.execute(_READ_VERSIONS_LOCKED if lock else _READ_VERSIONS).one_or_none()
        if row is None:
            raise StorageError("the exchange state row is missing: the database was not migrated by gsomia")
        record, keys, principals, last, offset = row
        found = Versions(
            record=int(record),
            keys=int(keys),
            principals=int(principals),
            last_commit_at=last,
            clock_offset_us=None if offset is None else int(offset),
        )
        s.info[_VERSIONS] = found
        return found

    @staticmethod
    def bump(s: Session, *names: str) -> None:
        """Move the named versions (``record``, ``keys``, ``principals``) on by one, in ``s``'s
        transaction, so every process's next commit sees the change."""
        values = {f"{n}_version": getattr(StateRow, f"{n}_version") + 1 for n in names}
        s.execute(update(StateRow).where(StateRow.id == 1).values(**values))
        s.info.pop(_VERSIONS, None)

    @staticmethod
    def set_clock_offset(s: Session, offset_us: int) -> None:
        """Store the exercise clock's offset, in ``s``'s transaction."""
        s.execute(update(StateRow).where(StateRow.id == 1).values(clock_offset_us=offset_us))
        s.info.pop(_VERSIONS, None)

    @staticmethod
    def restart_instants(s: Session) -> None:
        """Forget the latest commit instant, in ``s``'s transaction: the next commit's instant is
        the clock's, whatever was stamped before (an exercise starting on a database written in
        real time)."""
        s.execute(update(StateRow).where(StateRow.id == 1).values(last_commit_at=None))
        s.info.pop(_VERSIONS, None)

    @staticmethod
    def stamp(s: Session, at: datetime) -> None:
        """Record ``at`` as the latest commit instant, in ``s``'s transaction."""
        s.execute(_STAMP, {"b_at": at})
        cached: Versions | None = s.info.get(_VERSIONS)
        if cached is not None:  # only this column moved: no need to read the row again
            s.info[_VERSIONS] = dataclasses.replace(cached, last_commit_at=at)

    # --- scenario ----------------------------------------------------------------------

    def summary(self) -> ScenarioSummary | None:
        """What the database holds, or None if it is empty."""
        with self.reading() as s:
            return self._summary(s)

    def _require_summary(self, s: Session) -> ScenarioSummary:
        summary = self._summary(s)
        if summary is None:
            raise StorageError("the scenario row vanished during the transaction")
        return summary

    def _summary(self, s: Session) -> ScenarioSummary | None:
        row = s.scalars(select(ScenarioRow)).first()
        if row is None:
            return None
        count_ev = s.scalar(select(func.count()).select_from(EventRow)) or 0
        count_op = s.scalar(select(func.count()).select_from(EventRow).where(EventRow.origin == "operator")) or 0
        count_rep = s.scalar(select(func.count()).select_from(ReportRow)) or 0
        count_prov = s.scalar(select(func.count()).select_from(ProvisionRow)) or 0
        return ScenarioSummary(
            row.name, row.title, row.digest, row.loaded_at, count_ev, count_op, count_rep, count_prov
        )

    def load_scenario(
        self,
        *,
        name: str,
        title: str,
        digest: str,
        definitions: Mapping[str, Any],
        events: Sequence[StoredEvent],
        reports: Sequence[Mapping[str, Any]],
        provisions: Sequence[Mapping[str, Any]],
        replace: bool = False,
        now: datetime,
        check: Callable[[dict[str, Any]], None] | None = None,
    ) -> LoadOutcome:
        """Store a validated scenario in one transaction.

        Loading the same scenario again changes nothing. Loading a changed version of the
        same scenario replaces its definitions, events, reports and provisions; events an
        operator recorded are kept, and ``check`` is given the record they make together
        before anything is committed. Another scenario is refused unless ``replace``, and
        always where an operator recorded events (they are in the ledger: they are not
        discarded).

        Raises:
            Conflict: the database holds another scenario and ``replace`` is false, or
                events an operator recorded.
            StorageError: on any database error; nothing is written.
            GsomiaError: whatever ``check`` raises; nothing is written.
        """
        with self.writing("loading the scenario") as s:
            current = s.scalars(select(ScenarioRow)).first()
            if current is not None and current.name != name and not replace:
                raise Conflict(
                    f"this database holds scenario {current.name!r}; use another --db, or --replace to discard it"
                )
            recorded = s.scalar(select(func.count()).select_from(EventRow).where(EventRow.origin == "operator")) or 0
            if current is not None and current.name != name and recorded:
                raise Conflict(
                    f"this database holds {recorded} agreement event(s) an operator recorded under scenario "
                    f"{current.name!r}, and its ledger names them: replacing the scenario would discard them; load "
                    f"{name!r} into another database (--db)"
                )
            if current is not None and current.name == name and current.digest == digest:
                return LoadOutcome("unchanged", self._require_summary(s))
            outcome = "created" if current is None else "replaced"
            if current is not None and current.name != name:
                s.execute(delete(EventRow))
            else:
                s.execute(delete(EventRow).where(EventRow.origin == "scenario"))
            s.execute(delete(ReportRow))
            s.execute(delete(ProvisionRow))
            s.execute(delete(ScenarioRow))
            s.flush()
            s.add(
                ScenarioRow(id=1, name=name, title=title, digest=digest, definitions=dict(definitions), loaded_at=now)
            )
            clash = set(s.scalars(select(EventRow.id)).all()) & {e.id for e in events}
            if clash:
                raise Conflict(f"scenario events reuse ids of recorded operator events: {', '.join(sorted(clash))}")
            s.add_all(_event_row(e, i, now) for i, e in enumerate(events))
            s.add_all(ReportRow(id=str(r["id"]), seq=i, doc=dict(r)) for i, r in enumerate(reports))
            s.add_all(
                ProvisionRow(id=str(p["id"]), seq=i, agreement=str(p["agreement"]), doc=dict(p))
                for i, p in enumerate(provisions)
            )
            s.flush()
            if check is not None:
                combined = _document(s)
                if combined is not None:
                    check(combined)
            self.bump(s, "record")
            return LoadOutcome(outcome, self._require_summary(s))

    def version(self) -> str | None:
        """A token that changes whenever the stored record changes (None if empty): the stored
        record version, which every scenario load and recorded event moves in its own
        transaction.

        Raises:
            StorageError: on any database error.
        """
        with self.reading() as s:
            return self._version(s)

    def _version(self, s: Session) -> str | None:
        if s.execute(select(ScenarioRow.id)).scalar() is None:
            return None
        return str(self.versions(s).record)

    def read_document(self) -> dict[str, Any] | None:
        """The scenario as a document (definitions, then events, reports and provisions,
        in load order, operator events last), or None if the database is empty.

        Raises:
            StorageError: on any database error.
        """
        found = self.read_versioned_document()
        return found[0] if found is not None else None

    def read_versioned_document(self) -> tuple[dict[str, Any], str] | None:
        """The scenario as a document and the :meth:`version` it has, read in one transaction,
        or None if the database is empty.

        Raises:
            StorageError: on any database error.
        """
        with self.reading() as s:
            doc = _document(s)
            return None if doc is None else (doc, str(self.versions(s).record))

    def events(self) -> list[StoredEvent]:
        """Every stored agreement event, scenario events first."""
        with self.reading() as s:
            rows = s.scalars(select(EventRow).order_by(EventRow.origin.desc(), EventRow.seq)).all()
            return [_stored(r) for r in rows]

    def add_event(self, event: StoredEvent, *, now: datetime, session: Session | None = None) -> None:
        """Record an operator's agreement event (in ``session``'s transaction if given).

        Raises:
            Conflict: if the id is already used.
            StorageError: on any database error, or if no scenario is loaded.
        """

        def _add(s: Session) -> None:
            if s.scalars(select(ScenarioRow.id)).first() is None:
                raise StorageError("no scenario is loaded: run 'gsomia scenario load' first")
            if s.get(EventRow, event.id) is not None:
                raise Conflict(f"event id {event.id!r} is already used")
            seq = (s.scalar(select(func.max(EventRow.seq))) or 0) + 1
            s.add(_event_row(event, seq, now))
            s.flush()
            self.bump(s, "record")

        if session is not None:
            _add(session)
            return
        with self.writing("recording the event") as s:
            _add(s)


def _event_row(e: StoredEvent, seq: int, now: datetime) -> EventRow:
    return EventRow(
        id=e.id,
        seq=seq,
        agreement=e.agreement,
        kind=e.kind,
        at=e.at,
        by=e.by,
        effective=e.effective,
        changes=dict(e.changes) if e.changes else None,
        note=e.note,
        source=e.source,
        origin=e.origin,
        recorded_at=now.astimezone(UTC),
    )


def _stored(r: EventRow) -> StoredEvent:
    return StoredEvent(
        id=r.id,
        agreement=r.agreement,
        kind=r.kind,
        at=r.at,
        by=r.by,
        effective=r.effective,
        changes=r.changes,
        note=r.note,
        source=r.source,
        origin=r.origin,
    )


def _document(s: Session) -> dict[str, Any] | None:
    """The stored scenario as one document (its events, scenario's then operators', reports
    and provisions), as ``s`` sees it; None if there is none."""
    row = s.scalars(select(ScenarioRow)).first()
    if row is None:
        return None
    doc = dict(row.definitions)
    events = s.scalars(select(EventRow).order_by(EventRow.origin.desc(), EventRow.seq)).all()
    doc["events"] = [_event_doc(e) for e in events]
    doc["reports"] = [r.doc for r in s.scalars(select(ReportRow).order_by(ReportRow.seq)).all()]
    doc["provisions"] = [p.doc for p in s.scalars(select(ProvisionRow).order_by(ProvisionRow.seq)).all()]
    return doc


def _event_doc(r: EventRow) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": r.id, "agreement": r.agreement, "kind": r.kind, "at": r.at.isoformat()}
    if r.by:
        doc["by"] = r.by
    if r.effective is not None:
        doc["effective"] = r.effective.isoformat()
    if r.changes:
        doc["changes"] = r.changes
    if r.note:
        doc["note"] = r.note
    if r.source:
        doc["source"] = r.source
    return doc
