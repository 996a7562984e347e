"""The exchange: principals, public keys, reports, decisions, deliveries, consents, incidents, inbox.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gsomia.storage.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "principals",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("party", sa.String(16), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_principals"),
        sa.UniqueConstraint("token_hash", name="uq_principals_token_hash"),
    )
    op.create_table(
        "party_keys",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("party", sa.String(16), nullable=False),
        sa.Column("profile", sa.String(16), nullable=False),
        sa.Column("signing_key", sa.Text(), nullable=False),
        sa.Column("encryption_key", sa.Text(), nullable=False),
        sa.Column("registered_at", UTCDateTime(), nullable=False),
        sa.Column("registered_by", sa.String(40), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_party_keys"),
    )
    op.create_index("ix_party_keys_party", "party_keys", ["party"])
    op.create_table(
        "exchange_reports",
        sa.Column("id", sa.String(96), nullable=False),
        sa.Column("originator", sa.String(16), nullable=False),
        sa.Column("topic", sa.String(128), nullable=False),
        sa.Column("level", sa.String(64), nullable=False),
        sa.Column("caveats", sa.JSON(), nullable=False),
        sa.Column("created", sa.String(64), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=True),
        sa.Column("content_type", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_key", sa.LargeBinary(), nullable=False),
        sa.Column("payload_size", sa.Integer(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("leaf_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_exchange_reports"),
    )
    op.create_index("ix_exchange_reports_originator", "exchange_reports", ["originator"])
    op.create_table(
        "exchange_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("report_id", sa.String(96), nullable=False),
        sa.Column("recipient", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("route", sa.JSON(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.Column("leaf_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_exchange_decisions"),
        sa.ForeignKeyConstraint(
            ["report_id"], ["exchange_reports.id"], name="fk_exchange_decisions_report_id_exchange_reports"
        ),
        sa.UniqueConstraint("report_id", "recipient", name="uq_exchange_decisions_report_recipient"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(48), nullable=False),
        sa.Column("report_id", sa.String(96), nullable=False),
        sa.Column("recipient", sa.String(16), nullable=False),
        sa.Column("originator", sa.String(16), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("via", sa.String(16), nullable=True),
        sa.Column("consent_id", sa.String(48), nullable=True),
        sa.Column("marking", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("profile", sa.String(16), nullable=False),
        sa.Column("key_fingerprint", sa.String(64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("leaf_index", sa.Integer(), nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=True),
        sa.Column("acked_at", UTCDateTime(), nullable=True),
        sa.Column("ack_leaf_index", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.ForeignKeyConstraint(
            ["report_id"], ["exchange_reports.id"], name="fk_deliveries_report_id_exchange_reports"
        ),
    )
    op.create_index("ix_deliveries_report_id", "deliveries", ["report_id"])
    op.create_index("ix_deliveries_recipient", "deliveries", ["recipient"])
    op.create_table(
        "consents",
        sa.Column("id", sa.String(48), nullable=False),
        sa.Column("report_id", sa.String(96), nullable=False),
        sa.Column("originator", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(16), nullable=False),
        sa.Column("hub", sa.String(16), nullable=False),
        sa.Column("arrangement", sa.String(64), nullable=False),
        sa.Column("per_report", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(48), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("standing_id", sa.String(48), nullable=True),
        sa.Column("outcome", sa.JSON(), nullable=True),
        sa.Column("leaf_index", sa.Integer(), nullable=False),
        sa.Column("resolution_leaf_index", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_consents"),
        sa.ForeignKeyConstraint(["report_id"], ["exchange_reports.id"], name="fk_consents_report_id_exchange_reports"),
    )
    op.create_index("ix_consents_report_id", "consents", ["report_id"])
    op.create_index("ix_consents_originator", "consents", ["originator"])
    op.create_index("ix_consents_state", "consents", ["state"])
    op.create_table(
        "standing_consents",
        sa.Column("id", sa.String(48), nullable=False),
        sa.Column("originator", sa.String(16), nullable=False),
        sa.Column("topic_prefix", sa.String(128), nullable=False),
        sa.Column("recipient", sa.String(16), nullable=False),
        sa.Column("hub", sa.String(16), nullable=True),
        sa.Column("valid_from", UTCDateTime(), nullable=False),
        sa.Column("valid_until", UTCDateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("leaf_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_standing_consents"),
    )
    op.create_index("ix_standing_consents_originator", "standing_consents", ["originator"])
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(48), nullable=False),
        sa.Column("delivery_id", sa.String(48), nullable=False),
        sa.Column("report_id", sa.String(96), nullable=False),
        sa.Column("reporter", sa.String(16), nullable=False),
        sa.Column("originator", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("leaf_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"], name="fk_incidents_delivery_id_deliveries"),
    )
    op.create_index("ix_incidents_delivery_id", "incidents", ["delivery_id"])
    op.create_table(
        "incident_updates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.String(48), nullable=False),
        sa.Column("by", sa.String(16), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("measures", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("leaf_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incident_updates"),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name="fk_incident_updates_incident_id_incidents"),
    )
    op.create_index("ix_incident_updates_incident_id", "incident_updates", ["incident_id"])
    op.create_table(
        "inbox_events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("party", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ref", sa.String(96), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_inbox_events"),
    )
    op.create_index("ix_inbox_events_party_seq", "inbox_events", ["party", "seq"])


def downgrade() -> None:
    op.drop_index("ix_inbox_events_party_seq", "inbox_events")
    op.drop_table("inbox_events")
    op.drop_index("ix_incident_updates_incident_id", "incident_updates")
    op.drop_table("incident_updates")
    op.drop_index("ix_incidents_delivery_id", "incidents")
    op.drop_table("incidents")
    op.drop_index("ix_standing_consents_originator", "standing_consents")
    op.drop_table("standing_consents")
    for ix in ("ix_consents_state", "ix_consents_originator", "ix_consents_report_id"):
        op.drop_index(ix, "consents")
    op.drop_table("consents")
    op.drop_index("ix_deliveries_recipient", "deliveries")
    op.drop_index("ix_deliveries_report_id", "deliveries")
    op.drop_table("deliveries")
    op.drop_table("exchange_decisions")
    op.drop_index("ix_exchange_reports_originator", "exchange_reports")
    op.drop_table("exchange_reports")
    op.drop_index("ix_party_keys_party", "party_keys")
    op.drop_table("party_keys")
    op.drop_table("principals")
