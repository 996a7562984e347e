"""Witnesses: each party's cosigning key, and the cosignatures its node made of checkpoints.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gsomia.storage.schema import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_cosignatures",
        sa.Column("size", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("witness", sa.String(200), nullable=False),
        sa.Column("timestamp", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("size", "witness", name="pk_ledger_cosignatures"),
    )
    op.create_table(
        "witnesses",
        sa.Column("party", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("registered_at", UTCDateTime(), nullable=False),
        sa.Column("leaf_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("party", name="pk_witnesses"),
        sa.UniqueConstraint("name", name="uq_witnesses_name"),
    )


def downgrade() -> None:
    op.drop_table("witnesses")
    op.drop_table("ledger_cosignatures")
