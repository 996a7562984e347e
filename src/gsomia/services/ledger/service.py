"""The ledger as a service: append entries in the caller's transaction, serve checkpoints and proofs.

Every state change of the exchange is an entry (a JSON object with a ``type``); its RFC 8785
bytes are a leaf of an RFC 9162 Merkle tree (docs/design.md §4). The entry row is written in the
caller's own write transaction, so a state change and its entry commit together or not at
all; the in-memory tree learns the leaf only after that commit (see
:mod:`gsomia.storage.ledger`), so a rolled-back transaction never leaves a leaf in memory.

The tree is rebuilt from the stored leaf hashes on first use (``open``); the bodies are
re-hashed only when someone verifies (``verify``), not at every start. Checkpoints are C2SP
tlog-checkpoint signed notes, signed with the exchange's Ed25519 key, which lives in a 0600
file created on first use (:mod:`gsomia.crypto.ledger_key`).

Several processes may append to one database (API workers over PostgreSQL): each process's
tree catches up from the database whenever it sees a gap, and before every checkpoint.

The database can also go back under a running process: a fail-over to an asynchronous standby
that had not received the latest commits, or a restore under running servers. Catching up
compares the leaves read with the tree's (from the last leaf it compared before, so also the
leaves this process committed since), and a committed leaf whose index the tree holds already
is compared too: a database shorter than the tree, or holding other leaves, makes the process
rebuild its tree from the database before it signs anything. An answer at a size the caller
chose (a proof, a past checkpoint, a cosignature's checkpoint), which no catching up precedes,
first reads the stored leaf at the tree's last index: a process idle when the database went back
holds a tree at least as large as the database's, which it would otherwise never compare. A
checkpoint, or a witness's cosignature of one, is kept in the database only over leaves the
database holds, and the kept one is served only if this process's key signed it over the
database's root at its size.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from gsomia.crypto.ledger_key import CosignerPublicKey, LedgerKey, load_or_create_ledger_key
from gsomia.crypto.signing import ExchangeSigner
from gsomia.errors import InvalidInput, LedgerInvalid, StorageError, UnknownEntity
from gsomia.ledger.audit import Batch, StoredNote, VerifyReport, verify_ledger
from gsomia.ledger.checkpoint import Checkpoint, b64, open_with, parse_note, parse_signed_note, sign_note
from gsomia.ledger.entries import entry_bytes
from gsomia.ledger.export import EXPORT_FORMAT, ExportReader
from gsomia.ledger.merkle import leaf_hash
from gsomia.ledger.tree import MerkleTree
from gsomia.storage.ledger import LedgerTable, Session, StoredEntry
from gsomia.storage.store import Store

__all__ = [
    "ENTRY_TYPES",
    "LEGACY_ORIGIN",
    "MAX_ENTRY_BYTES",
    "MAX_PROVED",
    "PAGE_LIMIT",
    "LedgerService",
    "open_export",
]

log = logging.getLogger(__name__)

LEGACY_ORIGIN = "gsomia.local/ledger"
"""The origin every deployment shared before each log named itself: kept by a log that already
has entries under it, so the checkpoints it signed stay verifiable."""

ENTRY_TYPES = frozenset({"agreement_event", "submission", "decision", "consent", "delivery", "ack", "incident", "key"})
"""What an entry's ``type`` may be: every kind of state change the exchange records."""

MAX_ENTRY_BYTES = 1 << 20
"""An entry records a state change, never a payload: a megabyte is far more than enough."""

PAGE_LIMIT = 1000
"""Most entries returned by one :meth:`LedgerService.entries` call."""

MAX_PROVED = 256
"""Most entries :meth:`LedgerService.proved_entries` proves in one call."""

_PUT_BACK = (
    "Put back the key file this database's checkpoints are signed with, the same file on every host (a log keeps "
    "its key for life), and start again. Nothing was written."
)

_ATTEMPTS = 4
"""Times :meth:`LedgerService.checkpoint` reads the ledger again when it changed under it."""


class LedgerService:
    """The exchange's append-only, tamper-evident log (one per database)."""

    def __init__(
        self,
        store: Store,
        *,
        key_file: Path,
        origin: str | None = None,
        clock: Callable[[], datetime],
    ) -> None:
        """Wire the service; nothing is read until first use (or :meth:`open`).

        Args:
            store: The database.
            key_file: The exchange's checkpoint key file (created on first use if absent).
            origin: The log's origin, also the signed-note key name (tlog-checkpoint
                §Signatures: the key name SHOULD be the origin). None: the origin this log
                recorded at its first start (``gsomia/`` and 16 random hex digits, so no two
                deployments sign checkpoints of one name).
            clock: Now, for ``recorded_at`` and the key's creation time.

        Raises:
            InvalidInput: ``origin`` is not a valid origin line and key name.
        """
        if origin is not None:
            _check_origin(origin)
        self._table = LedgerTable(store)
        self._key_file = Path(key_file)
        self._configured = origin
        self._origin: str | None = None
        self._clock = clock
        self._lock = threading.Lock()  # guards the tree, _arrived, _checked, _stale, _note and _vouched
        self._load_lock = threading.Lock()
        self._rebuild_lock = threading.Lock()
        self._tree: MerkleTree | None = None
        self._arrived: dict[int, bytes] = {}
        self._checked = 0  # leading leaves of the tree last found equal to the database's
        self._stale = False  # a committed leaf differs from the tree's: the database went back
        self._note: tuple[int, str] | None = None
        self._vouched: tuple[int, str] | None = None  # the kept checkpoint last found sound
        self._signer: ExchangeSigner | None = None
        self._key: LedgerKey | None = None

    @property
    def origin(self) -> str:
        """The log's origin line: recorded in the database at the first start (configured, or
        generated), and the same for every process over that database.

        Raises:
            InvalidInput: the configured origin is not the one this log recorded.
            StorageError: on any database error.
        """
        if self._origin is None:
            self._origin = self._recorded_origin()
        return self._origin

    def _recorded_origin(self) -> str:
        stored = self._table.meta("origin")
        if stored is None:
            if self._table.count() > 0:
                proposed = self._configured or LEGACY_ORIGIN
            else:
                proposed = self._configured or f"gsomia/{secrets.token_hex(8)}"
            stored = self._table.set_meta_once("origin", proposed)
        if self._configured is not None and self._configured != stored:
            raise InvalidInput(
                f"this ledger's origin is {stored!r}, not {self._configured!r} (GSOMIA_LEDGER_ORIGIN): a log keeps "
                "its name for life, or checkpoints kept by auditors stop verifying"
            )
        return stored

    # --- startup ----------------------------------------------------------------------------------

    def open(self) -> None:
        """Load (or create) the checkpoint key and rebuild the tree from the stored leaf hashes.

        Idempotent; every other method calls it on first use. The server calls it at startup.

        Raises:
            InvalidInput: the key file is unsafe (group/other access) or invalid.
            LedgerInvalid: an entry is missing from the store (the log has a hole).
            StorageError: on any database error.
        """
        self.key()
        self._loaded()

    def _loaded(self) -> MerkleTree:
        tree = self._tree
        if tree is not None:
            return tree
        with self._load_lock:
            if self._tree is None:
                rows = self._table.leaf_hashes()
                _require_contiguous(rows, 0)
                built = MerkleTree.from_leaf_hashes([h for _, h in rows])
                with self._lock:
                    self._tree = built
                    self._checked = built.size
                # Leaves committed while we read were not recorded in memory: pick them up.
                self._catch_up()
            tree = self._tree
        assert tree is not None  # noqa: S101 - set just above
        return tree

    # --- appending ---------------------------------------------------------------------------------

    def append(self, session: Session, entry: Mapping[str, Any], *, parties: Sequence[str] = ()) -> int:
        """Append one entry in the caller's open write transaction (``Store.writing()``).

        The entry's RFC 8785 bytes are stored as the leaf; the in-memory tree gets the leaf
        after the caller's transaction commits, never if it rolls back.

        Args:
            session: The session of ``Store.writing()``, inside its transaction.
            entry: The complete entry, a JSON object whose ``type`` is one of
                :data:`ENTRY_TYPES`. Hash it, never the wire JSON (STYLE).
            parties: The parties that may read it (``"*"``: everyone); auditors and operators
                read every entry.

        Returns:
            The entry's leaf index (gap-free across every writer).

        Raises:
            InvalidInput: the entry has no known ``type``, cannot be canonicalised (RFC 8785:
                NaN, infinities, integers beyond 2**53...) or is larger than
                :data:`MAX_ENTRY_BYTES`.
            StorageError: ``session`` is not an open ``Store.writing()`` transaction, or the
                database fails.
        """
        if not isinstance(entry, Mapping):
            raise InvalidInput("a ledger entry must be a JSON object")
        kind = entry.get("type")
        if kind not in ENTRY_TYPES:
            raise InvalidInput(f"ledger entry type {kind!r} is not one of: {', '.join(sorted(ENTRY_TYPES))}")
        body = entry_bytes(entry)
        if len(body) > MAX_ENTRY_BYTES:
            raise InvalidInput(
                f"ledger entry is {len(body)} bytes; the limit is {MAX_ENTRY_BYTES} (ledger digests, not payloads)"
            )
        return self._table.append(
            session,
            body=body,
            leaf_hash=leaf_hash(body),
            clock=self._clock,
            on_commit=self._committed,
            parties=parties,
        )

    def share(self, session: Session, index: int, parties: Sequence[str]) -> None:
        """Let ``parties`` read the entry ``index`` too, in the caller's write transaction.

        Raises:
            StorageError: on any database error.
        """
        self._table.share(session, index, parties)

    def _committed(self, leaves: Sequence[tuple[int, bytes]]) -> None:
        """After a commit: add the transaction's leaves to the tree, in index order. A leaf at
        an index the tree holds already was read from the store meanwhile, with the same hash;
        another hash there means the database went back under this process (see the module
        doc): the tree is rebuilt before its next use."""
        with self._lock:
            tree = self._tree
            if tree is None:
                return  # not loaded yet: loading reads them from the store
            size = tree.size
            for index, h in leaves:
                if index >= size:
                    self._arrived[index] = h
                elif tree.leaf_hash(index) != h:
                    self._stale = True
            self._drain(tree)

    def _drain(self, tree: MerkleTree) -> None:
        # Called with the lock held. Commits of concurrent writers can reach us out of
        # order; a leaf waits in _arrived until every lower index is in the tree.
        arrived = self._arrived
        while arrived:
            h = arrived.pop(tree.size, None)
            if h is None:
                break
            tree.append(h)

    def _catch_up(self) -> None:
        """Append every stored leaf the tree lacks (written by another process, or whose
        commit notice has not reached us yet), after comparing the stored leaves the tree
        holds from the last one compared before; rebuild the tree from the store if they
        differ, or if the store ends before the tree. Reads without holding the lock.

        Raises:
            LedgerInvalid: an entry is missing from the store (the log has a hole).
            StorageError: on any database error.
        """
        with self._lock:
            tree = self._held()
            stale, known = self._stale, tree.size
            start = max(self._checked - 1, 0)
        if stale:
            self._rebuild(tree, None)
            return
        rows = self._table.leaf_hashes(start)
        with self._lock:
            if self._tree is not tree:
                return  # rebuilt meanwhile, from a later read
            differs, compared = _merge(tree, rows, start, known)
            if differs is None:
                self._checked = compared
                self._arrived = {i: h for i, h in self._arrived.items() if i >= tree.size}
                self._drain(tree)
                return
        self._rebuild(tree, differs)

    def _rebuild(self, tree: MerkleTree, differs: int | None) -> None:
        """Rebuild the tree from the stored leaf hashes, in place of ``tree``, which holds other
        leaves than the store from index ``differs`` on (None: a committed leaf told so).

        Raises:
            LedgerInvalid: an entry is missing from the store.
            StorageError: on any database error.
        """
        with self._rebuild_lock:
            with self._lock:
                if self._tree is not tree:
                    return  # another thread rebuilt it meanwhile
            rows = self._table.leaf_hashes()
            _require_contiguous(rows, 0)
            built = MerkleTree.from_leaf_hashes([h for _, h in rows])
            with self._lock:
                self._tree = built
                self._checked = built.size
                self._stale = False
                self._arrived = {}
                self._note = None
                self._vouched = None
        log.warning(
            "ledger: the database's ledger went back under this process (a fail-over that lost commits, or a "
            "restore): it holds %d entries, this process's tree held %d%s; the tree was rebuilt from the database",
            built.size,
            tree.size,
            f" and the two differ at entry {differs}" if differs is not None and differs < built.size else "",
        )

    def _held(self) -> MerkleTree:
        """The tree (loaded); the caller holds the lock."""
        tree = self._tree
        assert tree is not None  # noqa: S101 - every caller loaded it first
        return tree

    def _same(self, tree: MerkleTree) -> None:
        """Refuse to answer from ``tree`` if it was replaced since it was read (the caller
        holds the lock): its leaves are not the database's.

        Raises:
            StorageError: the tree was rebuilt from the database meanwhile.
        """
        if self._tree is not tree:
            raise StorageError("the ledger was rebuilt from the database while this request was answered: ask again")

    def _ready(self, need: int = 0, *, recheck: bool = False) -> MerkleTree:
        """The tree, caught up from the store if it lacks leaves ``< need``, has a gap, holds
        leaves not yet compared with the store's, or was found to differ from it.

        With ``recheck`` (an answer at a size the caller chose, which no catching up precedes),
        also when the store no longer holds the tree's last leaf: a process that was idle when
        the database went back (a restore, a fail-over that lost commits) holds a tree at least
        as large as the store's, and would otherwise answer, and sign, from leaves the store
        lacks. One indexed read.

        Raises:
            LedgerInvalid: an entry is missing from the store.
            StorageError: on any database error.
        """
        self._loaded()
        with self._lock:
            tree = self._held()
            behind = bool(self._arrived) or need > tree.size or tree.size > self._checked or self._stale
        if not behind and recheck and tree.size > 0:
            stored = self._table.leaf_hash_at(tree.size - 1)
            with self._lock:
                if self._tree is tree and stored != tree.leaf_hash(tree.size - 1):
                    self._stale = True  # gone, or another leaf: the database went back
                    behind = True
        if behind:
            self._catch_up()
        with self._lock:
            return self._held()

    def refresh(self) -> int:
        """Catch up with entries other processes appended; return the tree size.

        Raises:
            LedgerInvalid: an entry is missing from the store.
            StorageError: on any database error.
        """
        self._loaded()
        self._catch_up()
        with self._lock:
            return self._held().size

    # --- reading -----------------------------------------------------------------------------------

    def size(self) -> int:
        """The number of entries in the tree (as known to this process).

        Raises:
            LedgerInvalid: an entry is missing from the store.
            StorageError: on any database error.
        """
        self._ready()
        with self._lock:
            return self._held().size

    def key(self) -> LedgerKey:
        """The exchange's checkpoint verification key (loading or creating the key file).

        Raises:
            InvalidInput: the key file is unsafe or invalid, or cannot be created.
        """
        key = self._key
        if key is None:
            with self._load_lock:
                if self._key is None:
                    self._refuse_a_new_key()
                    signer = load_or_create_ledger_key(self._key_file, created=self._clock())
                    loaded = LedgerKey(name=self.origin, public_key=signer.public_key_raw())
                    self._refuse_another_key(loaded)
                    self._key, self._signer = loaded, signer
                key = self._key
        return key

    def _refuse_a_new_key(self) -> None:
        """A key file missing where a checkpoint was signed already is a lost key, not a new
        log: a new key would sign a log every pinned verifier and witness takes for a fork.

        Raises:
            StorageError: the key file is missing and this database holds a signed checkpoint.
        """
        if not Path(self._key_file).exists() and self._table.meta("checkpoint") is not None:
            raise StorageError(
                f"the ledger key {self._key_file} is missing, and this database holds checkpoints it signed: put "
                "it back from the backup made with this database (a new key would sign a different log for every "
                "verifier and witness that pinned it). Nothing was written."
            )

    def _refuse_another_key(self, key: LedgerKey) -> None:
        """The log records its key at the first start (its verifier key, public), as it records
        its origin: a key file of another key is another log's key, or a new one, and signing
        with it would mix two keys over one log (each process serving its own) that every
        pinned verifier and witness takes for a fork. A log keeps its key for life. A log from
        before keys were recorded takes the key that signed the checkpoint it keeps.

        Raises:
            StorageError: ``key`` is not the key this log recorded, or did not sign the
                checkpoint it keeps.
        """
        recorded = self._table.meta("key")
        if recorded is None:
            kept = self._table.kept_checkpoint()
            if kept is not None and kept[0] is not None:
                _refuse_unless_signer(key, self._key_file, kept[0], kept[1])
            recorded = self._table.set_meta_once("key", key.vkey())
        if recorded != key.vkey():
            raise StorageError(
                f"the ledger key {self._key_file} (key ID {key.key_id.hex()}) is not this log's key, recorded at "
                f"its first start ({recorded}): it is a new key, or another log's. {_PUT_BACK}"
            )

    def public_key(self) -> dict[str, str]:
        """The checkpoint key as published: ``{"name", "key_id", "public_key", "algorithm", "vkey"}``.

        Raises:
            InvalidInput: the key file is unsafe or invalid.
        """
        return self.key().to_dict()

    def checkpoint(self) -> str:
        """The signed checkpoint (C2SP tlog-checkpoint in a signed note) of the current tree.

        Catches up with other writers first, so it commits to every entry committed before
        the call. The checkpoint served never goes back in size, whichever process answers:
        one kept by another process over a larger tree is served as it is, once this process
        has found it signed by its own key over the database's root at its size; a newer one
        is kept in its place.

        Raises:
            InvalidInput: the key file is unsafe or invalid.
            LedgerInvalid: an entry is missing from the store, or the checkpoint kept is not
                of the entries the store holds (see :meth:`_vouch`).
            StorageError: this process's key did not sign the checkpoint kept, or on any
                database error.
        """
        self.key()
        for _attempt in range(_ATTEMPTS):
            size, note, last = self._current_note()
            kept = self._table.kept_checkpoint()
            if kept is not None and kept[0] is not None:
                if kept[0] > size:
                    # another process signed a larger tree since we caught up: read its entries
                    size, note, last = self._current_note()
                self._vouch(kept[0], kept[1])
                if kept[0] >= size:
                    return kept[1]
            if self._table.record_checkpoint(size, note, last_leaf=last, seen=kept):
                return note
        raise StorageError("the ledger changed at every attempt to sign its checkpoint: ask again")

    def _current_note(self) -> tuple[int, str, bytes | None]:
        """Catch up, then the tree's size, its signed checkpoint and its last leaf hash.

        Raises:
            LedgerInvalid: an entry is missing from the store.
            StorageError: on any database error.
        """
        self.refresh()
        with self._lock:
            tree = self._held()
            size = tree.size
            return size, self._note_locked(), tree.leaf_hash(size - 1) if size else None

    def _vouch(self, size: int, note: str) -> None:
        """Serve or replace the checkpoint kept (of ``size`` entries) only if this process's key
        signed it over the database's root at that size: a restore or a fail-over leaves a
        checkpoint no newer than the entries (it is kept after them), so any other is evidence
        that the store was altered, and stays for ``gsomia ledger verify`` to name.

        Raises:
            StorageError: this process's key did not sign it (another key file).
            LedgerInvalid: it does not verify, or its root is not the database's at its size.
        """
        key = self._key
        assert key is not None  # noqa: S101 - loaded by key()
        with self._lock:
            if self._vouched == (size, note):
                return
        _refuse_unless_signer(key, self._key_file, size, note)
        try:
            signed = open_with(key, note)
        except (LedgerInvalid, InvalidInput):
            raise LedgerInvalid(
                f"the latest checkpoint kept (size {size}) does not verify with this exchange's key: the store was "
                "altered; run 'gsomia ledger verify'"
            ) from None
        with self._lock:
            tree = self._held()
            if signed.size != size:
                raise LedgerInvalid(
                    f"the latest checkpoint kept is recorded as of size {size} but is of size {signed.size}: the "
                    "store was altered; run 'gsomia ledger verify'"
                )
            if size > tree.size:
                raise LedgerInvalid(
                    f"the latest checkpoint kept covers {signed.size} entries and the database holds {tree.size}: "
                    "entries a checkpoint was signed over are gone (the store was altered); run 'gsomia ledger "
                    "verify'"
                )
            if tree.root(size) != signed.root_hash:
                raise LedgerInvalid(
                    f"the latest checkpoint kept (size {size}) is not the root of the entries the database holds: "
                    "the store was altered; run 'gsomia ledger verify'"
                )
            self._vouched = (size, note)

    def checkpoint_at(self, size: int) -> str:
        """The signed checkpoint of the tree at a past or the current ``size``: the note this log
        signed, or would have signed, at that size (Ed25519 is deterministic).

        Raises:
            InvalidInput: ``size`` is negative.
            UnknownEntity: the ledger is not that large (yet).
            LedgerInvalid: an entry is missing from the store.
            StorageError: on any database error.
        """
        _require_count(size, "tree size")
        self.key()
        tree = self._ready(need=size, recheck=True)
        with self._lock:
            self._same(tree)
            if size > tree.size:
                raise UnknownEntity(f"the ledger has {tree.size} entries; there is no tree of size {size} yet")
            if size == tree.size:
                return self._note_locked()
            root = tree.root(size)
        key, signer = self._key, self._signer
        assert key is not None  # noqa: S101 - loaded by key()
        assert signer is not None  # noqa: S101
        return sign_note(Checkpoint(origin=self.origin, size=size, root_hash=root), key.name, key.key_id, signer.sign)

    def cosigned_checkpoint(self, size: int | None = None) -> str:
        """The checkpoint of ``size`` (default: the largest any witness cosigned) with every
        witness's cosignature line after the log's own signature (C2SP tlog-cosignature).

        Raises:
            InvalidInput: ``size`` is negative.
            UnknownEntity: no witness has cosigned that checkpoint (or any).
            StorageError: on any database error.
        """
        if size is not None:
            _require_count(size, "tree size")
        found = self._table.cosigned(size)
        if found is None:
            which = "any checkpoint" if size is None else f"the checkpoint of size {size}"
            raise UnknownEntity(f"no witness has cosigned {which} yet")
        note, lines = found
        return note + "".join(line + "\n" for line in lines)

    def add_cosignature(
        self,
        s: Session,
        *,
        size: int,
        witness: str,
        timestamp: int,
        line: str,
        note: str,
        at: datetime,
        same_party: Callable[[str], bool],
    ) -> bool:
        """Keep a witness's verified cosignature of the checkpoint ``note`` of ``size`` (this
        log's, from :meth:`checkpoint_at`) in the caller's transaction, unless it is older than
        the one kept; whether it was kept.

        Kept only over a tree the database holds: in this transaction, the stored leaf at
        ``size - 1`` must be this process's tree's, and the tree's root at ``size`` the note's
        (as :meth:`checkpoint` keeps a checkpoint). A database that went back under this process
        since the note was signed holds other leaves, or fewer: nothing is kept, the tree is
        rebuilt before its next answer, and the witness asks again.

        Args:
            same_party: Whether the line of another key kept under ``witness``'s name for
                ``size`` is of the same party (its witness key replaced); only then does it
                give way (see :meth:`LedgerTable.add_cosignature`).

        Raises:
            StorageError: the database does not hold the tree the note was signed over (ask
                again), or on any database error.
            Conflict: the line kept for ``size`` under that name is another party's.
        """
        root = parse_note(note)[0].root_hash
        self._loaded()
        stored = LedgerTable.stored_leaf(s, size - 1) if size > 0 else None
        with self._lock:
            tree = self._held()
            held = size <= tree.size and (size == 0 or tree.leaf_hash(size - 1) == stored)
            if size <= tree.size and not held:
                self._stale = True  # the database went back under this process
            held = held and tree.root(size) == root
        if not held:
            raise StorageError(
                f"the database does not hold the tree of size {size} this cosignature was checked against (the "
                "ledger went back under this process): nothing was kept; ask again"
            )
        return LedgerTable.add_cosignature(
            s, size=size, witness=witness, timestamp=timestamp, line=line, note=note, at=at, same_party=same_party
        )

    def _note_locked(self, size: int | None = None) -> str:
        """The signed checkpoint of the tree at ``size`` (the current size if None)."""
        tree = self._tree
        signer = self._signer
        key = self._key
        # Loaded by every caller (key() and _loaded()).
        assert tree is not None  # noqa: S101
        assert signer is not None  # noqa: S101
        assert key is not None  # noqa: S101
        if size is None:
            size = tree.size
        cached = self._note
        if cached is not None and cached[0] == size:
            return cached[1]
        # Ed25519 is deterministic (RFC 8032 §5.1.6): a cached note is the note we would sign.
        cp = Checkpoint(origin=self.origin, size=size, root_hash=tree.root(size))
        note = sign_note(cp, key.name, key.key_id, signer.sign)
        if size == tree.size:
            self._note = (size, note)
        return note

    def inclusion(self, index: int, size: int | None = None, *, reader: str | None = None) -> dict[str, Any]:
        """The inclusion proof of entry ``index`` in the tree at ``size`` (RFC 9162 §2.1.3.1).

        Args:
            index: The entry's index.
            size: A past or the current tree size; None means the current size.
            reader: The party asking: it gets proofs only of the entries about it.

        Returns:
            ``{"index", "size", "leaf_hash", "proof": [base64...], "root"}``, plus
            ``"checkpoint"`` (the signed note) when ``size`` is the current size.

        Raises:
            InvalidInput: ``index`` or ``size`` is negative.
            UnknownEntity: the entry or the tree size does not exist (yet).
            LedgerInvalid: an entry is missing from the store.
            StorageError: on any database error.
        """
        _require_count(index, "entry index")
        if size is not None:
            _require_count(size, "tree size")
        if reader is not None and not self._table.readable(index, reader):
            raise UnknownEntity(f"ledger entry {index} does not exist or is not yours to read")
        self.key()
        if size is None:
            self.refresh()  # the checkpoint it comes with is of the database's current tree
        tree = self._ready(need=max(index + 1, size or 0), recheck=size is not None)
        with self._lock:
            self._same(tree)
            current = tree.size
            n = current if size is None else size
            if n > current:
                raise UnknownEntity(f"the ledger has {current} entries; there is no tree of size {n} yet")
            if index >= n:
                held = f"entries 0..{n - 1}" if n else "it is empty"
                raise UnknownEntity(f"ledger entry {index} is not in the tree of size {n} ({held})")
            out: dict[str, Any] = {
                "index": index,
                "size": n,
                "leaf_hash": b64(tree.leaf_hash(index)),
                "proof": [b64(h) for h in tree.inclusion_proof(index, n)],
                "root": b64(tree.root(n)),
            }
            if n == current:
                out["checkpoint"] = self._note_locked()
        return out

    def proved_entries(
        self, indexes: Sequence[int], size: int | None, *, reader: str | None = None, old: int | None = None
    ) -> dict[str, Any]:
        """Several entries, each with its inclusion proof in the tree at ``size``: what
        :meth:`entry` and :meth:`inclusion` give one at a time, for a reader that checks many
        entries against one checkpoint (a party node verifying a page of deliveries).

        With no ``size``: in the current tree, with its signed checkpoint and, from ``old``,
        the consistency proof to it (one request for both, docs/protocol.md §5.5).

        An entry that does not exist, is not in the tree at ``size`` or is not ``reader``'s to
        read is answered with ``"error"`` in its place (the same words for each case, as
        :meth:`entry` answers), and the others are still proved.

        Args:
            indexes: At most :data:`MAX_PROVED` entry indexes.
            size: A past or the current tree size; None: the current size.
            reader: The party asking: it gets only the entries about it.
            old: With no ``size``: a tree size the reader holds a checkpoint of.

        Returns:
            ``{"size", "items": [{"index", "entry": {...}, "proof": {...}} | {"index", "error"}]}``
            in the order asked, with ``"checkpoint"`` (the signed note) when ``size`` is the
            current size, and ``"consistency"`` (``{"old", "new", "proof", "old_root",
            "new_root"}``) when ``old`` was given.

        Raises:
            InvalidInput: see :func:`_proved_request`; or ``old`` beyond the current size.
            UnknownEntity: there is no tree of ``size`` yet.
            LedgerInvalid: a stored entry does not match its leaf hash (it was altered).
            StorageError: on any database error.
        """
        _proved_request(indexes, size, old)
        self.key()
        latest = size is None
        if size is None:
            size = self.refresh()
        tree = self._ready(need=size, recheck=not latest)
        with self._lock:
            self._same(tree)
            current = tree.size
        if size > current:
            raise UnknownEntity(f"the ledger has {current} entries; there is no tree of size {size} yet")
        if old is not None and old > size:
            raise InvalidInput(
                f"old size {old} is larger than the current size {size}: a consistency proof goes forward"
            )
        # only indexes inside the tree reach the database (and so fit its integers)
        rows = self._table.some([i for i in indexes if i < size], party=reader)
        items: list[dict[str, Any]] = []
        with self._lock:
            self._same(tree)
            root = b64(tree.root(size))
            for index in indexes:
                row = rows.get(index)
                if row is None:
                    items.append(
                        {"index": index, "error": f"ledger entry {index} does not exist or is not yours to read"}
                    )
                    continue
                proof = {
                    "index": index,
                    "size": size,
                    "leaf_hash": b64(tree.leaf_hash(index)),
                    "proof": [b64(h) for h in tree.inclusion_proof(index, size)],
                    "root": root,
                }
                items.append({"index": index, "entry": _entry_dict(row), "proof": proof})
            out: dict[str, Any] = {"size": size, "items": items}
            if old is not None:
                out["consistency"] = _consistency(tree, old, size)
            if latest or size == tree.size:
                # the tree may have grown since ``size`` was read: the note is of the tree
                # the proofs are in, which was the current one when the request came
                out["checkpoint"] = self._note_locked(size)
        return out

    def consistency(self, old: int, new: int | None = None) -> dict[str, Any]:
        """The proof that the tree at ``old`` is a prefix of the tree at ``new`` (RFC 9162 §2.1.4.1).

        Args:
            old: The older size.
            new: The newer size; None means the current size (after catching up).

        Returns:
            ``{"old", "new", "proof": [base64...], "old_root", "new_root"}``, plus
            ``"checkpoint"`` when ``new`` is the current size.

        Raises:
            InvalidInput: a size is negative, or ``old > new``.
            UnknownEntity: ``new`` is larger than the ledger.
            LedgerInvalid: an entry is missing from the store.
            StorageError: on any database error.
        """
        _require_count(old, "old tree size")
        if new is not None:
            _require_count(new, "new tree size")
        self.key()
        if new is None:
            self.refresh()
        tree = self._ready(need=max(old, new or 0), recheck=new is not None)
        with self._lock:
            self._same(tree)
            current = tree.size
            n = current if new is None else new
            if n > current:
                raise UnknownEntity(f"the ledger has {current} entries; there is no tree of size {n} yet")
            if old > n:
                raise InvalidInput(f"old size {old} is larger than new size {n}: a consistency proof goes forward")
            out = _consistency(tree, old, n)
            if n == current:
                out["checkpoint"] = self._note_locked()
        return out

    def entry(self, index: int, *, reader: str | None = None) -> dict[str, Any]:
        """One entry: ``{"index", "entry", "body", "leaf_hash", "recorded_at"}``.

        Args:
            index: The entry's index.
            reader: The party asking, who sees only the entries about it (None: every entry,
                for auditors and operators).

        Raises:
            InvalidInput: ``index`` is negative.
            UnknownEntity: there is no entry ``index``, or ``reader`` may not read it (the
                same answer, so nobody learns of another party's entries).
            LedgerInvalid: the stored entry does not match its leaf hash (it was altered).
            StorageError: on any database error.
        """
        _require_count(index, "entry index")
        row = self._table.get(index)
        if row is None or row.index != index or (reader is not None and not self._table.readable(index, reader)):
            raise UnknownEntity(f"ledger entry {index} does not exist or is not yours to read")
        return _entry_dict(row)

    def entries(self, start: int, limit: int, *, reader: str | None = None) -> list[dict[str, Any]]:
        """Up to ``limit`` (at most :data:`PAGE_LIMIT`) entries from ``start``, in index order;
        for a ``reader`` party, only the entries about it.

        Raises:
            InvalidInput: ``start`` is negative or ``limit`` is not between 1 and
                :data:`PAGE_LIMIT`.
            LedgerInvalid: a stored entry does not match its leaf hash, or entries are missing.
            StorageError: on any database error.
        """
        _require_count(start, "start")
        if type(limit) is not int or not 1 <= limit <= PAGE_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {PAGE_LIMIT}")
        rows = self._table.range(start, limit, party=reader)
        if reader is None:
            for offset, row in enumerate(rows):
                if row.index != start + offset:
                    raise _hole(start + offset)
        return [_entry_dict(r) for r in rows]

    # --- export and verification ---------------------------------------------------------------

    def export(self, out: IO[bytes]) -> int:
        """Write every entry and the checkpoint that covers them (JSON lines, see
        :class:`~gsomia.ledger.export.ExportReader`).

        Returns:
            The number of entries written.

        Raises:
            InvalidInput: the key file is unsafe or invalid.
            LedgerInvalid: an entry is missing from the store.
            StorageError: on any database error.
        """
        key = self.key()
        self.refresh()
        with self._lock:
            note = self._note_locked()
            assert self._tree is not None  # noqa: S101 - loaded by refresh()
            size = self._tree.size
        header = {
            "format": EXPORT_FORMAT,
            "origin": self.origin,
            "size": size,
            "key": key.to_dict(),
            "checkpoint": note,
        }
        out.write(json.dumps(header, separators=(",", ":")).encode("ascii") + b"\n")
        written = 0
        for batch in self._table.scan():
            lines = []
            for index, body, h in batch:
                if index >= size:
                    break
                if index != written:
                    raise _hole(written)
                lines.append(b'{"index":%d,"leaf_hash":"%s","body":"%s"}\n' % (index, _b64b(h), _b64b(body)))
                written += 1
            out.write(b"".join(lines))
            if written >= size:
                break
        if written != size:
            raise _hole(written)
        return written

    def verify(
        self,
        *,
        key: LedgerKey | None = None,
        checkpoint: str | None = None,
        since: str | None = None,
        proofs: Sequence[Mapping[str, Any]] = (),
        progress: Callable[[int], None] | None = None,
    ) -> VerifyReport:
        """Re-derive the stored ledger and check it (see :func:`~gsomia.ledger.audit.verify_ledger`),
        with the latest checkpoint and every witness cosignature the store keeps: each must be
        signed (a cosignature by a key its witness registered in the ledger) over the
        re-derived tree's root at its size. Nothing is written.

        Args:
            key: The key to trust; default: this exchange's own key file.
            checkpoint: The signed checkpoint to check against; default: the one this
                exchange serves now.
            since: An older signed checkpoint the auditor kept.
            proofs: Proof documents to check too.
            progress: Called with the number of entries checked so far.

        Returns:
            The report, naming the first problem.

        Raises:
            InvalidInput: the key file is unsafe or invalid.
            StorageError: on any database error.
        """
        own = self.key()
        trusted = key or own
        # What the store keeps on its own authority (the latest checkpoint, the witnesses'
        # cosignatures), read before the entries, so that the entries any of it covers are read
        # too, and before anything is signed: verifying writes nothing.
        stored = self._stored_notes()
        if checkpoint is None:
            checkpoint = self._checkpoint_to_verify(stored, trusted)
        witnesses: dict[str, list[CosignerPublicKey]] = {}
        batches: Iterable[Batch] = self._table.scan()
        if any(n.witness is not None for n in stored):
            batches = _collect_witness_keys(batches, witnesses)
        return verify_ledger(
            batches,
            key=trusted,
            checkpoint=checkpoint,
            source="the store",
            since=since,
            proofs=proofs,
            progress=progress,
            stored=stored,
            witness_keys=lambda name: witnesses.get(name, ()),
        )

    def _stored_notes(self) -> list[StoredNote]:
        """The latest checkpoint kept, then every witness cosignature kept (by size, witness)."""
        notes: list[StoredNote] = []
        kept = self._table.kept_checkpoint()
        if kept is not None:
            notes.append(StoredNote(size=kept[0], note=kept[1]))
        notes.extend(
            StoredNote(size=size, note=note, witness=witness, timestamp=timestamp, line=line)
            for size, witness, timestamp, line, note in self._table.all_cosignatures()
        )
        return notes

    def _checkpoint_to_verify(self, stored: Sequence[StoredNote], key: LedgerKey) -> str | None:
        """The checkpoint this exchange serves now, as :meth:`checkpoint` answers it but without
        recording it; None when the store has a hole (re-deriving the entries names it)."""
        try:
            size = self.refresh()
        except LedgerInvalid:
            return None
        latest = next((n for n in stored if n.witness is None), None)
        if latest is not None and latest.size is not None and latest.size >= size and _signed_by(key, latest.note):
            # the note served (signed by another process, or over entries since altered or deleted)
            return latest.note
        with self._lock:
            return self._note_locked(size)

    def stored_count(self) -> int:
        """The number of entries in the store (``max(index) + 1``), for progress bars.

        Raises:
            StorageError: on any database error.
        """
        return self._table.count()


def open_export(path: Path) -> ExportReader:
    """Open an export file written by :meth:`LedgerService.export` (close it when done).

    Raises:
        InvalidInput: the file cannot be read.
        LedgerInvalid: it is not an export, or its header is malformed.
    """
    try:
        stream = path.open("rb")
    except OSError as e:
        raise InvalidInput(f"cannot read export {path}: {e.strerror}") from e
    try:
        return ExportReader(stream, name=str(path), parse_key=LedgerKey.parse)
    except BaseException:
        stream.close()
        raise


def _refuse_unless_signer(key: LedgerKey, key_file: Path, size: int, note: str) -> None:
    """Refuse ``key`` if the checkpoint ``note`` (of ``size``, kept in the database) carries no
    signature of its name and key ID; a note that is not a signed note at all is the store's
    problem, not the key's (``gsomia ledger verify`` names it).

    Raises:
        StorageError: the note is signed, by other keys only.
    """
    try:
        _text, signatures = parse_signed_note(note)
    except LedgerInvalid:
        return
    if any(sig.name == key.name and sig.key_id == key.key_id for sig in signatures):
        return
    others = ", ".join(dict.fromkeys(sig.key_id.hex() for sig in signatures))
    raise StorageError(
        f"the ledger key {key_file} (key ID {key.key_id.hex()}) did not sign the checkpoint this database holds "
        f"(size {size}, signed by key ID {others}): it is a new key, or another log's. {_PUT_BACK}"
    )


def _merge(tree: MerkleTree, rows: Sequence[tuple[int, bytes]], start: int, known: int) -> tuple[int | None, int]:
    """Compare the stored leaves ``rows`` (read from index ``start``) with ``tree``'s and append
    those it lacks; the caller holds the lock. ``known`` is the tree's size when the read
    began: the store must hold every leaf below it (a leaf a commit notice added since may be
    newer than the read).

    Returns:
        The first index where the store differs from the tree or ends before it (None if it
        agrees), and how many leading leaves were found equal.

    Raises:
        LedgerInvalid: an entry is missing from the store (the log has a hole).
    """
    expected = start
    for index, h in rows:
        if index != expected:
            raise _hole(expected)
        if index < tree.size:
            if tree.leaf_hash(index) != h:
                return index, index
        else:
            tree.append(h)
        expected += 1
    if expected < known:
        return expected, expected
    return None, expected


def _signed_by(key: LedgerKey, note: str) -> bool:
    try:
        open_with(key, note)
    except (LedgerInvalid, InvalidInput):
        return False
    return True


def _collect_witness_keys(batches: Iterable[Batch], keys: dict[str, list[CosignerPublicKey]]) -> Iterator[Batch]:
    """``batches`` as they are, noting on the way every witness key registered in them (public
    ``key`` entries of action ``witness_registered``, docs/protocol.md §5.9): a cosignature the
    store keeps must verify with one of the keys its witness's name was registered with."""
    for batch in batches:
        for _index, body, _leaf in batch:
            if b'"witness_registered"' in body:
                _note_witness_key(body, keys)
        yield batch


def _note_witness_key(body: bytes, keys: dict[str, list[CosignerPublicKey]]) -> None:
    try:
        entry = json.loads(body)
        if entry.get("type") != "key" or entry.get("action") != "witness_registered":
            return
        key = CosignerPublicKey.parse(entry["vkey"])
    except (ValueError, KeyError, TypeError, AttributeError, InvalidInput):
        return  # not a registration: a cosignature claiming it fails to verify
    if key.name == entry.get("witness"):
        keys.setdefault(key.name, []).append(key)


def _check_origin(origin: str) -> None:
    if not isinstance(origin, str) or not origin or any(c.isspace() or c == "+" for c in origin):
        raise InvalidInput(
            f"ledger origin {origin!r}: use a non-empty name without spaces or '+', e.g. example.org/ledger"
        )


def _b64b(data: bytes) -> bytes:
    return b64(data).encode("ascii")


# Indices are stored as signed 64-bit integers (BIGINT); RFC 9162's uint64 sizes are larger
# than any ledger will reach.
_MAX_INDEX = (1 << 63) - 1


def _consistency(tree: MerkleTree, old: int, new: int) -> dict[str, Any]:
    """The consistency proof document from the tree at ``old`` to the tree at ``new``
    (docs/protocol.md §5.5), without a checkpoint; the caller holds the lock."""
    return {
        "old": old,
        "new": new,
        "proof": [b64(h) for h in tree.consistency_proof(old, new)],
        "old_root": b64(tree.root(old)),
        "new_root": b64(tree.root(new)),
    }


def _proved_request(indexes: Sequence[int], size: int | None, old: int | None) -> None:
    """Refuse a request for entries with proofs that cannot be answered as asked.

    Raises:
        InvalidInput: no index, too many, a negative index or size, or ``old`` with a ``size``.
    """
    if not 1 <= len(indexes) <= MAX_PROVED:
        raise InvalidInput(f"ask for 1 to {MAX_PROVED} entries at a time")
    for index in indexes:
        _require_count(index, "entry index")
    if size is not None:
        _require_count(size, "tree size")
        if old is not None:
            raise InvalidInput("old goes without size: the proofs are then in the current tree")
    if old is not None:
        _require_count(old, "old tree size")


def _require_count(value: object, what: str) -> None:
    if type(value) is not int or not 0 <= value <= _MAX_INDEX:
        raise InvalidInput(f"{what} must be an integer between 0 and {_MAX_INDEX}")


def _require_contiguous(rows: Sequence[tuple[int, bytes]], start: int) -> None:
    for offset, (index, _h) in enumerate(rows):
        if index != start + offset:
            raise _hole(start + offset)


def _hole(index: int) -> LedgerInvalid:
    return LedgerInvalid(
        f"ledger entry {index} is missing from the store (entries were deleted); "
        "restore the database from a backup, then run 'gsomia ledger verify'"
    )


def _entry_dict(row: StoredEntry) -> dict[str, Any]:
    # Lazy verification of the one entry served: never hand out an entry that does not
    # hash to its leaf (RFC 9162 §2.1.1).
    if leaf_hash(row.body) != row.leaf_hash:
        raise LedgerInvalid(
            f"ledger entry {row.index} does not match its leaf hash (the store was altered); run 'gsomia ledger verify'"
        )
    try:
        entry = json.loads(row.body)
    except ValueError as e:
        raise LedgerInvalid(f"ledger entry {row.index} is not valid JSON (the store was altered)") from e
    return {
        "index": row.index,
        "entry": entry,
        "body": b64(row.body),
        "leaf_hash": b64(row.leaf_hash),
        "recorded_at": row.recorded_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
