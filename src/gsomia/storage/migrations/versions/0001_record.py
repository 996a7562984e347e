"""The record: scenario definitions, agreement events, reports and provisions.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gsomia.storage.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scenario",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("definitions", sa.JSON(), nullable=False),
        sa.Column("loaded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_scenario"),
        sa.UniqueConstraint("name", name="uq_scenario_name"),
    )
    op.create_table(
        "agreement_events",
        sa.Column("id", sa.String(96), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("agreement", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("by", sa.String(16), nullable=True),
        sa.Column("effective", UTCDateTime(), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agreement_events"),
    )
    op.create_index("ix_agreement_events_agreement", "agreement_events", ["agreement"])
    op.create_table(
        "record_reports",
        sa.Column("id", sa.String(96), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_record_reports"),
    )
    op.create_table(
        "provisions",
        sa.Column("id", sa.String(96), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("agreement", sa.String(64), nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_provisions"),
    )
    op.create_index("ix_provisions_agreement", "provisions", ["agreement"])


def downgrade() -> None:
    op.drop_table("provisions")
    op.drop_table("record_reports")
    op.drop_index("ix_agreement_events_agreement", "agreement_events")
    op.drop_table("agreement_events")
    op.drop_table("scenario")
