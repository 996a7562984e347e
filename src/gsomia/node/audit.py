"""The node's own audit log: which officer did what, when.

The exchange sees the party (its token acts for the party); only the node knows which officer
submitted, acknowledged, granted or refused. Rows are only ever appended; each carries a
SHA-256 chain over the previous row's chain and its own canonical bytes (RFC 8785), so a row
altered or removed inside the store breaks every later link (:meth:`AuditLog.verify`).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select

from gsomia.errors import InvalidInput, LedgerInvalid
from gsomia.ledger.entries import entry_bytes
from gsomia.node.store import NodeStore, audit_log, iso_now

__all__ = ["GENESIS", "SYSTEM", "AuditLog", "shown"]

GENESIS = "0" * 64
SYSTEM = "node"  # the audit log's name for what the node does by itself
MAX_PAGE = 500


def shown(text: str, limit: int = 64) -> str:
    """Text a client chose (a username tried at login, an address), as the audit log keeps it:
    a backslash and every control, format, separator-of-lines or unassigned character escaped
    (``\\x1b``, ``\\u202e``), so that it can neither break a line of ``gsomia node audit``
    nor pass for another entry, and at most ``limit`` characters, a cut one ending in ``…``
    (never inside an escape)."""
    pieces = [_escaped(ch) for ch in text[: limit + 1]]  # one more than fits shows it is cut
    if sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    out: list[str] = []
    size = 0
    for piece in pieces:
        if size + len(piece) > limit - 1:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out) + "…"


def _escaped(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    if ch != " " and unicodedata.category(ch)[0] in "CZ":
        code = ord(ch)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
    return ch


def _link(previous: str, row: Mapping[str, Any] | RowMapping) -> str:
    body = entry_bytes(
        {k: row[k] for k in ("at", "username", "action", "target")} | {"detail": json.loads(str(row["detail"]))}
    )
    return hashlib.sha256(previous.encode("ascii") + body).hexdigest()


class AuditLog:
    """Append and read the node's audit log."""

    def __init__(self, store: NodeStore) -> None:
        self.store = store

    def record(
        self,
        user: str,
        action: str,
        target: str,
        detail: Mapping[str, Any] | None = None,
        c: Connection | None = None,
    ) -> None:
        """Append one row (inside ``c`` when the action is written in the same transaction).

        Raises:
            StorageError: the store failed.
        """
        if c is None:
            with self.store.write() as own:
                self.record(user, action, target, detail, own)
            return
        last = c.execute(select(audit_log.c.chain).order_by(audit_log.c.id.desc()).limit(1)).scalar()
        row = {
            "at": iso_now(),
            "username": user,
            "action": action,
            "target": target[:200],
            "detail": json.dumps(dict(detail or {}), ensure_ascii=False, sort_keys=True),
        }
        c.execute(insert(audit_log).values(**row, chain=_link(str(last or GENESIS), row)))

    def page(self, *, limit: int = 100, before: int | None = None) -> dict[str, Any]:
        """The newest rows first: ``{"items": [{id, at, user, action, target, detail}], "next"}``.

        Raises:
            InvalidInput: a limit out of 1..500.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit: between 1 and {MAX_PAGE}")
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(audit_log.c.id < before)
        with self.store.read() as c:
            rows = c.execute(query).mappings().all()
        items = [
            {
                "id": r["id"],
                "at": r["at"],
                "user": r["username"],
                "action": r["action"],
                "target": r["target"],
                "detail": json.loads(r["detail"]),
            }
            for r in rows
        ]
        return {"items": items, "next": items[-1]["id"] if len(items) == limit else None}

    def verify(self) -> int:
        """Check the whole chain; the number of rows.

        Raises:
            LedgerInvalid: a row was altered, inserted or removed (names the first bad row).
        """
        previous = GENESIS
        count = 0
        with self.store.read() as c:
            for r in c.execute(select(audit_log).order_by(audit_log.c.id)).mappings():
                if _link(previous, r) != r["chain"]:
                    raise LedgerInvalid(f"the node's audit log does not verify at row {r['id']}")
                previous = str(r["chain"])
                count += 1
        return count
