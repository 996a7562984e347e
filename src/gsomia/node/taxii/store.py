"""The TAXII server's own tables, in the node's store: objects by collection, indexed for the
queries TAXII 2.1 §3.4 defines, and status resources (§4.3.1).

Every object gets a ``date_added`` that is strictly increasing within its collection (one
microsecond apart at least), so ``date_added`` alone orders a collection (§3.3) and a page
ends at an exact place: pagination is a keyset (``date_added > last``) over an index, never an
offset, and the first page of a million-object collection costs what a page of ten does.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SQLAlchemyError

from gsomia import jsontext
from gsomia.domain.parties import PARTY_ID
from gsomia.errors import InvalidInput, StorageError
from gsomia.interop.stix import (
    GSOMIA_IDENTITY,
    NATIONAL_MARKING_EXTENSION,
    TLP_2_0,
    delivery_marking_id,
    parse_timestamp,
    party_identity,
    tlp_2_0_definition,
)

log = logging.getLogger(__name__)

metadata = MetaData()

objects = Table(
    "taxii_object",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("collection", String(32), nullable=False),
    Column("stix_id", String(300), nullable=False),
    Column("stix_type", String(250), nullable=False),
    Column("version", String(40), nullable=False),
    Column("version_us", BigInteger, nullable=False),
    Column("spec_version", String(8), nullable=False),
    Column("date_added", BigInteger, nullable=False),
    Column("topic", String(128), nullable=False, default=""),
    Column("is_last", Boolean, nullable=False),
    Column("is_first", Boolean, nullable=False),
    Column("delivery", String(64), nullable=True),
    Column("origin", String(32), nullable=False, default="", server_default=""),
    Column("body", Text, nullable=False),
    Index("taxii_object_added", "collection", "date_added", unique=True),
    Index("taxii_object_last", "collection", "is_last", "date_added"),
    Index("taxii_object_type", "collection", "stix_type", "date_added"),
    Index("taxii_object_id", "collection", "stix_id", "version_us"),
    Index("taxii_object_topic", "collection", "topic", "date_added"),
)

statuses = Table(
    "taxii_status",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
)

jobs = Table(
    "taxii_job",
    metadata,
    Column("status_id", String(36), primary_key=True),
    Column("objects", Text, nullable=False),
)
"""The objects of an envelope whose status was answered ``pending``, kept until their reports'
results are stored with the status: a process stopped meanwhile sends them on start."""

tokens = Table(
    "taxii_token",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("username", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger, nullable=True),
    Column("expires_us", BigInteger, nullable=True),  # None: issued before tokens expired, live until revoked
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


SHARED_TOPIC = ""
"""The topic of what every topic view serves: the extension and marking definitions and the
identities that the objects of every topic reference (stored once, by whichever delivery brought
them first)."""


def _in_view(prefix: str) -> Any:
    """The rows of the topic view of ``prefix``: its topic and those below it, and the shared."""
    c = objects.c
    return or_(c.topic == SHARED_TOPIC, c.topic == prefix, c.topic.startswith(prefix + ".", autoescape=True))


def to_us(at: datetime) -> int:
    """Microseconds since 1970-01-01T00:00Z of an aware instant."""
    delta = at.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> str:
    """A TAXII timestamp (microsecond precision, ``Z``) of microseconds since the epoch."""
    seconds, micro = divmod(us, 1_000_000)
    at = datetime.fromtimestamp(seconds, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S") + f".{micro:06d}Z"


@dataclass(frozen=True, slots=True, kw_only=True)
class NewObject:
    """A STIX object to store, with what the indexes need."""

    body: Mapping[str, Any]
    topic: str = ""
    delivery: str | None = None
    origin: str = ""
    """The party whose delivery brought the object; empty for what the node itself makes (and
    for the outbox, which holds one party's objects). Only the origin that first stored an id
    stores more versions of it."""
    versioned: bool = True
    """False for an object no later version may follow: what the node makes itself, whose
    content is fixed by its id (a marking definition is never versioned in any case)."""
    text: str | None = None
    """``body`` already serialised as compact JSON (the bytes a report's payload carries), so it
    is not encoded a second time; None: the store encodes ``body``."""

    @property
    def stix_id(self) -> str:
        """The object's STIX id."""
        return str(self.body["id"])


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionFilter:
    """``match[version]`` (TAXII 2.1 §3.4.1): ``last`` by default."""

    first: bool = False
    last: bool = True
    all: bool = False
    exact: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    """One page of a collection: the filters of §3.4 and where the previous page ended."""

    after_us: int | None = None
    limit: int = 100
    ids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    spec_versions: tuple[str, ...] = ()
    versions: VersionFilter = field(default_factory=VersionFilter)
    topic_prefix: str | None = None


@dataclass(frozen=True, slots=True)
class Row:
    """A stored object as a page returns it."""

    stix_id: str
    version: str
    date_added: int
    body: str


@dataclass(frozen=True, slots=True)
class Page:
    """Rows in ``date_added`` order, and whether more match."""

    rows: tuple[Row, ...]
    more: bool


class Transactions(Protocol):
    """Where the tables live: the node's encrypted store (:class:`gsomia.node.store.NodeStore`)
    or any engine through :class:`EngineTransactions`."""

    def write(self) -> AbstractContextManager[Connection]:
        """One write transaction.

        Raises:
            StorageError: the database failed.
        """

    def read(self) -> AbstractContextManager[Connection]:
        """A read-only connection.

        Raises:
            StorageError: the database failed.
        """


class EngineTransactions:
    """:class:`Transactions` over a plain SQLAlchemy engine, writes serialised by one lock."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.RLock()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction."""
        with self._lock:
            try:
                with self.engine.begin() as conn:
                    yield conn
            except SQLAlchemyError as e:
                raise StorageError(f"TAXII store: {e.__class__.__name__}") from e

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as e:
            raise StorageError(f"TAXII store: {e.__class__.__name__}") from e


_IN_CHUNK = 500  # ids per IN (...) list: well under SQLite's limit on bound parameters


@dataclass(frozen=True, slots=True)
class _Refused:
    """An object :func:`_plan_rows` did not store, its id being the ``holder``'s."""

    stix_id: str
    origin: str
    holder: str
    version_us: int
    body: Mapping[str, Any]


@dataclass(slots=True)
class _RowPlan:
    """What :meth:`TaxiiStore.add` writes: new rows, the ids whose stored first or last
    version stops being so, and the answer for each object."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    not_last: set[str] = field(default_factory=set)
    not_first: set[str] = field(default_factory=set)
    out: list[tuple[str, str, bool]] = field(default_factory=list)
    refused: list[_Refused] = field(default_factory=list)
    """Objects not stored, their id being another origin's."""
    not_standard: list[str] = field(default_factory=list)
    """Ids of TLP 2.0 marking definitions not stored: their content is not the standard's."""


def _canonical(body: Mapping[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _shared(stix_id: str, body: Mapping[str, Any], origin: str) -> bool | None:
    """Whether an object of an originator (``origin``) is one whose content the standard fixes
    with its id, every originator sending the same: True for a TLP 2.0 marking definition of
    the standard's content (exempt from the rule that only the origin that first stored an id
    stores it), None for one of other content (stored by none), False for anything else."""
    if not origin or stix_id not in TLP_2_0:
        return False
    return True if _canonical(body) == _canonical(tlp_2_0_definition(stix_id)) else None


_INSERT_COLUMNS = tuple(c.name for c in objects.c if c.name != "seq")
_NULLABLE = tuple(c.name for c in objects.c if c.nullable and c.name != "seq")


@functools.lru_cache(maxsize=16)
def _positional_insert(dialect: Dialect, nulls: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """The INSERT of :data:`objects` without the columns ``nulls`` (left NULL) compiled for
    ``dialect``, and its parameters' order."""
    columns = [c for c in _INSERT_COLUMNS if c not in nulls]
    compiled = insert(objects).compile(dialect=dialect, column_keys=columns)
    return str(compiled), tuple(compiled.positiontup or ())


def _insert_objects(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows of :data:`objects` whose values are already of the columns' types, in order.

    On a driver that takes ``?`` parameters (SQLite, SQLCipher) they go to its ``executemany``
    as tuples: SQLAlchemy would otherwise process every parameter of every row in Python, which
    costs more than SQLite's own work for the insert. That driver binds an ``int``, ``float`` or
    ``str`` at once but looks up an adapter for any other value, ``None`` and ``bool``
    included, at about two microseconds each (two failed attribute lookups): booleans go as 0
    and 1 (what SQLAlchemy stores for them), and a NULL column is left out of the statement
    rather than bound, one ``executemany`` per run of rows that leave the same columns NULL."""
    if conn.dialect.paramstyle != "qmark":
        conn.execute(insert(objects), list(rows))
        return
    runs: list[tuple[str, list[tuple[Any, ...]]]] = []
    last: tuple[str, ...] | None = None
    order: tuple[str, ...] = ()
    for r in rows:
        nulls = tuple(c for c in _NULLABLE if r.get(c) is None)
        if nulls != last:
            statement, order = _positional_insert(conn.dialect, nulls)
            runs.append((statement, []))
            last = nulls
        runs[-1][1].append(tuple(int(v) if v.__class__ is bool else v for v in map(r.__getitem__, order)))
    for statement, values in runs:
        conn.exec_driver_sql(statement, values)


def _plan_rows(
    collection: str,
    new: Sequence[NewObject],
    versions: dict[str, list[int]],
    origins: dict[str, str],
    *,
    added_us: int,
) -> _RowPlan:
    """The rows for ``new``, given every stored ``versions`` of their ids and the ``origins``
    that stored them (both extended here with what this call adds, so an id twice in one call
    is seen as stored the second time).

    An object whose id another origin holds is not stored (one originator's delivery neither
    versions nor hides another's objects), nor is a second version of a marking definition
    (STIX 2.1 §7.2.1) or of an object that is not ``versioned``. A TLP 2.0 marking definition
    from an originator is stored with the standard's content only, whoever sent it first: its
    content is fixed with its id, so the same from another originator is the same object."""
    plan = _RowPlan()
    for item in new:
        body = item.body
        stix_id = item.stix_id
        version_text = body.get("modified") or body.get("created")
        if isinstance(version_text, str):
            version_us = to_us(parse_timestamp(version_text, "version"))
            version = version_text
        else:
            version_us, version = added_us, from_us(added_us)
        same_id = versions.setdefault(stix_id, [])
        if not isinstance(version_text, str) and same_id:
            # An SCO is not versioned (STIX 2.1 §6): the same id again is the same object,
            # whoever sent it (its id is fixed by its value, §2.9).
            plan.out.append((stix_id, from_us(same_id[0]), False))
            continue
        shared = _shared(stix_id, body, item.origin)
        if shared is None:
            plan.not_standard.append(stix_id)
            plan.out.append((stix_id, version, False))
            continue
        holder = origins.setdefault(stix_id, item.origin)
        if holder != item.origin and not shared:
            plan.refused.append(_Refused(stix_id, item.origin, holder, version_us, body))
            plan.out.append((stix_id, version, False))
            continue
        fixed = not item.versioned or body.get("type") == "marking-definition"
        if version_us in same_id or (fixed and same_id):
            plan.out.append((stix_id, version, False))
            continue
        is_last = all(v < version_us for v in same_id)
        is_first = all(v > version_us for v in same_id)
        for flag, now_not, changed in (("is_last", is_last, plan.not_last), ("is_first", is_first, plan.not_first)):
            if same_id and now_not:
                changed.add(stix_id)
                for row in plan.rows:  # a version added earlier in this call
                    if row["stix_id"] == stix_id:
                        row[flag] = False
        same_id.append(version_us)
        plan.rows.append(
            {
                "collection": collection,
                "stix_id": stix_id,
                "stix_type": str(body.get("type", "")),
                "version": version,
                "version_us": version_us,
                "spec_version": str(body.get("spec_version", "2.1")),
                "date_added": added_us,
                "topic": item.topic,
                "is_last": is_last,
                "is_first": is_first,
                "delivery": item.delivery,
                "origin": item.origin,
                "body": item.text if item.text is not None else jsontext.compact(body),
            }
        )
        plan.out.append((stix_id, version, True))
        added_us += 1
    return plan


class TaxiiWrite:
    """The changes of one write transaction of :meth:`TaxiiStore.writing`, applied in the order
    they are made."""

    def __init__(self, conn: Connection) -> None:
        self.connection = conn
        """The transaction's connection, for the caller's own rows in the same commit."""

    def add(self, collection: str, new: Sequence[NewObject], *, now: datetime) -> list[tuple[str, str, bool]]:
        """Store objects in ``collection``; an object whose id and version are there already is
        left as it is (TAXII 2.1 §5.5: an exact duplicate is not an error). Objects added
        earlier in the same transaction count as stored.

        One query finds the stored versions of every id in ``new``, and the new rows go in with
        one ``executemany``.

        Returns:
            ``(id, version, added)`` for each object, in order.
        """
        conn = self.connection
        last = conn.execute(select(func.max(objects.c.date_added)).where(objects.c.collection == collection)).scalar()
        # every stored version of the ids (version_us) and who stored them; _plan_rows adds
        # this call's own
        versions: dict[str, list[int]] = {}
        origins: dict[str, str] = {}
        ids = sorted({item.stix_id for item in new})
        for start in range(0, len(ids), _IN_CHUNK):
            for r in conn.execute(
                select(objects.c.stix_id, objects.c.version_us, objects.c.origin)
                .where(objects.c.collection == collection, objects.c.stix_id.in_(ids[start : start + _IN_CHUNK]))
                .order_by(objects.c.date_added)  # the origin that stored an id first holds it
            ):
                versions.setdefault(r.stix_id, []).append(int(r.version_us))
                origins.setdefault(r.stix_id, str(r.origin))
        plan = _plan_rows(collection, new, versions, origins, added_us=max(to_us(now), (last or 0) + 1))
        if plan.refused or plan.not_standard:
            self._log_refused(collection, plan)
        # The stored rows first: the flags of rows added in this call are already right.
        for flag, ids_changed in (("is_last", plan.not_last), ("is_first", plan.not_first)):
            if ids_changed:
                conn.execute(
                    update(objects)
                    .where(
                        objects.c.collection == collection,
                        objects.c.stix_id.in_(sorted(ids_changed)),
                        objects.c[flag],
                    )
                    .values({flag: False})
                )
        if plan.rows:
            _insert_objects(conn, plan.rows)
        return plan.out

    def _log_refused(self, collection: str, plan: _RowPlan) -> None:
        """Log what :func:`_plan_rows` did not store. A copy of an object another originator
        holds, identical to the stored one (same id, same version, same content: an object
        several originators share), is no conflict and is logged at debug; another version, or
        other content under the same version, is logged as a warning, and so is a TLP 2.0
        marking definition whose content is not the standard's."""
        stored = self._stored_bodies(collection, plan)
        copies: list[_Refused] = []
        others: list[_Refused] = []
        for r in plan.refused:
            (copies if stored.get((r.stix_id, r.version_us)) == _canonical(r.body) else others).append(r)
        if copies:
            log.debug(
                "TAXII %s: %d identical copy(ies) of objects another originator brought first not stored again (%s)",
                collection,
                len(copies),
                copies[0].stix_id,
            )
        if others:
            r = others[0]
            log.warning(
                "TAXII %s: %d object(s) not stored, their ids being another originator's (%s from %s, held by %s)",
                collection,
                len(others),
                r.stix_id,
                r.origin or "this node",
                r.holder or "this node",
            )
        if plan.not_standard:
            log.warning(
                "TAXII %s: %d TLP 2.0 marking definition(s) not stored, their content not the standard's (%s)",
                collection,
                len(plan.not_standard),
                plan.not_standard[0],
            )

    def _stored_bodies(self, collection: str, plan: _RowPlan) -> dict[tuple[str, int], str]:
        """The canonical content of each stored version (this call's included) of the ids
        :func:`_plan_rows` refused, by ``(id, version)``."""
        ids = sorted({r.stix_id for r in plan.refused})
        versions = sorted({r.version_us for r in plan.refused})
        found: dict[tuple[str, int], str] = {}
        for chunk in _runs(ids):
            conds = [objects.c.collection == collection, objects.c.stix_id.in_(chunk)]
            if len(versions) <= IN_LIST:  # only the versions in question, as a rule
                conds.append(objects.c.version_us.in_(versions))
            rows = self.connection.execute(
                select(objects.c.stix_id, objects.c.version_us, objects.c.body).where(*conds)
            )
            for r in rows:
                found[(r.stix_id, int(r.version_us))] = _canonical(json.loads(r.body))
        for row in plan.rows:
            if row["stix_id"] in ids:
                found[(row["stix_id"], row["version_us"])] = _canonical(json.loads(row["body"]))
        return found

    def put_status(self, status_id: str, owner: str, body: Mapping[str, Any], *, now: datetime) -> None:
        """Store a new status resource."""
        self.connection.execute(
            insert(statuses).values(id=status_id, owner=owner, created_us=to_us(now), body=jsontext.compact(body))
        )

    def update_status(self, status_id: str, body: Mapping[str, Any]) -> None:
        """Replace a status resource's body."""
        self.connection.execute(update(statuses).where(statuses.c.id == status_id).values(body=jsontext.compact(body)))

    def put_job(self, status_id: str, objects: Sequence[Mapping[str, Any]]) -> None:
        """Keep the objects a pending status still waits for (see :data:`jobs`)."""
        self.connection.execute(insert(jobs).values(status_id=status_id, objects=jsontext.compact(list(objects))))

    def drop_job(self, status_id: str) -> None:
        """The pending status's results are stored: its objects are no longer kept."""
        self.connection.execute(delete(jobs).where(jobs.c.status_id == status_id))


def _add_origins(conn: Connection) -> None:
    """Add the ``origin`` column to a table an earlier version made, and give the inbox's rows
    their originator: that of the delivery that brought them, read from the marking the node
    made for that delivery (its id is fixed by the delivery's). What the node made itself,
    and a row whose delivery is not known so, keep the empty origin: no originator versions
    them."""
    conn.exec_driver_sql("ALTER TABLE taxii_object ADD COLUMN origin VARCHAR(32) DEFAULT '' NOT NULL")
    c = objects.c
    made = {NATIONAL_MARKING_EXTENSION, GSOMIA_IDENTITY}
    rows = conn.execute(
        select(c.delivery, c.stix_id, c.body).where(c.stix_type == "marking-definition", c.delivery.is_not(None))
    )
    for r in rows.all():
        if r.stix_id != delivery_marking_id(str(r.delivery)):
            continue
        ext = json.loads(r.body).get("extensions", {}).get(NATIONAL_MARKING_EXTENSION, {})
        party = ext.get("originator_marking", {}).get("party") if isinstance(ext, dict) else None
        if not isinstance(party, str) or not PARTY_ID.fullmatch(party):
            continue
        conn.execute(
            update(objects)
            .where(c.delivery == r.delivery, c.stix_id.not_in([*made, r.stix_id, party_identity(party)["id"]]))
            .values(origin=party)
        )


class TaxiiStore:
    """The TAXII tables, in the node's store."""

    def __init__(self, db: Transactions) -> None:
        self.db = db
        # One writer at a time: date_added is computed from the collection's last one.
        self._write_lock = threading.Lock()
        with self.db.write() as conn:
            try:
                metadata.create_all(conn, checkfirst=True)
                if "origin" not in {c["name"] for c in inspect(conn).get_columns(objects.name)}:
                    _add_origins(conn)
                if "expires_us" not in {c["name"] for c in inspect(conn).get_columns(tokens.name)}:
                    # a table an earlier version made: its tokens had no expiry and keep none
                    conn.exec_driver_sql("ALTER TABLE taxii_token ADD COLUMN expires_us BIGINT")
            except SQLAlchemyError as e:
                raise StorageError(f"cannot create the TAXII tables: {e.__class__.__name__}") from e

    def _begin(self) -> AbstractContextManager[Connection]:
        return self.db.write()

    def _read(self) -> AbstractContextManager[Connection]:
        return self.db.read()

    # --- objects -----------------------------------------------------------------------------

    def writing(self) -> AbstractContextManager[TaxiiWrite]:
        """One write transaction for several changes (objects of several envelopes or deliveries,
        their status resources, the caller's own rows through :attr:`TaxiiWrite.connection`):
        all are committed together, or none is. One commit rather than one per change: the
        store's commit encrypts and writes every page it touched, and the pages at the end of
        the collection's indexes are touched by every change.

        Raises:
            StorageError: the database failed (nothing of the transaction is kept).
        """
        return self._writing()

    @contextmanager
    def _writing(self) -> Iterator[TaxiiWrite]:
        with self._write_lock, self._begin() as conn:
            yield TaxiiWrite(conn)

    def add(self, collection: str, new: Sequence[NewObject], *, now: datetime) -> list[tuple[str, str, bool]]:
        """Store objects in ``collection`` in a transaction of their own (see
        :meth:`TaxiiWrite.add`).

        Returns:
            ``(id, version, added)`` for each object, in order.
        """
        with self.writing() as w:
            return w.add(collection, new, now=now)

    def bulk_load(self, collection: str, rows: Sequence[tuple[str, str, str, int, str, str]]) -> None:
        """Append objects known to be new and single-versioned (a benchmark's or a migration's
        bulk load): ``(id, type, version, date_added_us, topic, body)`` in ``date_added`` order,
        after every stored one (:meth:`next_added` gives the first free ``date_added``).

        Raises:
            InvalidInput: a row's ``date_added`` is not after every stored one and the row
                before it: a client that already read past it would never see it (nothing
                is stored).
        """
        if not rows:
            return
        with self._write_lock, self._begin() as conn:
            last = conn.execute(
                select(func.max(objects.c.date_added)).where(objects.c.collection == collection)
            ).scalar()
            floor = -1 if last is None else int(last)
            for n, (sid, _kind, _version, added, _topic, _body) in enumerate(rows):
                if added <= floor:
                    raise InvalidInput(
                        f"bulk load into {collection}: row {n} ({sid}) has date_added {from_us(added)}, not after "
                        f"{from_us(floor)} (the row before it or the collection's last object): give date_added "
                        "strictly increasing from next_added(); nothing was stored"
                    )
                floor = added
            conn.execute(
                insert(objects),
                [
                    {
                        "collection": collection,
                        "stix_id": sid,
                        "stix_type": kind,
                        "version": version,
                        "version_us": to_us(parse_timestamp(version)),
                        "spec_version": "2.1",
                        "date_added": added,
                        "topic": topic,
                        "is_last": True,
                        "is_first": True,
                        "delivery": None,
                        "origin": "",
                        "body": body,
                    }
                    for sid, kind, version, added, topic, body in rows
                ],
            )
            # A writer of another process may have committed since the check above (SQLite's
            # transaction begins at the INSERT): then rows of its are dated after the first here.
            c = objects.c
            at_or_after = conn.execute(
                select(func.count()).where(c.collection == collection, c.date_added >= rows[0][3])
            ).scalar()
            if at_or_after != len(rows):
                raise InvalidInput(
                    f"bulk load into {collection}: another writer stored objects dated after "
                    f"{from_us(rows[0][3])} meanwhile; take next_added() again and load again (nothing was stored)"
                )

    def next_added(self, collection: str, *, now: datetime) -> int:
        """The first ``date_added`` a bulk load may give: after every stored one, and not before
        ``now`` (as :meth:`TaxiiWrite.add` gives it)."""
        with self._read() as conn:
            last = conn.execute(
                select(func.max(objects.c.date_added)).where(objects.c.collection == collection)
            ).scalar()
        return max(to_us(now), (last or 0) + 1)

    def page(self, collection: str, q: Query) -> Page:
        """One page of objects matching ``q``, oldest ``date_added`` first (TAXII 2.1 §3.3)."""
        c = objects.c
        conds: list[Any] = [c.collection == collection]
        if q.after_us is not None:
            conds.append(c.date_added > q.after_us)
        if q.ids:
            conds.append(c.stix_id.in_(q.ids))
        if q.types:
            conds.append(c.stix_type.in_(q.types))
        if q.spec_versions:
            conds.append(c.spec_version.in_(q.spec_versions))
        if q.topic_prefix is not None and q.topic_prefix != "*":
            conds.append(_in_view(q.topic_prefix))
        v = q.versions
        if not v.all:
            alternatives: list[Any] = []
            if v.last:
                alternatives.append(c.is_last.is_(True))
            if v.first:
                alternatives.append(c.is_first.is_(True))
            if v.exact:
                alternatives.append(c.version_us.in_(v.exact))
            conds.append(or_(*alternatives) if len(alternatives) > 1 else alternatives[0])
        stmt = (
            select(c.stix_id, c.version, c.date_added, c.body)
            .where(and_(*conds))
            .order_by(c.date_added)
            .limit(q.limit + 1)
        )
        with self._read() as conn:
            found = conn.execute(stmt).all()
        rows = tuple(Row(r.stix_id, r.version, r.date_added, r.body) for r in found[: q.limit])
        return Page(rows=rows, more=len(found) > q.limit)

    def has_object(self, collection: str, stix_id: str, *, topic_prefix: str | None = None) -> bool:
        """True if any version of ``stix_id`` is in the collection."""
        c = objects.c
        conds: list[Any] = [c.collection == collection, c.stix_id == stix_id]
        if topic_prefix is not None and topic_prefix != "*":
            conds.append(_in_view(topic_prefix))
        with self._read() as conn:
            return conn.execute(select(c.seq).where(*conds).limit(1)).first() is not None

    def present(self, collection: str, pairs: Sequence[tuple[str, str | None]]) -> set[tuple[str, str | None]]:
        """Which of the ``(id, version)`` pairs are in the collection (a version of None: any)."""
        if not pairs:
            return set()
        c = objects.c
        ids = sorted({p[0] for p in pairs})
        with self._read() as conn:
            stored = [
                r
                for chunk in _runs(ids)
                for r in conn.execute(
                    select(c.stix_id, c.version_us).where(c.collection == collection, c.stix_id.in_(chunk))
                )
            ]
        have: dict[str, set[int]] = {}
        for r in stored:
            have.setdefault(r.stix_id, set()).add(r.version_us)
        found: set[tuple[str, str | None]] = set()
        for sid, version in pairs:
            if sid not in have:
                continue
            if version is None or to_us(parse_timestamp(version)) in have[sid]:
                found.add((sid, version))
        return found

    def bodies(self, collection: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The latest stored body of each of ``ids`` found in the collection."""
        if not ids:
            return {}
        c = objects.c
        with self._read() as conn:
            # is_last is checked here, not in SQL: with it in the WHERE clause SQLite takes the
            # (collection, is_last) index and reads every latest object of the collection.
            found = [
                r
                for chunk in _runs(sorted(set(ids)))
                for r in conn.execute(
                    select(c.stix_id, c.body, c.is_last).where(c.collection == collection, c.stix_id.in_(chunk))
                )
            ]
        return {r.stix_id: json.loads(r.body) for r in found if r.is_last}

    def count(self, collection: str) -> int:
        """How many objects (all versions) the collection holds."""
        with self._read() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(objects).where(objects.c.collection == collection)
                ).scalar()
                or 0
            )

    # --- status resources -------------------------------------------------------------------

    def put_status(self, status_id: str, owner: str, body: Mapping[str, Any], *, now: datetime) -> None:
        """Store a new status resource."""
        with self.writing() as w:
            w.put_status(status_id, owner, body, now=now)

    def update_status(self, status_id: str, body: Mapping[str, Any]) -> None:
        """Replace a status resource's body."""
        with self.writing() as w:
            w.update_status(status_id, body)

    def unfinished(self) -> list[tuple[str, str, datetime, dict[str, Any], list[Any]]]:
        """``(id, owner, created, body, objects)`` of each status a process stopped before it
        stored the results of its reports, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                select(statuses.c.id, statuses.c.owner, statuses.c.created_us, statuses.c.body, jobs.c.objects)
                .join(jobs, jobs.c.status_id == statuses.c.id)
                .order_by(statuses.c.created_us, statuses.c.id)
            ).all()
        return [
            (
                r.id,
                r.owner,
                _EPOCH + timedelta(microseconds=int(r.created_us)),
                json.loads(r.body),
                json.loads(r.objects),
            )
            for r in rows
        ]

    def status(self, status_id: str) -> tuple[str, dict[str, Any]] | None:
        """``(owner, body)`` of a status resource, or None."""
        with self._read() as conn:
            row = conn.execute(select(statuses.c.owner, statuses.c.body).where(statuses.c.id == status_id)).first()
        return (row.owner, json.loads(row.body)) if row else None

    # --- bearer tokens ------------------------------------------------------------------------

    def add_token(self, digest: str, *, username: str, name: str, now: datetime, expires: datetime) -> None:
        """Record a bearer token (its SHA-256 only) for a node user, refused from ``expires`` on."""
        with self._begin() as conn:
            conn.execute(
                insert(tokens).values(
                    digest=digest, username=username, name=name, created_us=to_us(now), expires_us=to_us(expires)
                )
            )

    def token_user(self, digest: str, *, now: datetime | None = None) -> str | None:
        """The user of a live token (neither revoked nor expired at ``now``), or None."""
        at = to_us(now or datetime.now(UTC))
        live = or_(tokens.c.expires_us.is_(None), tokens.c.expires_us > at)
        with self._read() as conn:
            row = conn.execute(
                select(tokens.c.username).where(tokens.c.digest == digest, tokens.c.revoked_us.is_(None), live)
            ).first()
        return str(row.username) if row else None

    def list_tokens(self, *, now: datetime | None = None) -> list[dict[str, Any]]:
        """Every token: user, name, created, revoked, when it expires (None: issued before tokens
        expired) and whether it has (never the token)."""
        at = to_us(now or datetime.now(UTC))
        with self._read() as conn:
            rows = conn.execute(select(tokens).order_by(tokens.c.created_us)).all()
        return [
            {
                "id": r.digest[:12],
                "user": r.username,
                "name": r.name,
                "created": from_us(r.created_us),
                "revoked": from_us(r.revoked_us) if r.revoked_us else None,
                "expires": from_us(r.expires_us) if r.expires_us is not None else None,
                "expired": r.expires_us is not None and r.expires_us <= at,
            }
            for r in rows
        ]

    def revoke_tokens(self, *, username: str | None = None, token_id: str | None = None, now: datetime) -> int:
        """Revoke a user's tokens, or the token whose id (digest prefix) is given; how many."""
        conds: list[Any] = [tokens.c.revoked_us.is_(None)]
        if username is not None:
            conds.append(tokens.c.username == username)
        if token_id is not None:
            conds.append(tokens.c.digest.startswith(token_id, autoescape=True))
        with self._begin() as conn:
            result = conn.execute(update(tokens).where(*conds).values(revoked_us=to_us(now)))
            return int(result.rowcount or 0)


IN_LIST = 10_000
"""Ids bound in one ``IN (…)`` list: SQLite allows at most 250,000 bound values in a statement
(SQLITE_MAX_VARIABLE_NUMBER since 3.32), and an envelope may name more ids than that."""


def _runs(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    """``ids`` in runs of at most :data:`IN_LIST`."""
    for start in range(0, len(ids), IN_LIST):
        yield ids[start : start + IN_LIST]
