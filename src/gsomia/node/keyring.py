"""The party's private keys and the node's witness key, kept in the encrypted store.

Keys are imported from a ``gsomia keys generate`` file at init (after which the plain file
may be removed: the store holds them) or generated here at rotation. A rotation keeps every
earlier key set, retired: the exchange wraps each delivery to the recipient's key current
when the delivery is made, so older deliveries name older keys (docs/protocol.md §4.4 step 2).
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update

from gsomia.crypto import PartyKeys
from gsomia.crypto.ledger_key import Cosigner
from gsomia.crypto.signing import ExchangeSigner
from gsomia.errors import Conflict, StorageError
from gsomia.node.store import NodeStore, iso_now, party_keys, witness_keys

__all__ = ["KeyRing"]


class KeyRing:
    """The party's key sets (pending, current, retired) and the witness key."""

    def __init__(self, store: NodeStore) -> None:
        self.store = store
        self._cache: dict[str, PartyKeys] = {}
        self._lock = threading.Lock()
        # Held while a key set is made current here and at the exchange (a rotation, or the
        # sync putting the node's key sets in line with the exchange's): two at once could
        # leave the node's current set another than the exchange's.
        self.changing = threading.Lock()

    def add(self, keys: PartyKeys, *, state: str, registered_at: str | None = None) -> None:
        """Keep a key set (``pending`` until the exchange registered it, or ``current``).

        Raises:
            Conflict: that key set is already kept.
        """
        fingerprint = keys.fingerprint()
        with self.store.write() as c:
            if c.execute(select(party_keys.c.state).where(party_keys.c.fingerprint == fingerprint)).first():
                raise Conflict(f"key set {fingerprint} is already in this node")
            if state == "current":
                c.execute(
                    update(party_keys)
                    .where(party_keys.c.state == "current")
                    .values(state="retired", retired_at=registered_at or iso_now())
                )
            c.execute(
                insert(party_keys).values(
                    fingerprint=fingerprint,
                    party=keys.party,
                    profile=keys.profile.value,
                    private=json.dumps(keys.to_private_dict()),
                    state=state,
                    created_at=iso_now(),
                    registered_at=registered_at,
                )
            )

    def make_current(self, fingerprint: str, *, registered_at: str) -> None:
        """Mark a kept key set (pending, or retired here) current and retire the one before it."""
        with self.store.write() as c:
            c.execute(
                update(party_keys)
                .where(party_keys.c.state == "current", party_keys.c.fingerprint != fingerprint)
                .values(state="retired", retired_at=registered_at)
            )
            c.execute(
                update(party_keys)
                .where(party_keys.c.fingerprint == fingerprint)
                .values(state="current", registered_at=registered_at, retired_at=None)
            )

    def retire(self, fingerprint: str) -> None:
        """Mark a pending key set retired: the exchange registered it once and retired it since,
        so it is never current again (it still opens deliveries made to it)."""
        with self.store.write() as c:
            c.execute(
                update(party_keys)
                .where(party_keys.c.fingerprint == fingerprint, party_keys.c.state == "pending")
                .values(state="retired", retired_at=iso_now())
            )

    def state(self, fingerprint: str) -> str | None:
        """A kept key set's state (``pending``, ``current``, ``retired``), or None if not kept."""
        with self.store.read() as c:
            found = c.execute(select(party_keys.c.state).where(party_keys.c.fingerprint == fingerprint)).scalar()
        return None if found is None else str(found)

    def current_fingerprint(self) -> str | None:
        """The current key set's fingerprint, or None while the node holds no registered set."""
        with self.store.read() as c:
            fp = c.execute(select(party_keys.c.fingerprint).where(party_keys.c.state == "current")).scalar()
        return None if fp is None else str(fp)

    def parties(self) -> set[str]:
        """The parties whose key sets the node keeps (one, unless the store was tampered with)."""
        with self.store.read() as c:
            return {str(p) for p in c.execute(select(party_keys.c.party).distinct()).scalars()}

    def current(self) -> PartyKeys:
        """The current key set (signs what the party sends).

        Raises:
            StorageError: the node holds no current key set.
        """
        fp = self.current_fingerprint()
        if fp is None:
            raise StorageError(
                "this node holds no key set registered with the exchange yet: the next sync registers "
                "its pending set, or run 'gsomia node keys rotate'"
            )
        found = self.get(fp)
        assert found is not None  # noqa: S101 - just read from the same table
        return found

    def pending(self) -> PartyKeys | None:
        """The newest key set kept but not yet registered with the exchange, if any."""
        with self.store.read() as c:
            fp = c.execute(
                select(party_keys.c.fingerprint)
                .where(party_keys.c.state == "pending")
                .order_by(party_keys.c.created_at.desc())
                .limit(1)
            ).scalar()
        return None if fp is None else self.get(str(fp))

    def get(self, fingerprint: str) -> PartyKeys | None:
        """The key set with this public fingerprint, whatever its state (docs/protocol.md §4.4 step 2)."""
        with self._lock:
            if fingerprint in self._cache:
                return self._cache[fingerprint]
        with self.store.read() as c:
            doc = c.execute(select(party_keys.c.private).where(party_keys.c.fingerprint == fingerprint)).scalar()
        if doc is None:
            return None
        keys = PartyKeys.from_private_dict(json.loads(doc))
        with self._lock:
            self._cache[fingerprint] = keys
        return keys

    def history(self) -> list[dict[str, Any]]:
        """Every key set, newest first, public halves and states only."""
        with self.store.read() as c:
            rows = c.execute(select(party_keys).order_by(party_keys.c.created_at.desc())).mappings().all()
        out = []
        for r in rows:
            keys = self.get(str(r["fingerprint"]))
            out.append(
                {
                    **(keys.public_keys().to_dict() if keys else {}),
                    "fingerprint": r["fingerprint"],
                    "state": r["state"],
                    "created_at": r["created_at"],
                    "registered_at": r["registered_at"],
                    "retired_at": r["retired_at"],
                }
            )
        return out

    # --- witness ---------------------------------------------------------------------------------------

    def witness(self) -> Cosigner | None:
        """The node's witness (cosigning) key, if made."""
        with self.store.read() as c:
            row = c.execute(select(witness_keys).order_by(witness_keys.c.created_at.desc()).limit(1)).mappings().first()
        if row is None:
            return None
        return Cosigner(str(row["name"]), ExchangeSigner.from_private_bytes(bytes(row["seed"])))

    def create_witness(self, name: str) -> Cosigner:
        """Generate the node's witness key (Ed25519) under ``name``."""
        cosigner = Cosigner(name, ExchangeSigner.generate())
        cosigner.public.vkey()  # checks the name
        with self.store.write() as c:
            c.execute(
                insert(witness_keys).values(
                    name=name, seed=cosigner.signer.private_bytes_raw(), created_at=datetime.now(UTC).isoformat()
                )
            )
        return cosigner
