"""Alembic environment: runs on the connection gsomia hands over (never reads a URL)."""

from __future__ import annotations

from alembic import context

from gsomia.storage.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - gsomia always passes its own connection
    raise RuntimeError("gsomia migrations run through gsomia.storage.db.migrate(), not the alembic CLI")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
