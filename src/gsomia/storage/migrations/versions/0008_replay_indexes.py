"""Covering indexes for replaying the exchange's traffic under a what-if.

The replay reads every report's request (originator, topic, level, caveats) and every
decision's recipient, decision, outcome and instant, in the same order on both tables, and
joins them as it goes (:mod:`gsomia.storage.traffic`). Reading those few columns from an index
instead of the rows (which hold the payload ciphertext, the signed report and the route's JSON)
makes a million-report replay several times faster. PostgreSQL cannot put ``json`` in an index
key, so there the columns are included, not keyed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_exchange_reports_replay",
            "exchange_reports",
            ["id"],
            postgresql_include=["originator", "topic", "level", "caveats"],
        )
        op.create_index(
            "ix_exchange_decisions_replay",
            "exchange_decisions",
            ["report_id"],
            postgresql_include=["recipient", "decision", "outcome", "decided_at"],
        )
        return
    op.create_index("ix_exchange_reports_replay", "exchange_reports", ["id", "originator", "topic", "level", "caveats"])
    op.create_index(
        "ix_exchange_decisions_replay",
        "exchange_decisions",
        ["report_id", "recipient", "decision", "outcome", "decided_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_exchange_decisions_replay", table_name="exchange_decisions")
    op.drop_index("ix_exchange_reports_replay", table_name="exchange_reports")
