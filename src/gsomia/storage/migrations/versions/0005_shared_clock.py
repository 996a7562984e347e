"""The exercise clock lives in the store, so every process over one database runs the same one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("exchange_state", sa.Column("clock_offset_us", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("exchange_state", "clock_offset_us")
