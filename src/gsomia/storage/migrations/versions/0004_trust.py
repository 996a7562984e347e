"""Trust: stored versions checked inside every write, report ids scoped to their originator,
reports kept exactly as signed, salted ledger commitments, and who may read each ledger entry.

- ``exchange_state``: one row of versions (record, keys, principals) and the latest commit
  instant, moved in the transactions that change them.
- ``exchange_reports.id`` becomes ``ORIGINATOR/ID`` (and every column that refers to it);
  ``signed_report`` keeps the report object exactly as signed; ``salt`` is the salt of its
  ledger commitment.
- ``incidents.salt``, ``incident_updates.salt``, ``consents.reason_salt``: salts of the
  commitments to their texts.
- ``ledger_visibility``: which parties may read each entry (auditors and operators read all);
  ``ledger_meta``: the log's origin.

Rows written before this revision keep their ledger entries as they are (the log is append
only): their salts are empty, and their visibility is read from the entries themselves.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from gsomia.storage.schema import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_REPORT_REFS = (
    ("exchange_decisions", "report_id"),
    ("deliveries", "report_id"),
    ("consents", "report_id"),
    ("incidents", "report_id"),
)

# Who may read entries written before this revision, by type: the members that name those
# parties (the rules of docs/design.md §7); agreement events are public.
_READERS = {
    "submission": ("originator",),
    "decision": ("originator",),
    "consent": ("originator",),
    "delivery": ("originator", "recipient", "via"),
    "ack": ("recipient",),
    "incident": ("reporter", "originator", "by"),
}
_PUBLIC_TYPES = ("agreement_event", "key")


_EMPTY = sa.text("''")


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "exchange_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_version", sa.Integer(), nullable=False),
        sa.Column("keys_version", sa.Integer(), nullable=False),
        sa.Column("principals_version", sa.Integer(), nullable=False),
        sa.Column("last_commit_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_exchange_state"),
    )
    op.execute("INSERT INTO exchange_state (id, record_version, keys_version, principals_version) VALUES (1, 1, 1, 1)")
    op.create_table(
        "ledger_visibility",
        sa.Column("party", sa.String(16), nullable=False),
        sa.Column("idx", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("party", "idx", name="pk_ledger_visibility"),
    )
    op.create_table(
        "ledger_meta",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_ledger_meta"),
    )
    # Plain ALTER TABLE ... ADD COLUMN (no table rebuild): SQLite keeps its foreign keys on.
    op.add_column("exchange_reports", sa.Column("signed_report", sa.Text(), nullable=False, server_default=""))
    op.add_column("exchange_reports", sa.Column("salt", sa.LargeBinary(), nullable=False, server_default=_EMPTY))
    for table in ("incidents", "incident_updates"):
        op.add_column(table, sa.Column("salt", sa.LargeBinary(), nullable=False, server_default=_EMPTY))
    op.add_column("consents", sa.Column("reason_salt", sa.LargeBinary(), nullable=True))
    if bind.dialect.name == "postgresql":  # SQLite does not enforce lengths
        for table, column in (("exchange_reports", "id"), *_REPORT_REFS, ("inbox_events", "ref")):
            op.alter_column(table, column, type_=sa.String(128))
    _scope_report_ids(bind)
    _visibility_of_existing_entries(bind)


def _scope_report_ids(bind: Any) -> None:
    """``R-1`` of JPN becomes ``JPN/R-1`` everywhere, and the signed report is rebuilt from the
    stored columns (the canonical form the originator signed, payload aside)."""
    reports = bind.execute(
        sa.text("SELECT id, originator, topic, level, caveats, created, recipients, content_type FROM exchange_reports")
    ).all()
    if not reports:
        return
    columns = [c["name"] for c in sa.inspect(bind).get_columns("exchange_reports") if c["name"] != "id"]
    listed = ", ".join(columns)
    # A new parent row first, then the children, then the old parent: every foreign key holds
    # at every step, on every backend.
    copy = sa.text(
        f"INSERT INTO exchange_reports (id, {listed}) SELECT :new, {listed} FROM exchange_reports WHERE id = :old"  # noqa: S608 - column names come from the schema
    )
    for rid, originator, topic, level, caveats, created, recipients, content_type in reports:
        scoped = f"{originator}/{rid}"
        signed = {
            "id": rid,
            "originator": originator,
            "topic": topic,
            "level": level,
            "caveats": _json(caveats),
            "created": created,
            "recipients": _json(recipients),
            "content_type": content_type,
        }
        text = json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        bind.execute(copy, {"new": scoped, "old": rid})
        bind.execute(
            sa.text("UPDATE exchange_reports SET signed_report = :signed WHERE id = :new"),
            {"signed": text, "new": scoped},
        )
        for table, column in _REPORT_REFS:
            refer = f"UPDATE {table} SET {column} = :new WHERE {column} = :old"  # noqa: S608 - constant names
            bind.execute(sa.text(refer), {"new": scoped, "old": rid})
        bind.execute(sa.text("DELETE FROM exchange_reports WHERE id = :old"), {"old": rid})


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _visibility_of_existing_entries(bind: Any) -> None:
    rows = bind.execute(sa.text("SELECT idx, body FROM ledger_entries ORDER BY idx")).all()
    visible: list[dict[str, Any]] = []
    for idx, body in rows:
        try:
            entry = json.loads(bytes(body))
        except ValueError:
            continue  # an altered entry: 'gsomia ledger verify' names it
        if not isinstance(entry, dict):
            continue
        kind = entry.get("type")
        if kind in _PUBLIC_TYPES:
            parties = {"*"}
        else:
            members = _READERS.get(str(kind), ())
            parties = {str(entry[m]) for m in members if isinstance(entry.get(m), str)}
        visible.extend({"party": p, "idx": int(idx)} for p in sorted(parties))
    if visible:
        bind.execute(sa.text("INSERT INTO ledger_visibility (party, idx) VALUES (:party, :idx)"), visible)


def downgrade() -> None:
    op.drop_table("ledger_meta")
    op.drop_table("ledger_visibility")
    op.drop_column("consents", "reason_salt")
    for table in ("incidents", "incident_updates"):
        op.drop_column(table, "salt")
    op.drop_column("exchange_reports", "salt")
    op.drop_column("exchange_reports", "signed_report")
    op.drop_table("exchange_state")
