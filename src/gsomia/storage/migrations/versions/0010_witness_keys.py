"""Every witness key ever registered, with the party that registered it.

The ``witnesses`` table holds each party's current witness only: once a party changed its
witness to another name, the old name was free for any other party to register, and a
cosignature under it replaced the one the first party's key had made of the same checkpoint.
``witness_keys`` keeps each key (name, key ID) with its party for good: a name stays with the
party that registered it first, and a cosignature kept under a name is known to be that party's.

It is filled from the log itself: every registration is a public ledger entry (``key``, action
``witness_registered``), in index order; a key two parties registered under one name (which the
exchange let happen before this revision) stays with the first. The current witnesses are
added last, should any lack its entry.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_PAGE = 5000


def upgrade() -> None:
    op.create_table(
        "witness_keys",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_id", sa.String(8), nullable=False),
        sa.Column("party", sa.String(16), nullable=False),
        sa.Column("leaf_index", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("name", "key_id", name="pk_witness_keys"),
    )
    bind = op.get_bind()
    known: dict[tuple[str, str], tuple[str, int]] = {}
    for index, body in _public_entries(bind):
        registration = _registration(body)
        if registration is not None:
            party, name, key_id = registration
            known.setdefault((name, key_id), (party, index))
    for party, vkey, index in bind.execute(sa.text("SELECT party, public_key, leaf_index FROM witnesses")):
        parts = str(vkey).split("+", 2)
        if len(parts) == 3:
            known.setdefault((parts[0], parts[1]), (str(party), int(index)))
    rows = [{"name": n, "key_id": k, "party": p, "leaf_index": i} for (n, k), (p, i) in known.items()]
    if rows:
        bind.execute(
            sa.text(
                "INSERT INTO witness_keys (name, key_id, party, leaf_index) VALUES (:name, :key_id, :party, :leaf_index)"
            ),
            rows,
        )


def _public_entries(bind: Any) -> Any:
    """Every public ledger entry as ``(index, body)``, in index order, a page at a time."""
    query = sa.text(
        "SELECT e.idx, e.body FROM ledger_entries e JOIN ledger_visibility v ON v.idx = e.idx "
        "WHERE v.party = '*' AND e.idx > :after ORDER BY e.idx LIMIT :page"
    )
    after = -1
    while True:
        page = bind.execute(query, {"after": after, "page": _PAGE}).all()
        if not page:
            return
        for index, body in page:
            yield int(index), body
        after = int(page[-1][0])


def _registration(body: Any) -> tuple[str, str, str] | None:
    """``(party, name, key ID)`` of a witness registration entry; None for any other entry."""
    if not isinstance(body, bytes | bytearray | memoryview) or b"witness_registered" not in bytes(body):
        return None
    try:
        entry = json.loads(bytes(body))
        if entry.get("type") != "key" or entry.get("action") != "witness_registered":
            return None
        name, key_id, _key = str(entry["vkey"]).split("+", 2)
        return str(entry["party"]), name, key_id
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def downgrade() -> None:
    op.drop_table("witness_keys")
