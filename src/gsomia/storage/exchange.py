"""Exchange tables and the queries over them: principals, public keys, reports, decisions,
deliveries, consents, incidents and the per-party inbox.

Writes take the caller's session, so a state change and its ledger entry commit in the same
transaction (docs/design.md §4). Rows that are written in bulk (a submission writes a report, its
decisions, deliveries and inbox events at once) go through SQLAlchemy Core ``executemany``;
reads return mapped rows. Payloads are stored only as ciphertext, content keys only sealed
under the exchange's key-encryption key, and party keys only as public keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar, NamedTuple, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from gsomia.domain.states import ConsentState
from gsomia.storage.bulk import insert_rows
from gsomia.storage.ledger import LedgerTable
from gsomia.storage.schema import Base, UTCDateTime
from gsomia.storage.store import Store

__all__ = [
    "ConsentRow",
    "DecisionRow",
    "DeliveryRow",
    "ExchangeRepo",
    "InboxEventRow",
    "IncidentRow",
    "IncidentUpdateRow",
    "NewConsent",
    "NewDecision",
    "NewDelivery",
    "NewInboxItem",
    "NewIncident",
    "NewIncidentUpdate",
    "NewPartyKey",
    "NewPrincipal",
    "NewReport",
    "NewRow",
    "NewStandingConsent",
    "PartyKeyRow",
    "PrincipalRow",
    "StandingConsentRow",
    "SubmittedReportRow",
    "Tx",
    "WitnessKeyRow",
    "WitnessRow",
]

_INDEX = BigInteger().with_variant(Integer(), "sqlite")
"""A ledger index, an id or a sequence number that grows with the traffic: 64 bits everywhere
(SQLite's INTEGER is; PostgreSQL's INTEGER would stop at 2**31 - 1, migration 0009)."""

_R = TypeVar("_R", bound=Base)

Tx = Session
"""The transaction handle services pass through (they never call it themselves)."""

_WRITER_LOCK = 0x6750_6D78  # PostgreSQL advisory lock serialising exchange writers ("gPmx")


class PrincipalRow(Base):
    """A party, operator or auditor account; only the SHA-256 of its token is stored."""

    __tablename__ = "principals"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    party: Mapped[str | None] = mapped_column(String(16), nullable=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PartyKeyRow(Base):
    """A party's registered public keys (never a private key); the current set has no ``retired_at``."""

    __tablename__ = "party_keys"
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    party: Mapped[str] = mapped_column(String(16), index=True)
    profile: Mapped[str] = mapped_column(String(16))
    signing_key: Mapped[str] = mapped_column(Text)
    encryption_key: Mapped[str] = mapped_column(Text)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    registered_by: Mapped[str] = mapped_column(String(40))
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WitnessRow(Base):
    """A party's witness: the name and Ed25519 public key its node cosigns checkpoints with
    (one current witness per party; registering another replaces it)."""

    __tablename__ = "witnesses"
    party: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    public_key: Mapped[str] = mapped_column(Text)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    leaf_index: Mapped[int] = mapped_column(_INDEX)


class WitnessKeyRow(Base):
    """A witness key as it was first registered: its name, key ID and the party that registered
    it; never removed when the party's witness changes. A name stays with the party that
    registered it first, and a cosignature kept under a name is known to be that party's."""

    __tablename__ = "witness_keys"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(8), primary_key=True)
    party: Mapped[str] = mapped_column(String(16))
    leaf_index: Mapped[int] = mapped_column(_INDEX)


class SubmittedReportRow(Base):
    """A submitted report: signed metadata, payload ciphertext and its sealed content key."""

    __tablename__ = "exchange_reports"
    # The originator and its own id, "JPN/R-1": report ids are the originator's, never global.
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    originator: Mapped[str] = mapped_column(String(16), index=True)
    topic: Mapped[str] = mapped_column(String(128))
    level: Mapped[str] = mapped_column(String(64))
    caveats: Mapped[dict[str, Any]] = mapped_column(JSON)
    created: Mapped[str] = mapped_column(String(64))
    recipients: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    content_type: Mapped[str] = mapped_column(String(128))
    digest: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(String(64))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_key: Mapped[bytes] = mapped_column(LargeBinary)
    payload_size: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    leaf_index: Mapped[int] = mapped_column(_INDEX)
    # The report object exactly as signed, without its payload (RFC 8785 text), and the salt of
    # its ledger commitment (served only to the originator and the recipients).
    signed_report: Mapped[str] = mapped_column(Text)
    salt: Mapped[bytes] = mapped_column(LargeBinary)


class DecisionRow(Base):
    """The release decision for one recipient of a report, with its route and reasons."""

    __tablename__ = "exchange_decisions"
    __table_args__ = (UniqueConstraint("report_id", "recipient", name="uq_exchange_decisions_report_recipient"),)
    id: Mapped[int] = mapped_column(_INDEX, primary_key=True, autoincrement=True)
    report_id: Mapped[str] = mapped_column(String(128), ForeignKey("exchange_reports.id"))
    recipient: Mapped[str] = mapped_column(String(16))
    decision: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(32))
    route: Mapped[dict[str, Any]] = mapped_column(JSON)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    leaf_index: Mapped[int] = mapped_column(_INDEX)


class DeliveryRow(Base):
    """A released report on its way to one party: the content key wrapped to that party."""

    __tablename__ = "deliveries"
    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    report_id: Mapped[str] = mapped_column(String(128), ForeignKey("exchange_reports.id"), index=True)
    recipient: Mapped[str] = mapped_column(String(16), index=True)
    originator: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))
    via: Mapped[str | None] = mapped_column(String(16), nullable=True)
    consent_id: Mapped[str | None] = mapped_column(String(48), nullable=True)
    marking: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    profile: Mapped[str] = mapped_column(String(16))
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    leaf_index: Mapped[int] = mapped_column(_INDEX)
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ack_leaf_index: Mapped[int | None] = mapped_column(_INDEX, nullable=True)


class ConsentRow(Base):
    """A request for the originator's consent to a relay, and its answer."""

    __tablename__ = "consents"
    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    report_id: Mapped[str] = mapped_column(String(128), ForeignKey("exchange_reports.id"), index=True)
    originator: Mapped[str] = mapped_column(String(16), index=True)
    recipient: Mapped[str] = mapped_column(String(16))
    hub: Mapped[str] = mapped_column(String(16))
    arrangement: Mapped[str] = mapped_column(String(64))
    per_report: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(16), index=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(48), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    standing_id: Mapped[str | None] = mapped_column(String(48), nullable=True)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    leaf_index: Mapped[int] = mapped_column(_INDEX)
    resolution_leaf_index: Mapped[int | None] = mapped_column(_INDEX, nullable=True)
    reason_salt: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class StandingConsentRow(Base):
    """An originator's standing consent: relays of a topic prefix to a recipient, for a period."""

    __tablename__ = "standing_consents"
    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    originator: Mapped[str] = mapped_column(String(16), index=True)
    topic_prefix: Mapped[str] = mapped_column(String(128))
    recipient: Mapped[str] = mapped_column(String(16))
    hub: Mapped[str | None] = mapped_column(String(16), nullable=True)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    leaf_index: Mapped[int] = mapped_column(_INDEX)


class IncidentRow(Base):
    """A loss or compromise report on a delivery (Japan–Korea GSOMIA Art. 17)."""

    __tablename__ = "incidents"
    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(48), ForeignKey("deliveries.id"), index=True)
    report_id: Mapped[str] = mapped_column(String(128))
    reporter: Mapped[str] = mapped_column(String(16))
    originator: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    leaf_index: Mapped[int] = mapped_column(_INDEX)
    salt: Mapped[bytes] = mapped_column(LargeBinary)


class IncidentUpdateRow(Base):
    """An investigation result or measure appended to an incident."""

    __tablename__ = "incident_updates"
    id: Mapped[int] = mapped_column(_INDEX, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(String(48), ForeignKey("incidents.id"), index=True)
    by: Mapped[str] = mapped_column(String(16))
    result: Mapped[str] = mapped_column(Text, default="")
    measures: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    leaf_index: Mapped[int] = mapped_column(_INDEX)
    salt: Mapped[bytes] = mapped_column(LargeBinary)


class InboxEventRow(Base):
    """One item in a party's inbox (a delivery, consent request or incident notice), in commit order."""

    __tablename__ = "inbox_events"
    __table_args__ = (Index("ix_inbox_events_party_seq", "party", "seq"),)
    seq: Mapped[int] = mapped_column(_INDEX, primary_key=True, autoincrement=True)
    party: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(128))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- typed new rows --------------------------------------------------------------------------
#
# What services write: one frozen value per row, checked by mypy, turned into the plain dict
# that a Core ``executemany`` takes (no ORM unit of work for bulk rows). A unit test checks
# that each one names exactly its table's columns.


def _columns(cls: type) -> tuple[str, ...]:
    names: tuple[str, ...] = cls.__dict__.get("_COLUMNS", ())
    if not names:
        names = tuple(f.name for f in fields(cls))
        type.__setattr__(cls, "_COLUMNS", names)
    return names


@dataclass(frozen=True, slots=True, kw_only=True)
class _NewRow:
    TABLE: ClassVar[str]

    def as_row(self) -> dict[str, Any]:
        """The row as column values."""
        return {name: getattr(self, name) for name in _columns(type(self))}


@dataclass(frozen=True, slots=True, kw_only=True)
class NewReport(_NewRow):
    """A submitted report (see :class:`SubmittedReportRow`)."""

    TABLE: ClassVar[str] = "reports"
    id: str
    originator: str
    topic: str
    level: str
    caveats: dict[str, Any]
    created: str
    recipients: list[str] | None
    content_type: str
    digest: str
    signature: str
    key: str
    payload: bytes = field(repr=False)
    sealed_key: bytes = field(repr=False)
    payload_size: int
    received_at: datetime
    leaf_index: int
    signed_report: str
    salt: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewDecision(_NewRow):
    """A release decision for one recipient (see :class:`DecisionRow`)."""

    TABLE: ClassVar[str] = "decisions"
    report_id: str
    recipient: str
    decision: str
    outcome: str
    route: dict[str, Any]
    decided_at: datetime
    leaf_index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NewDelivery(_NewRow):
    """A delivery (see :class:`DeliveryRow`)."""

    TABLE: ClassVar[str] = "deliveries"
    id: str
    report_id: str
    recipient: str
    originator: str
    purpose: str
    via: str | None
    consent_id: str | None
    marking: dict[str, Any]
    state: str
    profile: str
    key_fingerprint: str
    wrapped_key: bytes = field(repr=False)
    created_at: datetime
    leaf_index: int
    fetched_at: datetime | None = None
    acked_at: datetime | None = None
    ack_leaf_index: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NewConsent(_NewRow):
    """A consent request (see :class:`ConsentRow`)."""

    TABLE: ClassVar[str] = "consents"
    id: str
    report_id: str
    originator: str
    recipient: str
    hub: str
    arrangement: str
    per_report: bool
    state: str
    requested_at: datetime
    expires_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    reason: str
    standing_id: str | None
    outcome: dict[str, Any] | None
    leaf_index: int
    resolution_leaf_index: int | None
    reason_salt: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewStandingConsent(_NewRow):
    """A standing consent (see :class:`StandingConsentRow`)."""

    TABLE: ClassVar[str] = "standing_consents"
    id: str
    originator: str
    topic_prefix: str
    recipient: str
    hub: str | None
    valid_from: datetime
    valid_until: datetime
    note: str
    created_at: datetime
    revoked_at: datetime | None
    leaf_index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NewIncident(_NewRow):
    """A loss or compromise report (see :class:`IncidentRow`)."""

    TABLE: ClassVar[str] = "incidents"
    id: str
    delivery_id: str
    report_id: str
    reporter: str
    originator: str
    kind: str
    description: str
    created_at: datetime
    leaf_index: int
    salt: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewIncidentUpdate(_NewRow):
    """An update of an incident (see :class:`IncidentUpdateRow`)."""

    TABLE: ClassVar[str] = "incident_updates"
    incident_id: str
    by: str
    result: str
    measures: str
    created_at: datetime
    leaf_index: int
    salt: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewInboxItem(_NewRow):
    """An item of a party's inbox (see :class:`InboxEventRow`)."""

    TABLE: ClassVar[str] = "inbox_events"
    party: str
    kind: str
    ref: str
    body: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class NewPrincipal(_NewRow):
    """A principal (see :class:`PrincipalRow`)."""

    TABLE: ClassVar[str] = "principals"
    id: str
    name: str
    role: str
    party: str | None
    token_hash: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NewPartyKey(_NewRow):
    """A party's registered public keys (see :class:`PartyKeyRow`)."""

    TABLE: ClassVar[str] = "party_keys"
    fingerprint: str
    party: str
    profile: str
    signing_key: str
    encryption_key: str
    registered_at: datetime
    registered_by: str
    retired_at: datetime | None = None


NewRow = (
    NewReport
    | NewDecision
    | NewDelivery
    | NewConsent
    | NewStandingConsent
    | NewIncident
    | NewIncidentUpdate
    | NewInboxItem
    | NewPrincipal
    | NewPartyKey
)
"""Any row a service adds."""

_PARENTS_FIRST = ("reports", "decisions", "consents", "deliveries", "incidents", "incident_updates")


_TABLES: dict[str, Any] = {
    "reports": SubmittedReportRow.__table__,
    "decisions": DecisionRow.__table__,
    "deliveries": DeliveryRow.__table__,
    "consents": ConsentRow.__table__,
    "standing_consents": StandingConsentRow.__table__,
    "incidents": IncidentRow.__table__,
    "incident_updates": IncidentUpdateRow.__table__,
    "inbox_events": InboxEventRow.__table__,
    "principals": PrincipalRow.__table__,
    "party_keys": PartyKeyRow.__table__,
}


class InboxItem(NamedTuple):
    """One item of a party's inbox as :meth:`ExchangeRepo.inbox` reads it."""

    seq: int
    kind: str
    ref: str
    body: dict[str, Any]


# Statements the event stream and the inbox run on every read, built once.
_INBOX = (
    select(InboxEventRow.seq, InboxEventRow.kind, InboxEventRow.ref, InboxEventRow.body)
    .where(InboxEventRow.party == bindparam("party"), InboxEventRow.seq > bindparam("after"))
    .order_by(InboxEventRow.seq)
    .limit(bindparam("limit"))
)
_WITH_REPORTS = (
    select(DeliveryRow, SubmittedReportRow)
    .join(SubmittedReportRow, SubmittedReportRow.id == DeliveryRow.report_id)
    .where(DeliveryRow.id.in_(bindparam("ids", expanding=True)))
)
_PRINCIPAL_REVOKED = select(PrincipalRow.revoked_at).where(PrincipalRow.id == bindparam("id"))


class ExchangeRepo:
    """Queries over the exchange tables. Stateless: every method takes the session to use."""

    # --- writing -------------------------------------------------------------------------

    @staticmethod
    def latest_sealed(store: Store) -> tuple[str, bytes, int] | None:
        """One stored report's key (``JPN/R-1``, the first by key: read through the primary key's
        index, never a scan), sealed content key and sealing version (1 before reports had
        salts), or None if none is stored.

        Raises:
            StorageError: on any database error.
        """
        r = SubmittedReportRow.__table__
        query = select(r.c.id, r.c.sealed_key, r.c.salt).order_by(r.c.id).limit(1)
        with store.reading() as s:
            row = s.execute(query).first()
        return None if row is None else (row.id, bytes(row.sealed_key), 2 if row.salt else 1)

    @staticmethod
    def serialize_writers(s: Tx) -> None:
        """Make concurrent exchange writers (several API workers) take turns.

        SQLite already serialises them (``BEGIN IMMEDIATE``); on PostgreSQL an advisory
        transaction lock keeps inbox sequence numbers in commit order, so a reader that
        resumes after sequence N never misses an item committed later with a smaller one.
        The ledger's append lock is taken in the same round trip, after it: nearly every
        writer transaction appends, and each round trip inside the lock delays every writer.
        """
        LedgerTable.lock_appends(s, after=(_WRITER_LOCK,))

    @staticmethod
    def add(s: Tx, rows: Iterable[NewRow]) -> None:
        """Insert ``rows``, one bulk insert per table (``COPY`` on PostgreSQL, else one
        ``executemany``; see :mod:`gsomia.storage.bulk`), parents before children.

        Core on the session's connection: no ORM unit of work for bulk rows.
        """
        by_table: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_table.setdefault(row.TABLE, []).append(row.as_row())
        if not by_table:
            return
        conn = s.connection()
        for table in (*_PARENTS_FIRST, *(t for t in by_table if t not in _PARENTS_FIRST)):
            batch = by_table.get(table)
            if batch:
                insert_rows(conn, _TABLES[table], batch)

    @staticmethod
    def update(s: Tx, table: str, key: Mapping[str, Any], values: Mapping[str, Any]) -> int:
        """Set ``values`` on the rows of ``table`` matching every ``key`` column; the row count.

        Raises:
            KeyError: for an unknown table name.
        """
        t = _TABLES[table]
        stmt = update(t).where(*(t.c[k] == v for k, v in key.items())).values(**values)
        result = s.execute(stmt)
        return int(getattr(result, "rowcount", 0) or 0)

    @staticmethod
    def all(s: Tx, row_type: type[_R]) -> list[_R]:
        """Every row of an exchange table, in primary-key order (for audits)."""
        keys = list(row_type.__mapper__.primary_key)
        return list(s.scalars(select(row_type).order_by(*keys)))

    # --- principals and keys -------------------------------------------------------------

    @staticmethod
    def principal_by_token_hash(s: Tx, token_hash: str) -> PrincipalRow | None:
        """The principal holding the token with this SHA-256 (revoked ones included)."""
        return s.scalars(select(PrincipalRow).where(PrincipalRow.token_hash == token_hash)).first()

    @staticmethod
    def principal_active(s: Tx, principal_id: str) -> bool:
        """Whether the principal exists and its token is not revoked."""
        revoked = s.execute(_PRINCIPAL_REVOKED, {"id": principal_id}).one_or_none()
        return revoked is not None and revoked[0] is None

    @staticmethod
    def principals(s: Tx) -> list[PrincipalRow]:
        """Every principal, oldest first."""
        return list(s.scalars(select(PrincipalRow).order_by(PrincipalRow.created_at, PrincipalRow.id)).all())

    @staticmethod
    def principal(s: Tx, principal_id: str) -> PrincipalRow | None:
        """One principal by id."""
        return s.get(PrincipalRow, principal_id)

    @staticmethod
    def current_keys(s: Tx, party: str | None = None) -> list[PartyKeyRow]:
        """Every party's current public keys (or one party's)."""
        q = select(PartyKeyRow).where(PartyKeyRow.retired_at.is_(None))
        if party is not None:
            q = q.where(PartyKeyRow.party == party)
        return list(s.scalars(q).all())

    @staticmethod
    def current_fingerprints(s: Tx, parties: Iterable[str]) -> dict[str, str]:
        """The fingerprint of the current keys of each of ``parties`` that has some."""
        q = select(PartyKeyRow.party, PartyKeyRow.fingerprint).where(
            PartyKeyRow.retired_at.is_(None), PartyKeyRow.party.in_(parties)
        )
        return {row[0]: row[1] for row in s.execute(q)}

    @staticmethod
    def registered_since(s: Tx, party: str, since: datetime) -> list[datetime]:
        """When the key sets ``party`` registered itself after ``since`` were, oldest first
        (those an operator registered for it are not among them)."""
        operators = select(PrincipalRow.id).where(PrincipalRow.role == "operator")
        q = (
            select(PartyKeyRow.registered_at)
            .where(
                PartyKeyRow.party == party,
                PartyKeyRow.registered_at > since,
                PartyKeyRow.registered_by.not_in(operators),
            )
            .order_by(PartyKeyRow.registered_at)
        )
        return list(s.scalars(q))

    @staticmethod
    def all_keys(s: Tx) -> list[PartyKeyRow]:
        """Every registered key set, current or retired, oldest first."""
        return list(s.scalars(select(PartyKeyRow).order_by(PartyKeyRow.registered_at, PartyKeyRow.fingerprint)))

    @staticmethod
    def keys_of(s: Tx, party: str) -> list[PartyKeyRow]:
        """Every key registration of ``party`` (current and retired), oldest first."""
        q = select(PartyKeyRow).where(PartyKeyRow.party == party).order_by(PartyKeyRow.registered_at)
        return list(s.scalars(q))

    @staticmethod
    def key(s: Tx, fingerprint: str) -> PartyKeyRow | None:
        """Registered public keys by fingerprint (current or retired)."""
        return s.get(PartyKeyRow, fingerprint)

    # --- witnesses -------------------------------------------------------------------------

    @staticmethod
    def witness(s: Tx, party: str) -> WitnessRow | None:
        """``party``'s current witness."""
        return s.get(WitnessRow, party)

    @staticmethod
    def witness_named(s: Tx, name: str) -> WitnessRow | None:
        """The witness of that name, whichever party's."""
        return s.scalars(select(WitnessRow).where(WitnessRow.name == name)).first()

    @staticmethod
    def witnesses(s: Tx) -> list[WitnessRow]:
        """Every party's current witness, by party."""
        return list(s.scalars(select(WitnessRow).order_by(WitnessRow.party)))

    @staticmethod
    def witness_name_parties(s: Tx, name: str) -> list[str]:
        """Every party that ever registered a witness key of that name, by party."""
        return list(s.scalars(select(WitnessKeyRow.party).where(WitnessKeyRow.name == name).distinct()))

    @staticmethod
    def witness_key_party(s: Tx, name: str, key_id: str) -> str | None:
        """The party that registered the witness key of that name and key ID (hex), or None."""
        row = s.get(WitnessKeyRow, (name, key_id))
        return None if row is None else row.party

    @staticmethod
    def put_witness(
        s: Tx, *, party: str, name: str, key_id: str, public_key: str, at: datetime, leaf_index: int
    ) -> None:
        """Make ``name`` ``party``'s witness (replacing the one it had), and remember that
        ``party`` registered that key (name and key ID, hex)."""
        row = s.get(WitnessRow, party)
        if row is None:
            s.add(WitnessRow(party=party, name=name, public_key=public_key, registered_at=at, leaf_index=leaf_index))
        else:
            row.name, row.public_key, row.registered_at, row.leaf_index = name, public_key, at, leaf_index
        if s.get(WitnessKeyRow, (name, key_id)) is None:
            s.add(WitnessKeyRow(name=name, key_id=key_id, party=party, leaf_index=leaf_index))
        s.flush()

    # --- reports, decisions, deliveries --------------------------------------------------

    @staticmethod
    def reports(s: Tx, ids: Iterable[str]) -> dict[str, SubmittedReportRow]:
        """The stored reports among ``ids``, by id."""
        wanted = list(set(ids))
        if not wanted:
            return {}
        rows = s.scalars(select(SubmittedReportRow).where(SubmittedReportRow.id.in_(wanted))).all()
        return {r.id: r for r in rows}

    @staticmethod
    def report_digests(s: Tx, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """``id -> (digest, originator)`` of the stored reports among ``ids`` (one query)."""
        wanted = list(set(ids))
        if not wanted:
            return {}
        t = SubmittedReportRow.__table__
        q = select(t.c.id, t.c.digest, t.c.originator).where(t.c.id.in_(wanted))
        return {str(i): (str(d), str(o)) for i, d, o in s.connection().execute(q).all()}

    @staticmethod
    def report(s: Tx, report_id: str) -> SubmittedReportRow | None:
        """One stored report."""
        return s.get(SubmittedReportRow, report_id)

    @staticmethod
    def decisions(s: Tx, report_id: str) -> list[DecisionRow]:
        """The decisions on a report, in the order they were made."""
        return list(s.scalars(select(DecisionRow).where(DecisionRow.report_id == report_id).order_by(DecisionRow.id)))

    @staticmethod
    def deliveries_of_report(s: Tx, report_id: str) -> list[DeliveryRow]:
        """Every delivery of a report, oldest first."""
        q = select(DeliveryRow).where(DeliveryRow.report_id == report_id).order_by(DeliveryRow.leaf_index)
        return list(s.scalars(q))

    @staticmethod
    def delivery(s: Tx, delivery_id: str) -> DeliveryRow | None:
        """One delivery."""
        return s.get(DeliveryRow, delivery_id)

    @staticmethod
    def deliveries_with_reports(s: Tx, ids: Iterable[str]) -> dict[str, tuple[DeliveryRow, SubmittedReportRow]]:
        """The deliveries among ``ids`` that exist, each with its report, by id (one query)."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        rows = s.execute(_WITH_REPORTS, {"ids": wanted}).all()
        return {d.id: (d, r) for d, r in rows}

    @staticmethod
    def delivery_states(s: Tx, ids: Iterable[str]) -> dict[str, str]:
        """Current state of each delivery among ``ids``."""
        wanted = list(set(ids))
        if not wanted:
            return {}
        return dict(s.execute(select(DeliveryRow.id, DeliveryRow.state).where(DeliveryRow.id.in_(wanted))).all())

    # --- consents ------------------------------------------------------------------------

    @staticmethod
    def consent(s: Tx, consent_id: str) -> ConsentRow | None:
        """One consent request."""
        return s.get(ConsentRow, consent_id)

    @staticmethod
    def consents_of_report(s: Tx, report_id: str) -> list[ConsentRow]:
        """Consent requests raised by a report."""
        return list(s.scalars(select(ConsentRow).where(ConsentRow.report_id == report_id)))

    @staticmethod
    def consents(s: Tx, originator: str, state: str | None) -> list[ConsentRow]:
        """An originator's consent requests (optionally only those in ``state``), oldest first."""
        q = select(ConsentRow).where(ConsentRow.originator == originator)
        if state is not None:
            q = q.where(ConsentRow.state == state)
        return list(s.scalars(q.order_by(ConsentRow.requested_at, ConsentRow.id)))

    @staticmethod
    def due_consents(s: Tx, now: datetime, originator: str | None = None) -> list[ConsentRow]:
        """Pending consent requests whose time ran out at ``now``."""
        q = select(ConsentRow).where(ConsentRow.state == ConsentState.PENDING, ConsentRow.expires_at <= now)
        if originator is not None:
            q = q.where(ConsentRow.originator == originator)
        return list(s.scalars(q.order_by(ConsentRow.expires_at)))

    @staticmethod
    def standing_consents(s: Tx, originators: Iterable[str], *, active_at: datetime | None) -> list[StandingConsentRow]:
        """Standing consents of ``originators`` (only those valid at ``active_at`` if given)."""
        q = select(StandingConsentRow).where(StandingConsentRow.originator.in_(list(set(originators))))
        if active_at is not None:
            q = q.where(
                StandingConsentRow.revoked_at.is_(None),
                StandingConsentRow.valid_from <= active_at,
                StandingConsentRow.valid_until > active_at,
            )
        return list(s.scalars(q.order_by(StandingConsentRow.created_at, StandingConsentRow.id)))

    @staticmethod
    def standing_consent(s: Tx, standing_id: str) -> StandingConsentRow | None:
        """One standing consent."""
        return s.get(StandingConsentRow, standing_id)

    # --- incidents -----------------------------------------------------------------------

    @staticmethod
    def incident(s: Tx, incident_id: str) -> IncidentRow | None:
        """One incident."""
        return s.get(IncidentRow, incident_id)

    @staticmethod
    def incident_updates(s: Tx, incident_id: str) -> list[IncidentUpdateRow]:
        """An incident's updates, oldest first."""
        q = select(IncidentUpdateRow).where(IncidentUpdateRow.incident_id == incident_id)
        return list(s.scalars(q.order_by(IncidentUpdateRow.id)))

    # --- inbox ---------------------------------------------------------------------------

    @staticmethod
    def inbox(s: Tx, party: str, after: int, limit: int) -> list[InboxItem]:
        """Up to ``limit`` of ``party``'s inbox items after sequence number ``after`` (rows, not
        ORM objects: an event stream reads them on every wake)."""
        rows = s.execute(_INBOX, {"party": party, "after": after, "limit": limit})
        return [InboxItem(r.seq, r.kind, r.ref, r.body) for r in rows]

    @staticmethod
    def inbox_head(s: Tx, party: str) -> int:
        """The sequence number of ``party``'s newest inbox item (0 if it has none)."""
        return int(s.scalar(select(func.max(InboxEventRow.seq)).where(InboxEventRow.party == party)) or 0)

    @staticmethod
    def last_inbox_seq(s: Tx) -> int:
        """The highest inbox sequence number (0 if empty): a cheap change token."""
        return int(s.scalar(select(func.max(InboxEventRow.seq))) or 0)

    # --- statistics ----------------------------------------------------------------------

    @staticmethod
    def counts(s: Tx) -> dict[str, Any]:
        """Counts for auditors: reports, decisions by outcome, deliveries by state, consents
        by state, incidents; no payload, key or report content."""

        def grouped(col: Any) -> dict[str, int]:
            return {str(k): int(v) for k, v in s.execute(select(col, func.count()).group_by(col)).all()}

        pairs = s.execute(
            select(DeliveryRow.originator, DeliveryRow.recipient, func.count()).group_by(
                DeliveryRow.originator, DeliveryRow.recipient
            )
        ).all()
        return {
            "reports": int(s.scalar(select(func.count()).select_from(SubmittedReportRow)) or 0),
            "decisions": grouped(DecisionRow.outcome),
            "deliveries": grouped(DeliveryRow.state),
            "consents": grouped(ConsentRow.state),
            "incidents": int(s.scalar(select(func.count()).select_from(IncidentRow)) or 0),
            "pairs": [{"originator": o, "recipient": r, "deliveries": int(n)} for o, r, n in pairs],
        }
