"""Ledger rows: one row per Merkle leaf, appended in the caller's write transaction.

Each row holds the leaf's index, its RFC 9162 §2.1.1 leaf hash and the entry's RFC 8785
bytes (the leaf data), so the tree can be rebuilt from the hashes alone (fast start) and the
hashes re-derived from the bodies (full verification).

Index allocation is gap-free with any number of writers: the next index is ``max + 1`` read
under a lock held until the transaction ends. On SQLite the write transaction already holds
the database's write lock (``BEGIN IMMEDIATE``, see :mod:`gsomia.storage.db`); on PostgreSQL
a transaction-level advisory lock on a constant key serialises appenders, and is released
by the commit or rollback. Holding the lock when an index is allocated means every lower
index is already committed, which is what lets the in-memory tree catch up from the
database whenever it sees a gap.

The rows themselves are written just before the outermost commit, in one multi-row insert
(SQLAlchemy's ``before_commit``): appending costs no round trip, and a group commit of many
actions writes all their entries at once. Their ``recorded_at`` is read from the appender's
clock at that moment, once for the whole commit: the instant the entries were written, just
before they become durable, rather than the moment each was built. The caller learns about
its leaves only after the commit (``on_commit``, from ``after_commit``); the leaves of a
rolled-back transaction or of a rolled-back savepoint are dropped (``after_soft_rollback``)
and never written or reported.

Full scans (start-up rebuild, verification) read through the driver's own cursor: they are
the hot path of a million-entry ledger, and SQLAlchemy's row objects would triple their cost.

Every read checks what it hands out: a body or leaf hash that is not bytes (SQLite's
``replace()`` turns a BLOB into TEXT), or a leaf hash that is not 32 bytes long, was written by
no append, so the row was altered in the database: it is reported as that entry's problem
(:class:`~gsomia.ledger.audit.EntryProblem`), never converted.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Table, Text, event, func, insert, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, SessionTransaction, mapped_column

from gsomia.errors import Conflict, StorageError
from gsomia.ledger.audit import EntryProblem
from gsomia.storage.bulk import insert_rows
from gsomia.storage.schema import Base, UTCDateTime
from gsomia.storage.store import Store

__all__ = [
    "PUBLIC",
    "CommittedLeaves",
    "CosignatureRow",
    "LedgerEntryRow",
    "LedgerMetaRow",
    "LedgerTable",
    "LedgerVisibilityRow",
    "Session",
    "StoredEntry",
]

log = logging.getLogger(__name__)

# Arbitrary constant advisory-lock key ("gLdg"); distinct from the migration lock in db.py.
_LEDGER_LOCK = 0x674C_6467
_CHECKPOINT_LOCK = 0x674C_4350  # "gLCP": one checkpoint signer at a time
_HASH_BYTES = 32  # SHA-256 (RFC 9162 §2.1.1)
_PENDING = "gsomia.ledger.pending"
_LOCKED = "gsomia.ledger.locked"

CommittedLeaves = Callable[[Sequence[tuple[int, bytes]]], None]
"""Called after a commit with the ``(index, leaf hash)`` pairs that transaction added."""


class LedgerEntryRow(Base):
    """One ledger entry: leaf ``idx`` of the Merkle tree."""

    __tablename__ = "ledger_entries"
    # INTEGER PRIMARY KEY on SQLite makes the index the rowid (no second b-tree); BIGINT elsewhere.
    idx: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
    )
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


PUBLIC = "*"
"""The visibility of an entry every principal may read (an agreement event, a public key)."""


class LedgerVisibilityRow(Base):
    """Who may read ledger entry ``idx`` besides auditors and operators: a party, or everyone
    (:data:`PUBLIC`). Not part of the tree: it can grow after the entry (a relay granted later
    shows the hub and the recipient the report's submission entry)."""

    __tablename__ = "ledger_visibility"
    party: Mapped[str] = mapped_column(String(16), primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)


class LedgerMetaRow(Base):
    """Facts about this log: its origin line, its key (verifier key), the latest checkpoint kept."""

    __tablename__ = "ledger_meta"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class CosignatureRow(Base):
    """A witness's cosignature of the checkpoint of tree size ``size`` (C2SP tlog-cosignature):
    the signature line, as the witness made it, of the checkpoint this log signed at that size."""

    __tablename__ = "ledger_cosignatures"
    size: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    witness: Mapped[str] = mapped_column(String(200), primary_key=True)
    timestamp: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    line: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """A ledger row as read back."""

    index: int
    leaf_hash: bytes
    body: bytes
    recorded_at: datetime


@dataclass(slots=True)
class _Leaf:
    index: int
    leaf_hash: bytes
    body: bytes
    transaction: SessionTransaction
    parties: tuple[str, ...] = ()


@dataclass(slots=True)
class _Pending:
    """Leaves a session has inserted but not yet committed."""

    on_commit: CommittedLeaves
    clock: Callable[[], datetime]
    leaves: list[_Leaf] = field(default_factory=list)


class LedgerTable:
    """Reads and appends of ``ledger_entries`` over one :class:`Store`."""

    def __init__(self, store: Store) -> None:
        """Use ``store``'s engine (its migrations create the table)."""
        self._store = store

    # --- appending ----------------------------------------------------------------------------

    def append(
        self,
        session: Session,
        *,
        body: bytes,
        leaf_hash: bytes,
        clock: Callable[[], datetime],
        on_commit: CommittedLeaves,
        parties: Sequence[str] = (),
    ) -> int:
        """Insert one entry in ``session``'s open write transaction and return its index.

        Args:
            session: A session from :meth:`Store.writing`, inside its transaction.
            body: The entry's RFC 8785 bytes.
            leaf_hash: ``SHA-256(0x00 || body)``.
            clock: Now (aware), read once when the transaction's entries are written, for
                their ``recorded_at``.
            on_commit: Told the leaves after the transaction commits; never if it rolls back.
            parties: The parties that may read the entry (:data:`PUBLIC` for everyone);
                auditors and operators read every entry.

        Returns:
            The entry's index (its leaf index in the tree).

        Raises:
            StorageError: ``session`` is not an open write transaction from
                :meth:`Store.writing`, or the database fails.
        """
        if not isinstance(session, Session) or not session.in_transaction():
            raise StorageError("a ledger entry can only be appended inside Store.writing() (no open transaction)")
        try:
            connection = session.connection()
        except SQLAlchemyError as e:
            raise StorageError(f"a ledger entry cannot be appended: {e}") from e
        if not connection.get_execution_options().get("gsomia_write", False):
            # A read session would allocate its index without the write lock (see module doc).
            raise StorageError("a ledger entry can only be appended inside Store.writing(), not Store.reading()")
        pending = session.info.get(_PENDING)
        if pending is None:
            pending = _Pending(on_commit=on_commit, clock=clock)
            session.info[_PENDING] = pending
            event.listen(session, "before_commit", _before_commit)
            event.listen(session, "after_commit", _after_commit)
            event.listen(session, "after_soft_rollback", _after_soft_rollback)
        elif pending.on_commit != on_commit:
            raise StorageError("one transaction cannot append to two ledgers")
        if pending.leaves:
            index = pending.leaves[-1].index + 1
        else:
            if connection.dialect.name == "postgresql" and session.info.get(_LOCKED) is not session.get_transaction():
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LEDGER_LOCK})
            last = connection.execute(select(func.max(LedgerEntryRow.idx))).scalar()
            index = 0 if last is None else int(last) + 1
        transaction = session.get_nested_transaction() or session.get_transaction()
        if transaction is None:  # pragma: no cover - in_transaction() was checked above
            raise StorageError("the ledger append lost its transaction")
        pending.leaves.append(_Leaf(index, leaf_hash, body, transaction, tuple(dict.fromkeys(parties))))
        return index

    @staticmethod
    def lock_appends(session: Session, *, after: Sequence[int] = ()) -> None:
        """Take the append lock now, for the rest of ``session``'s transaction, in one round
        trip with the advisory locks ``after`` (taken first, in that order): a writer that
        appends in nearly every transaction saves the statement its first append would send.

        No-op on SQLite, whose write transaction already holds the database's write lock
        (``after`` is then ignored too: SQLite has no advisory locks).
        """
        if session.get_bind().dialect.name != "postgresql":
            return
        keys = [*after, _LEDGER_LOCK]
        # PostgreSQL evaluates a select list left to right: the locks are taken in this order.
        sql = "SELECT " + ", ".join(f"pg_advisory_xact_lock(:k{i})" for i in range(len(keys)))
        session.execute(text(sql), {f"k{i}": k for i, k in enumerate(keys)})
        session.info[_LOCKED] = session.get_transaction()

    @staticmethod
    def share(session: Session, index: int, parties: Sequence[str]) -> None:
        """Let ``parties`` read the entry ``index`` too, committed or appended in ``session``'s
        transaction (in that transaction).

        Raises:
            StorageError: on any database error.
        """
        pending: _Pending | None = session.info.get(_PENDING)
        if pending is not None and pending.leaves:
            # An entry appended in this very transaction (a submission, then its deliveries) is
            # written with its readers at commit: widen them there, with no statement. Only if it
            # belongs to the innermost transaction: a savepoint rolled back drops both together.
            offset = index - pending.leaves[0].index
            if 0 <= offset < len(pending.leaves):
                leaf = pending.leaves[offset]
                current = session.get_nested_transaction() or session.get_transaction()
                if leaf.index == index and leaf.transaction is current:
                    leaf.parties = tuple(dict.fromkeys((*leaf.parties, *parties)))
                    return
        known = set(
            session.scalars(
                select(LedgerVisibilityRow.party).where(
                    LedgerVisibilityRow.idx == index, LedgerVisibilityRow.party.in_(list(parties))
                )
            )
        )
        fresh = [{"party": p, "idx": index} for p in dict.fromkeys(parties) if p not in known]
        if fresh:
            session.connection().execute(insert(LedgerVisibilityRow), fresh)

    # --- cosignatures -----------------------------------------------------------------------------

    @staticmethod
    def add_cosignature(
        s: Session,
        *,
        size: int,
        witness: str,
        timestamp: int,
        line: str,
        note: str,
        at: datetime,
        same_party: Callable[[str], bool],
    ) -> bool:
        """Keep ``witness``'s cosignature of the checkpoint of ``size`` in the caller's
        transaction, unless one of the same witness key for that size with a timestamp as new
        or newer is kept already; whether it was kept. A line of another key under that name
        gives way to it only if ``same_party`` says that key was the same party's (its witness
        key replaced): another party's line is never overwritten.

        Raises:
            Conflict: the line kept for ``size`` under that name is of another party's key.
        """
        row = s.get(CosignatureRow, (size, witness))
        if row is None:
            s.add(CosignatureRow(size=size, witness=witness, timestamp=timestamp, line=line, note=note, recorded_at=at))
            return True
        if _key_hash(row.line) == _key_hash(line):
            if row.timestamp >= timestamp:
                return False
        elif not same_party(row.line):
            raise Conflict(
                f"the cosignature of size {size} kept under the witness name {witness!r} is by another party's "
                "witness key: it stays, and this one is not kept"
            )
        row.timestamp, row.line, row.note, row.recorded_at = timestamp, line, note, at
        return True

    @staticmethod
    def stored_leaf(s: Session, index: int) -> object:
        """The leaf hash stored at ``index`` as the database holds it, read in the caller's
        transaction (None if there is no such entry; anything but 32 bytes was altered)."""
        return s.scalar(select(LedgerEntryRow.leaf_hash).where(LedgerEntryRow.idx == index))

    def cosigned(self, size: int | None = None) -> tuple[str, list[str]] | None:
        """The checkpoint note of ``size`` (default: the largest size any witness cosigned) and
        the cosignature lines of it, or None.

        Raises:
            StorageError: on any database error.
        """
        with self._store.reading() as s:
            if size is None:
                size = s.scalar(select(func.max(CosignatureRow.size)))
                if size is None:
                    return None
            rows = s.scalars(select(CosignatureRow).where(CosignatureRow.size == size).order_by(CosignatureRow.witness))
            found = list(rows)
        if not found:
            return None
        return found[0].note, [r.line for r in found]

    # --- the log's own facts ------------------------------------------------------------------

    def record_checkpoint(
        self, size: int, note: str, *, last_leaf: bytes | None, seen: tuple[int | None, str] | None
    ) -> bool:
        """Keep ``note`` (of ``size`` entries, the last of them of leaf hash ``last_leaf``) as
        the latest checkpoint signed over this database, unless another process kept another
        one since ``seen`` was read (what :meth:`kept_checkpoint` answered), or the database no
        longer holds that last leaf. Both are checked in the transaction that writes, under a
        lock: a checkpoint is kept only over entries the database holds when it is kept, so a
        copy of the database (a standby, a dump) never holds a checkpoint newer than its
        entries.

        Returns:
            Whether ``note`` was kept; if not, the caller reads the ledger again and decides.

        Raises:
            StorageError: on any database error.
        """
        with self._store.writing("recording the latest checkpoint") as s:
            if s.get_bind().dialect.name == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHECKPOINT_LOCK})
            row = s.get(LedgerMetaRow, "checkpoint")
            current = None if row is None else _parse_stored(row.value) or (None, row.value)
            if current != seen:
                return False
            if size > 0:
                stored = s.scalar(select(LedgerEntryRow.leaf_hash).where(LedgerEntryRow.idx == size - 1))
                if stored != last_leaf:  # gone, or another entry: the ledger went back
                    return False
            value = json.dumps({"size": size, "note": note})
            if row is None:
                s.add(LedgerMetaRow(name="checkpoint", value=value))
            else:
                row.value = value
        return True

    def kept_checkpoint(self) -> tuple[int | None, str] | None:
        """The latest checkpoint kept (:meth:`record_checkpoint`) as ``(size, note)``; None when
        none is kept, and ``(None, value)`` when the stored value is unreadable (it was altered).

        Raises:
            StorageError: on any database error.
        """
        found = self.meta("checkpoint")
        if found is None:
            return None
        return _parse_stored(found) or (None, found)

    def all_cosignatures(self) -> list[tuple[int | None, str, int | None, str, str]]:
        """Every kept cosignature as ``(size, witness, timestamp, line, note)``, by size and
        witness; a size or timestamp that is not an integer (altered in the database) is None.

        Raises:
            StorageError: on any database error.
        """
        with self._store.reading() as s:
            rows = s.execute(
                select(
                    CosignatureRow.size,
                    CosignatureRow.witness,
                    CosignatureRow.timestamp,
                    CosignatureRow.line,
                    CosignatureRow.note,
                ).order_by(CosignatureRow.size, CosignatureRow.witness)
            ).all()
        return [(_integer(n), str(w), _integer(t), str(line), str(note)) for n, w, t, line, note in rows]

    def meta(self, name: str) -> str | None:
        """A stored fact about this log, or None.

        Raises:
            StorageError: on any database error.
        """
        with self._store.reading() as s:
            return s.scalar(select(LedgerMetaRow.value).where(LedgerMetaRow.name == name))

    def set_meta_once(self, name: str, value: str) -> str:
        """Store ``value`` under ``name`` unless a value is there already; return the stored one
        (several processes starting at once agree on the first).

        Raises:
            StorageError: on any database error.
        """
        with self._store.writing(f"recording the ledger's {name}") as s:
            current = s.scalar(select(LedgerMetaRow.value).where(LedgerMetaRow.name == name))
            if current is not None:
                return str(current)
            s.add(LedgerMetaRow(name=name, value=value))
        return value

    # --- reading ------------------------------------------------------------------------------

    def count(self) -> int:
        """Number of stored entries (``max(idx) + 1`` when there is no gap).

        Raises:
            StorageError: on any database error.
        """
        with self._store.reading() as s:
            last = s.execute(select(func.max(LedgerEntryRow.idx))).scalar()
            return 0 if last is None else int(last) + 1

    def leaf_hashes(self, start: int = 0) -> list[tuple[int, bytes]]:
        """Every stored ``(index, leaf hash)`` from ``start`` on, in index order.

        Raises:
            EntryProblem: a stored leaf hash is not 32 bytes (the row was altered).
            StorageError: on any database error.
        """
        out: list[tuple[int, bytes]] = []
        for rows in self._raw("SELECT idx, leaf_hash FROM ledger_entries WHERE idx > {} ORDER BY idx LIMIT {}", start):
            out.extend(rows if _all_hashes(rows, 1) else [(i, _leaf_hash(i, h)) for i, h in rows])
        return out

    def leaf_hash_at(self, index: int) -> object:
        """The leaf hash stored at ``index`` as the database holds it (None if there is no such
        entry): one indexed read, to check the database still holds a leaf.

        Raises:
            StorageError: on any database error.
        """
        with self._store.reading() as s:
            return self.stored_leaf(s, index)

    def get(self, index: int) -> StoredEntry | None:
        """The entry at ``index``, or None.

        Raises:
            EntryProblem: its body or leaf hash is not as an append writes it (the row was altered).
            StorageError: on any database error.
        """
        found = self.range(index, 1)
        return found[0] if found else None

    def range(self, start: int, limit: int, *, party: str | None = None) -> list[StoredEntry]:
        """Up to ``limit`` entries with index ``>= start``, in index order; only those ``party``
        may read when it is given.

        Raises:
            EntryProblem: a body or leaf hash is not as an append writes it (the row was altered).
            StorageError: on any database error.
        """
        q = select(LedgerEntryRow.idx, LedgerEntryRow.leaf_hash, LedgerEntryRow.body, LedgerEntryRow.recorded_at)
        q = q.where(LedgerEntryRow.idx >= start)
        if party is not None:
            readable = select(LedgerVisibilityRow.idx).where(
                LedgerVisibilityRow.party.in_([party, PUBLIC]), LedgerVisibilityRow.idx >= start
            )
            q = q.where(LedgerEntryRow.idx.in_(readable))
        with self._store.reading() as s:
            rows = s.execute(q.order_by(LedgerEntryRow.idx).limit(limit)).all()
        return [_stored(int(i), h, b, at) for i, h, b, at in rows]

    def some(self, indexes: Sequence[int], *, party: str | None = None) -> dict[int, StoredEntry]:
        """The entries at ``indexes`` that exist (and that ``party`` may read, when given), by
        index: one query.

        Raises:
            EntryProblem: a body or leaf hash is not as an append writes it (the row was altered).
            StorageError: on any database error.
        """
        wanted = sorted(set(indexes))
        if not wanted:
            return {}
        q = select(LedgerEntryRow.idx, LedgerEntryRow.leaf_hash, LedgerEntryRow.body, LedgerEntryRow.recorded_at)
        q = q.where(LedgerEntryRow.idx.in_(wanted))
        if party is not None:
            readable = select(LedgerVisibilityRow.idx).where(
                LedgerVisibilityRow.party.in_([party, PUBLIC]), LedgerVisibilityRow.idx.in_(wanted)
            )
            q = q.where(LedgerEntryRow.idx.in_(readable))
        with self._store.reading() as s:
            rows = s.execute(q).all()
        return {int(i): _stored(int(i), h, b, at) for i, h, b, at in rows}

    def readable(self, index: int, party: str) -> bool:
        """Whether ``party`` may read entry ``index``.

        Raises:
            StorageError: on any database error.
        """
        with self._store.reading() as s:
            found = s.scalar(
                select(LedgerVisibilityRow.idx).where(
                    LedgerVisibilityRow.idx == index, LedgerVisibilityRow.party.in_([party, PUBLIC])
                )
            )
        return found is not None

    def scan(self, *, batch: int = 50_000) -> Iterator[list[tuple[int, bytes, bytes]]]:
        """Every ``(index, body, leaf hash)``, in index order, ``batch`` rows at a time.

        Raises:
            EntryProblem: a body or leaf hash is not as an append writes it (the row was altered);
                the rows before it are yielded first.
            StorageError: on any database error.
        """
        sql = "SELECT idx, body, leaf_hash FROM ledger_entries WHERE idx > {} ORDER BY idx LIMIT {}"
        for rows in self._raw(sql, 0, batch=batch):
            if _all_hashes(rows, 2) and all(type(r[1]) is bytes for r in rows):
                yield rows
            else:
                yield from _checked_scan(rows)

    def _raw(self, sql: str, start: int, *, batch: int = 100_000) -> Iterator[list[Any]]:
        """Rows of ``sql`` (first column: idx) from ``start`` on, keyset-paginated, through the
        driver's cursor. All pages come from one read transaction; rows are never updated, so
        on PostgreSQL (a snapshot per statement) a later page can only add rows appended since.
        """
        with self._store.reading() as s:
            connection = s.connection()
            mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
            query = sql.format(mark, mark)
            dbapi_error = connection.dialect.loaded_dbapi.Error
            cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                after = start - 1
                while True:
                    cursor.execute(query, (after, batch))
                    rows = cursor.fetchall()
                    if not rows:
                        return
                    yield rows
                    after = rows[-1][0]
            except dbapi_error as e:
                raise StorageError(
                    f"reading the ledger failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
                ) from e
            finally:
                cursor.close()


def _all_hashes(rows: Sequence[Sequence[Any]], column: int) -> bool:
    """Whether every row's ``column`` is a leaf hash as an append writes it (the fast path)."""
    return all(type(h) is bytes and len(h) == _HASH_BYTES for h in (r[column] for r in rows))


def _checked_scan(rows: Sequence[tuple[int, Any, Any]]) -> Iterator[list[tuple[int, bytes, bytes]]]:
    """The rows up to the first altered one, then its :class:`EntryProblem`."""
    good: list[tuple[int, bytes, bytes]] = []
    try:
        for index, body, h in rows:
            good.append((index, _body(index, body), _leaf_hash(index, h)))
    except EntryProblem:
        if good:
            yield good
        raise
    yield good


def _stored(index: int, h: object, body: object, at: datetime) -> StoredEntry:
    return StoredEntry(index, _leaf_hash(index, h), _body(index, body), at)


def _binary(index: int, value: object, what: str) -> bytes:
    """``value`` if the driver read it as binary; otherwise the row was altered."""
    if isinstance(value, bytes | bytearray | memoryview):  # bytes on SQLite and psycopg; never text
        return bytes(value)
    kinds = {str: "text", int: "an integer", float: "a real number", type(None): "NULL"}
    kind = kinds.get(type(value), f"a {type(value).__name__}")
    raise _altered(index, f"its stored {what} is {kind}, not bytes")


def _body(index: int, value: object) -> bytes:
    return value if type(value) is bytes else _binary(index, value, "body")


def _leaf_hash(index: int, value: object) -> bytes:
    h = value if type(value) is bytes else _binary(index, value, "leaf hash")
    if len(h) != _HASH_BYTES:
        raise _altered(index, f"its stored leaf hash is {len(h)} byte{'' if len(h) == 1 else 's'} long, not 32")
    return h


def _altered(index: int, what: str) -> EntryProblem:
    return EntryProblem(f"ledger entry {index}: {what} (the store was altered)", index=index)


def _integer(value: object) -> int | None:
    return value if type(value) is int else None


def _parse_stored(value: str) -> tuple[int, str] | None:
    try:
        doc = json.loads(value)
        return int(doc["size"]), str(doc["note"])
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: the next signer replaces it


def _before_commit(session: Session) -> None:
    # Also fires when a savepoint is released: write only at the outermost commit.
    pending: _Pending | None = session.info.get(_PENDING)
    if pending is None or not pending.leaves or session.get_nested_transaction() is not None:
        return
    connection = session.connection()
    recorded_at = pending.clock().astimezone(UTC)
    insert_rows(
        connection,
        cast(Table, LedgerEntryRow.__table__),
        [
            {"idx": leaf.index, "leaf_hash": leaf.leaf_hash, "body": leaf.body, "recorded_at": recorded_at}
            for leaf in pending.leaves
        ],
    )
    insert_rows(
        connection,
        cast(Table, LedgerVisibilityRow.__table__),
        [{"party": p, "idx": leaf.index} for leaf in pending.leaves for p in leaf.parties],
    )


def _after_commit(session: Session) -> None:
    # Also fires when a savepoint is released: the leaves are durable only at the outermost commit.
    pending: _Pending | None = session.info.get(_PENDING)
    if pending is None or not pending.leaves or session.get_nested_transaction() is not None:
        return
    leaves = [(leaf.index, leaf.leaf_hash) for leaf in pending.leaves]
    pending.leaves.clear()
    try:
        pending.on_commit(leaves)
    except Exception:  # the rows are committed: raising here would tell the caller it failed
        log.exception("ledger: could not record committed leaves %d..%d in memory", leaves[0][0], leaves[-1][0])


def _after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    # Fires for the outermost rollback and for each savepoint rolled back: drop the leaves
    # inserted in the rolled-back transaction or in any savepoint nested inside it.
    pending: _Pending | None = session.info.get(_PENDING)
    if pending is None or not pending.leaves:
        return
    pending.leaves[:] = [leaf for leaf in pending.leaves if not _inside(leaf.transaction, previous_transaction)]


def _inside(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


def _key_hash(line: str) -> bytes:
    """The key hash a signed-note signature line names (``— name base64(key hash || …)``,
    C2SP signed-note): its first 4 bytes."""
    return base64.b64decode(line.rsplit(" ", 1)[-1] + "==")[:4]
