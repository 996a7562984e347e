"""What every exchange use case shares: the context (store, writer, ledger, identity, clock,
record, key-encryption key, wake-ups), delivery wraps, and the rows an action accumulates.

The use cases live beside this module: :mod:`.submissions`, :mod:`.relays` and
:mod:`.standing` (consents), :mod:`.deliveries` (deliveries and the inbox),
:mod:`.incidents` (Art. 17) and :mod:`.operator` (agreement events, exercise clock).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from gsomia.crypto import content_key_aad, delivery_info, open_at_rest, seal_at_rest, wrap_key
from gsomia.domain.instants import supported, utc_iso
from gsomia.errors import DecryptionFailed, InvalidInput, NotAuthenticated, StorageError
from gsomia.services.exchange.access import Principal
from gsomia.services.exchange.clock import ExchangeClock
from gsomia.services.exchange.identity import IdentityService
from gsomia.services.exchange.notify import Notifier
from gsomia.services.exchange.records import RecordCache
from gsomia.storage.channel import announce
from gsomia.storage.exchange import ExchangeRepo, NewInboxItem, NewRow, Tx
from gsomia.storage.store import Store, Versions
from gsomia.storage.writer import GroupCommitter, Outcome

log = logging.getLogger(__name__)

__all__ = [
    "UTC_ZONE",
    "DeliveryWrap",
    "ExchangeConfig",
    "ExchangeContext",
    "Ledger",
    "Pending",
    "Stale",
    "attempts",
    "backoff",
    "new_id",
    "report_key",
    "split_report_key",
]

UTC_ZONE = "UTC"


class Ledger(Protocol):
    """What the exchange needs from the ledger: append an entry in the caller's transaction,
    saying which parties may read it, and let more parties read an entry later."""

    def append(self, session: Any, entry: Mapping[str, Any], *, parties: Sequence[str]) -> int:
        """Append ``entry``, readable by ``parties`` (and auditors and operators); return its index."""
        ...

    def share(self, session: Any, index: int, parties: Sequence[str]) -> None:
        """Let ``parties`` read entry ``index`` too."""
        ...


class Stale(Exception):
    """What an action was prepared on (the record, the keys) changed before its transaction: the
    action must be prepared again on the record as committed. Never reaches a caller: each use
    case prepares again (a few times at most) when it sees it."""


def report_key(originator: str, report_id: str) -> str:
    """The stored key of a report: its originator and the originator's own id (``JPN/R-1``).
    Report ids are the originator's: two parties may use the same id."""
    return f"{originator}/{report_id}"


def split_report_key(key: str) -> tuple[str, str]:
    """``(originator, id)`` of a stored report key."""
    originator, _, report_id = key.partition("/")
    return originator, report_id


_INSTANT = "gsomia.exchange.instant"
_CURRENT_KEYS = "gsomia.exchange.current_keys"

_ATTEMPTS = 5
"""How many times an action is prepared and handed to the writer before it is answered
:class:`~gsomia.errors.Busy` (what it was prepared on kept changing)."""

_jitter = secrets.SystemRandom()


def attempts() -> range:
    """The attempts of an action that is prepared again when it finds itself :class:`Stale`."""
    return range(_ATTEMPTS)


def backoff(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt`` + 1 of an action found stale: a random
    fraction of 5 ms doubled per attempt (up to 40 ms), so actions that found the same change
    are not prepared again in lockstep, and a burst of changes is over before the next try;
    none after the last attempt."""
    if attempt >= _ATTEMPTS - 1:
        return 0.0
    return _jitter.uniform(0.0, 0.005 * 2**attempt)


class _IdSource:
    """Random ids from the OS CSPRNG, read 4 KiB at a time (one system call per ~400 ids)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""

    def take(self, n: int) -> bytes:
        with self._lock:
            if len(self._buffer) < n:
                self._buffer = secrets.token_bytes(4096)
            out, self._buffer = self._buffer[:n], self._buffer[n:]
            return out


_ids = _IdSource()


def new_id(prefix: str) -> str:
    """A fresh object id such as ``d-3f9c…`` (80 random bits: unique, not secret)."""
    return f"{prefix}-{_ids.take(10).hex()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangeConfig:
    """Exchange settings: how long a consent request waits, how often expiry is swept, how
    often a party may register keys."""

    consent_ttl: timedelta = timedelta(hours=72)
    sweep_seconds: float = 30.0
    max_recipients: int = 64
    max_payload_chars: int = 1 << 20
    """The longest payload (base64 text) of one report: what the request size limit lets
    through alone, held to in a batch too."""
    stream_poll_seconds: float = 1.0
    """How often an inbox stream re-reads the store (and checks its token) without a wake-up."""
    key_registrations: int = 6
    """The most key sets a party may register itself within :attr:`key_window` (an operator's
    registrations for it neither count nor are ever refused)."""
    key_window: timedelta = timedelta(hours=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryWrap:
    """A content key wrapped to one party for one delivery id."""

    delivery_id: str
    party: str
    wrapped: bytes = field(repr=False)
    profile: str
    fingerprint: str


EXERCISE_DATABASE = (
    "this database holds an exercise (an exercise clock is stored in it): serve it in exercise mode "
    "(--exercise-clock; the stored clock is kept), or give the live database; decisions outside an exercise "
    "are never made on a rehearsal's record"
)

WHATIF_EXERCISE_OFFSET_US = 0
"""The exercise clock stored by an exercise on a what-if alone, which runs at the system clock:
it marks the database as an exercise's like any other exercise clock."""


class ExchangeContext:
    """What every exchange use case shares: storage, the writer, ledger, keys, clock, record."""

    def __init__(
        self,
        *,
        store: Store,
        committer: GroupCommitter,
        ledger: Ledger,
        identity: IdentityService,
        clock: ExchangeClock,
        records: RecordCache,
        kek: Callable[[], bytes],
        notifier: Notifier,
        config: ExchangeConfig,
    ) -> None:
        self.store = store
        self.committer = committer
        self.ledger = ledger
        self.identity = identity
        self.clock = clock
        self.records = records
        self._kek_source = kek
        self._kek: bytes | None = None
        self.notifier = notifier
        self.config = config
        self._latest: datetime | None = None
        """The latest transaction instant this process has used (an event recorded "now" moves
        it just past its transaction's): what is prepared is decided no earlier."""

    def __repr__(self) -> str:
        return "ExchangeContext(...)"

    def prepare_kek(self) -> None:
        """Load the key-encryption key now (creating it if the database holds nothing sealed yet),
        so that a server names a KEK it cannot use when it starts, to its operator.

        Raises:
            InvalidInput: the KEK setting or file is invalid or unsafe (the message says which).
            StorageError: the KEK file is missing while reports are sealed, or the KEK does not
                open them.
        """
        if self._kek is None:
            key = self._kek_source()
            self._check_kek(key)
            self._kek = key

    def _key(self) -> bytes:
        """The KEK for a request.

        Raises:
            StorageError: the KEK cannot be used: the exchange's own configuration, never the
                caller's input (a 503; the server's log says why, the answer names no file).
        """
        if self._kek is None:
            try:
                self.prepare_kek()
            except InvalidInput as e:
                log.error("the key-encryption key cannot be used: %s", e)  # noqa: TRY400 - a setting, not a bug
                raise StorageError(
                    "the exchange cannot use its key-encryption key (its operator finds why in the server's log); "
                    "nothing was written"
                ) from e
        assert self._kek is not None  # noqa: S101 - set by prepare_kek
        return self._kek

    def _check_kek(self, key: bytes) -> None:
        """Refuse a key-encryption key that does not open the reports already stored (the file
        lost and made anew, another ``GSOMIA_KEK``): what it sealed could never be opened with
        the key the database was written with.

        Raises:
            StorageError: it does not open a stored report's sealed key.
        """
        latest = ExchangeRepo.latest_sealed(self.store)
        if latest is None:
            return
        report, sealed, version = latest
        try:
            open_at_rest(key, sealed, content_key_aad(*split_report_key(report), version=version))
        except DecryptionFailed:
            raise StorageError(
                f"the key-encryption key does not open the stored report {report}: it is not the key this "
                "database was written with; put back exchange.kek from the backup made with it (or set GSOMIA_KEK "
                "to it). Nothing was written."
            ) from None

    def seal(self, key: str, content_key: bytes) -> bytes:
        """Seal a content key under the KEK (loaded, or created, on first use), bound to the
        report stored under ``key`` (``JPN/R-1``).

        Raises:
            StorageError: the KEK cannot be used (its setting or file is invalid, unsafe or lost).
        """
        return seal_at_rest(self._key(), content_key, content_key_aad(*split_report_key(key)))

    def unseal(self, key: str, sealed: bytes, *, version: int = 2) -> bytes:
        """Open a content key sealed by :meth:`seal` (``version`` 1: a report stored before
        report ids were the originator's).

        Raises:
            DecryptionFailed: if it does not open (another KEK, tampered row).
        """
        return open_at_rest(self._key(), sealed, content_key_aad(*split_report_key(key), version=version))

    def entry(self, kind: str, at: datetime, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A ledger entry of ``kind`` at ``at``; entries made in exercise mode say so."""
        out: dict[str, Any] = {"type": kind, **fields, "at": utc_iso(at)}
        if self.clock.exercise:
            out["exercise"] = True
        return out

    def append(self, s: Tx, kind: str, at: datetime, fields: Mapping[str, Any], *, parties: Sequence[str]) -> int:
        """Append a ledger entry of ``kind`` (see :meth:`entry`), readable by ``parties``; its index."""
        return self.ledger.append(s, self.entry(kind, at, fields), parties=parties)

    # --- inside the writer's transaction -------------------------------------------------------

    def versions(self, s: Tx) -> Versions:
        """The stored versions as this transaction sees them (read once per transaction, and
        again after an action of the same transaction moved one)."""
        return Store.versions(s)

    def bump(self, s: Tx, *names: str) -> None:
        """Move stored versions on (``record``, ``keys``, ``principals``) in this transaction."""
        Store.bump(s, *names)

    def require_record(self, s: Tx, version: str) -> None:
        """Stop with :class:`Stale` unless the record decided on (``version``, from
        :meth:`RecordCache.current`) is the record this transaction sees.

        Raises:
            Stale: the stored record changed since.
        """
        stored = str(self.versions(s).record)
        if stored != version:
            self.records.invalidate()
            raise Stale(f"the record changed ({version} → {stored})")

    def require_keys(self, s: Tx, version: int, used: Mapping[str, str | None]) -> None:
        """Stop with :class:`Stale` unless every key an action used is still its party's current
        key in this transaction: ``used`` maps each party it wrapped to (or whose signature it
        verified) to the fingerprint of that party's keys it used, or None where the party had
        none. ``version`` is the stored keys version read before those keys were: while it is
        the stored one no key changed at all and nothing is read; else the current keys of
        exactly these parties are (once per transaction and keys version), so another party's
        registration never stops the action.

        Raises:
            Stale: a party in ``used`` registered other keys since (or its first ones).
        """
        if self.versions(s).keys == version or not used:
            return
        current = self._current_fingerprints(s, used)
        changed = sorted(party for party, fingerprint in used.items() if current[party] != fingerprint)
        if changed:
            self.identity.forget_keys()
            raise Stale(f"the public keys of {', '.join(changed)} changed")

    def _current_fingerprints(self, s: Tx, parties: Iterable[str]) -> dict[str, str | None]:
        """The fingerprint of each party's current keys (None: it has none), as this
        transaction sees them; read once per transaction and stored keys version."""
        version = self.versions(s).keys
        held: tuple[int, dict[str, str | None]] | None = s.info.get(_CURRENT_KEYS)
        known = held[1] if held is not None and held[0] == version else {}
        missing = [p for p in parties if p not in known]
        if missing:
            found = ExchangeRepo.current_fingerprints(s, missing)
            known = known | {p: found.get(p) for p in missing}
            s.info[_CURRENT_KEYS] = (version, known)
        return known

    def require_principal(self, s: Tx, principal: Principal) -> None:
        """Refuse the action of a principal whose token was revoked, by any process, before this
        transaction (checked against the stored principals version, so it costs a query only
        when some token was revoked since the caller was authenticated).

        Raises:
            NotAuthenticated: the token was revoked.
        """
        if self.versions(s).principals == principal.version:
            return
        if not ExchangeRepo.principal_active(s, principal.id):
            self.identity.forget_tokens()
            raise NotAuthenticated("the token is unknown or revoked")

    def begin(self, s: Tx) -> None:
        """At the start of each writer transaction (before any action and outside their
        savepoints): read the stored versions, run on the exercise clock another process may
        have moved, and fix the transaction's instant."""
        s.info.pop(_INSTANT, None)
        Store.versions(s, lock=True)  # waits for a change committing outside the writers' turn
        self.sync_clock(s)
        self.instant(s)

    def sync_clock(self, s: Tx) -> None:
        """In exercise mode, run on the exercise clock as stored (the first process to write
        stores it, and the order of commit instants starts again from it: instants stamped
        before, in real time, are not a floor for the rehearsal's; an operator's advance moves
        it for every process). Outside exercise mode, refuse a database an exercise wrote to.

        Raises:
            StorageError: a database an exercise clock was stored in, outside exercise mode.
        """
        stored = self.versions(s).clock_offset_us
        own = self.clock.offset_us()
        if own is None:
            self._refuse_exercise(stored)
            if stored is None and self.clock.exercise:
                # an exercise on a what-if alone: its decisions are made on a changed record
                Store.set_clock_offset(s, WHATIF_EXERCISE_OFFSET_US)
            return
        if stored is None:
            Store.set_clock_offset(s, own)
            Store.restart_instants(s)
        else:
            self.clock.adopt(stored)

    def shared_clock(self) -> ExchangeClock:
        """The exchange clock as every process runs it: in exercise mode, on the offset stored in
        the database, read now (another process may have moved it since this one last wrote).
        What is shown (``/healthz``, ``GET /api/v1/exercise``, the exercise header) and what is
        previewed is then what the next decision is made at. Outside exercise mode, a database an
        exercise has since written to is refused, as writes are: what would be shown or
        previewed is live, on a rehearsal's record.

        Raises:
            StorageError: such a database; a database failure.
        """
        with self.store.reading() as s:
            stored = Store.versions(s).clock_offset_us
        if self.clock.offset_us() is None:
            self._refuse_exercise(stored)
        elif stored is not None:
            self.clock.adopt(stored)
        return self.clock

    def check_database(self) -> datetime | None:
        """At start: refuse a database an exercise wrote to outside exercise mode; in exercise
        mode, run on the exercise clock stored in it, if any (returned: an exercise under way,
        whose clock a process's own start instant does not reset; None when the clock stored is
        the one this process stored itself, as when it has just seeded the exercise database).

        Raises:
            StorageError: a database an exercise clock was stored in, outside exercise mode.
        """
        with self.store.reading() as s:
            stored = Store.versions(s).clock_offset_us
        if self.clock.offset_us() is None:
            self._refuse_exercise(stored)
            return None
        if stored is None or stored == self.clock.started_offset_us:
            # none stored yet, or the one this process stored (seeding its exercise database
            # registers the keys copied): no earlier exercise is under way
            return None
        self.clock.adopt(stored)
        return self.clock.now()

    def _refuse_exercise(self, stored: int | None) -> None:
        """For a process without an exercise clock: refuse a database an exercise wrote to
        (``stored``, its stored clock), unless this process is an exercise on a what-if alone
        and so was that one.

        Raises:
            StorageError: such a database.
        """
        if stored is None:
            return
        if not self.clock.exercise or stored != WHATIF_EXERCISE_OFFSET_US:
            raise StorageError(EXERCISE_DATABASE)

    def instant(self, s: Tx) -> datetime:
        """The instant this transaction decides and stamps at: the exchange clock, never earlier
        than the instant of any earlier commit (by this process or another), so instants run in
        commit order. One instant for every action of a transaction."""
        at: datetime | None = s.info.get(_INSTANT)
        if at is None:
            now = self.clock.now()
            last = self.versions(s).last_commit_at
            at = now if last is None or now >= last else last
            if not supported(at):
                raise StorageError(
                    f"the exchange clock reads {at.isoformat()}, outside the supported range of instants "
                    "(1900-01-01 to 2999-12-31 in UTC): nothing is decided or stamped on it"
                )
            Store.stamp(s, at)
            s.info[_INSTANT] = at
            self._seen(at)
        return at

    def stamp_after(self, s: Tx, at: datetime) -> None:
        """Make ``at`` (later than this transaction's instant) the instant no later commit, of
        this process or another, is decided before."""
        Store.stamp(s, at)
        self._seen(at)

    def _seen(self, at: datetime) -> None:
        latest = self._latest
        if latest is None or at > latest:
            self._latest = at

    def prepare_instant(self) -> datetime:
        """The instant a submission is prepared at, before the writer decides it again at its
        transaction's: the exchange clock, or the latest transaction instant this process has
        used if that is later (a clock behind another process's, or an event recorded "now"),
        so that what is prepared is what the writer will find."""
        now = self.clock.now()
        latest = self._latest
        return latest if latest is not None and latest > now else now

    def wrap_for(self, party: str, content_key: bytes) -> DeliveryWrap | None:
        """Wrap ``content_key`` to ``party``'s current key under a fresh delivery id (None if
        the party has registered no key)."""
        keys = self.identity.current_keys(party)
        if keys is None:
            return None
        did = new_id("d")
        wrapped = wrap_key(keys, content_key, delivery_info(did, party))
        return DeliveryWrap(
            delivery_id=did, party=party, wrapped=wrapped, profile=keys.profile.value, fingerprint=keys.fingerprint()
        )


class Pending:
    """The rows and wake-ups one action accumulates, written together at its end."""

    def __init__(self) -> None:
        self.rows: list[NewRow] = []
        self.notify: set[str] = set()

    def add(self, row: NewRow) -> None:
        """Queue a row."""
        self.rows.append(row)

    def inbox(self, party: str, kind: str, ref: str, body: dict[str, Any], at: datetime) -> None:
        """Queue an inbox item for ``party`` (and wake its streams after the commit)."""
        self.rows.append(NewInboxItem(party=party, kind=kind, ref=ref, body=body, created_at=at))
        self.notify.add(party)

    def flush(self, s: Tx) -> None:
        """Insert every queued row (parents first); the parties whose inboxes changed are
        announced to every process at the commit."""
        ExchangeRepo.add(s, self.rows)
        self.rows = []
        if self.notify:
            announce(s, self.notify)

    def outcome(self, ctx: ExchangeContext, value: Any) -> Outcome[Any]:
        """The action's outcome: ``value``, and the wake-ups to send after the commit."""
        parties = frozenset(self.notify)
        return Outcome(value, (lambda: ctx.notifier.publish(parties),) if parties else ())
