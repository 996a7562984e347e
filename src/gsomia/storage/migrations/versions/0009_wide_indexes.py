"""64-bit ledger indexes, ids and inbox sequence numbers on PostgreSQL.

The ledger's own tables number entries in BIGINT, but the exchange's tables recorded the ledger
index of each row, the decisions' and incident updates' ids and the inbox's sequence numbers in
PostgreSQL's INTEGER, which stops at 2**31 - 1: at a thousand reports a second to three
recipients the inbox would reach it within weeks, and every submission would then fail. Here they
become BIGINT, and the sequences that number them too (a SERIAL column's sequence is ``AS
integer`` whatever its column's type). SQLite's INTEGER is 64 bits already: nothing changes there.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

WIDENED = {
    "witnesses": ("leaf_index",),
    "exchange_reports": ("leaf_index",),
    "exchange_decisions": ("id", "leaf_index"),
    "deliveries": ("leaf_index", "ack_leaf_index"),
    "consents": ("leaf_index", "resolution_leaf_index"),
    "standing_consents": ("leaf_index",),
    "incidents": ("leaf_index",),
    "incident_updates": ("id", "leaf_index"),
    "inbox_events": ("seq",),
}
"""The columns made 64-bit, by table."""

NUMBERED = (("exchange_decisions", "id"), ("incident_updates", "id"), ("inbox_events", "seq"))
"""The columns a sequence numbers."""


def _change(kind: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table, columns in WIDENED.items():
        for column in columns:
            # One statement per column, so each rewrite names what it changes.
            op.execute(sa.text(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE {kind}'))
    for table, column in NUMBERED:
        name = bind.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table, "c": column}).scalar()
        if name is not None:
            op.execute(sa.text(f"ALTER SEQUENCE {name} AS {kind}"))


def upgrade() -> None:
    _change("bigint")


def downgrade() -> None:
    _change("integer")
