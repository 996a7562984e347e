"""Deliveries stored before the marking had one JSON shape get it: ``{"originator",
"originator_level", "common_level", "level", "banner"}`` becomes ``{"originator",
"originator_level", "recipient", "recipient_level", "common_level", "banner"}`` (the level is
the recipient's, and the recipient is the delivery's). Their ledger entries stay as they are
(the log is append only); a verifier of such a delivery compares everything but the marking.

The recipient of each delivery may read the report's submission entry, as a delivery made
today lets it (``LedgerStore.share``): revision 0004 gave entries written before it to the
originator only, so a recipient could not check an older delivery's commitment in the ledger.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_PAGE = 5000


def upgrade() -> None:
    bind = op.get_bind()
    _markings(bind)
    _share_submissions(bind)


def _share_submissions(bind: Any) -> None:
    missing = sa.text(
        "SELECT DISTINCT d.recipient AS party, r.leaf_index AS idx FROM deliveries d "
        "JOIN exchange_reports r ON r.id = d.report_id "
        "WHERE NOT EXISTS (SELECT 1 FROM ledger_visibility v WHERE v.idx = r.leaf_index AND v.party = d.recipient)"
    )
    rows = [{"party": party, "idx": int(idx)} for party, idx in bind.execute(missing)]
    for start in range(0, len(rows), _PAGE):
        bind.execute(
            sa.text("INSERT INTO ledger_visibility (party, idx) VALUES (:party, :idx)"), rows[start : start + _PAGE]
        )


def _markings(bind: Any) -> None:
    deliveries = sa.table(
        "deliveries", sa.column("id", sa.String()), sa.column("recipient", sa.String()), sa.column("marking", sa.JSON())
    )
    after = ""
    while True:
        page = bind.execute(
            sa.select(deliveries.c.id, deliveries.c.recipient, deliveries.c.marking)
            .where(deliveries.c.id > after)
            .order_by(deliveries.c.id)
            .limit(_PAGE)
        ).all()
        if not page:
            return
        changed = [
            {"key": rid, "marking": new}
            for rid, recipient, marking in page
            if (new := current_shape(marking, recipient)) is not None
        ]
        if changed:
            bind.execute(
                sa.update(deliveries)
                .where(deliveries.c.id == sa.bindparam("key"))
                .values(marking=sa.bindparam("marking")),
                changed,
            )
        after = page[-1][0]


def current_shape(marking: Any, recipient: str) -> dict[str, Any] | None:
    """The marking in the current shape, or None if it has it already (or is not a marking)."""
    if isinstance(marking, str):
        marking = json.loads(marking)
    if not isinstance(marking, dict) or "level" not in marking or "recipient_level" in marking:
        return None
    out = {
        "originator": marking.get("originator"),
        "originator_level": marking.get("originator_level"),
        "recipient": recipient,
        "recipient_level": marking.get("level"),
        "common_level": marking.get("common_level"),
        "banner": marking.get("banner"),
    }
    if "exercise" in marking:
        out["exercise"] = marking["exercise"]
    return out


def downgrade() -> None:
    """Nothing to undo: the current shape is what every later revision reads."""
