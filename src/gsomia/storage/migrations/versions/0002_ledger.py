"""The ledger: one row per Merkle leaf (RFC 9162 §2.1.1), in index order.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gsomia.storage.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        # INTEGER PRIMARY KEY on SQLite is the rowid itself (no second b-tree); BIGINT elsewhere.
        sa.Column("idx", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, autoincrement=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("idx", name="pk_ledger_entries"),
    )


def downgrade() -> None:
    op.drop_table("ledger_entries")
