"""Tables. Schema changes go through Alembic migrations in ``storage/migrations``.

Definitions that rarely change (scenario header, topics, parties with their ladders,
agreements with their tables) are kept as one canonical JSON document; what happens over
time (agreement events, reports, provisions) lives in rows, so an operator can record an
event without rewriting the scenario.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite has no zone-aware type)."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("refusing to store a naive datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (for migrations)."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: UTCDateTime}


class ScenarioRow(Base):
    """The one scenario this database holds: its definitions and digest."""

    __tablename__ = "scenario"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(Text, default="")
    digest: Mapped[str] = mapped_column(String(64))
    definitions: Mapped[dict[str, Any]] = mapped_column(JSON)
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EventRow(Base):
    """An agreement event, from the scenario or recorded by an operator."""

    __tablename__ = "agreement_events"
    id: Mapped[str] = mapped_column(String(96), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    agreement: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    effective: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(Text, default="")
    origin: Mapped[str] = mapped_column(String(16), default="scenario")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReportRow(Base):
    """A report of the scenario's record (past reports replayed by what-ifs)."""

    __tablename__ = "record_reports"
    id: Mapped[str] = mapped_column(String(96), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    doc: Mapped[dict[str, Any]] = mapped_column(JSON)


class ProvisionRow(Base):
    """Information provided under an agreement (for exchange statistics)."""

    __tablename__ = "provisions"
    id: Mapped[str] = mapped_column(String(96), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    agreement: Mapped[str] = mapped_column(String(64), index=True)
    doc: Mapped[dict[str, Any]] = mapped_column(JSON)


class StateRow(Base):
    """The one row of versions every process checks inside its write transaction.

    Each counter moves, in the same transaction, with what it stands for: ``record`` with the
    stored record (a scenario load, an agreement event), ``keys`` with the parties' public
    keys, ``principals`` with tokens (a revocation). ``last_commit_at`` is the latest instant
    an exchange write was stamped with: the next one never precedes it, so instants run in
    commit order whatever the clocks of several processes say.
    """

    __tablename__ = "exchange_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_version: Mapped[int] = mapped_column(Integer, default=0)
    keys_version: Mapped[int] = mapped_column(Integer, default=0)
    principals_version: Mapped[int] = mapped_column(Integer, default=0)
    last_commit_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # exercise mode: the exercise clock's offset from the system clock (microseconds), shared by
    # every process over this database; moved forward only
    clock_offset_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
