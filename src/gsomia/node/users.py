"""The node's officers: accounts, roles, passwords, sessions, CSRF tokens and login throttling.

- Passwords are hashed with Argon2id (RFC 9106) by ``argon2-cffi``, a maintained binding of the
  reference implementation, with its default parameters (64 MiB, 3 passes, 4 lanes: RFC 9106
  §4's second recommended option); a hash made with older parameters is re-made at the next
  login. An unknown user is checked against a dummy hash, so the answer takes as long.
- A session is 256 random bits given to the browser in an HttpOnly, SameSite=Strict cookie;
  the store keeps only its SHA-256. Each session has its own CSRF token, which every request
  that changes something must echo in ``X-CSRF-Token`` (the synchroniser-token pattern of
  OWASP's CSRF prevention cheat sheet, on top of SameSite). Sessions end after
  :data:`IDLE` without a request and :data:`LIFETIME` after login, at logout, and at once
  when the user is revoked (every request reads the session from the store).
- Login attempts are throttled: after :data:`MAX_FAILURES` failures within :data:`WINDOW`
  for one username, or from one client address, further attempts are refused (429) until
  the oldest failure leaves the window. The username's throttle spares the addresses the
  user logged in from within :data:`KNOWN` (each still held by its own failures): otherwise
  anyone could keep an officer out for good with five wrong passwords a quarter of an hour.
- Failed logins are written to the audit log (``login_failed``: the username tried, escaped and
  cut to 64 characters, the address, console or TAXII, and why), never the password. Only an
  attempt the throttle admitted is written, so at most :data:`MAX_FAILURES` a window per
  username and per address; the attempts the throttle refuses are summarised, per address (or
  per username, when only the username holds them) and window: the first is written at once
  (``login_throttled``), and the number of all of them when the window has ended
  (``login_throttled_summary``).
- Passwords are compared in Unicode normalisation form NFKC (NIST SP 800-63B §5.1.1.2): the
  same password typed as composed or decomposed characters is the same password.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, RowMapping, delete, func, insert, select, update

from gsomia.errors import Conflict, GsomiaError, InvalidInput, NotAuthenticated, NotPermitted, UnknownEntity
from gsomia.node.audit import SYSTEM, AuditLog, shown
from gsomia.node.store import NodeStore, iso_now, login_failures, login_known, login_refusals, sessions, users

__all__ = [
    "HASHING_AT_ONCE",
    "IDLE",
    "KNOWN",
    "LIFETIME",
    "MAX_FAILURES",
    "MAX_PASSWORD",
    "WINDOW",
    "LoginThrottled",
    "Role",
    "Session",
    "UserService",
]

IDLE = timedelta(minutes=30)
LIFETIME = timedelta(hours=12)
AHEAD = timedelta(seconds=30)
"""How far after the node's clock a session may have been made or last seen: more, and the
clock was set back since (or was ahead then), so how long the session has lived is unknown
and it ends (else setting the clock back a day would keep every session a day longer)."""
MAX_FAILURES = 5
WINDOW = timedelta(minutes=15)
KNOWN = timedelta(days=30)
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # characters, as the console's login form takes
HASHING_AT_ONCE = 4
TRIED = 10  # usernames (or addresses) a summary of throttled refusals names, at most
_USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")


class Role(IntEnum):
    """What an officer may do; each role has everything of the lower ones (docs/node.md)."""

    OFFICER = 1
    APPROVER = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> Role:
        """A role by name.

        Raises:
            InvalidInput: not officer, approver or admin.
        """
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise InvalidInput(f"role {text!r}: give officer, approver or admin") from None

    @property
    def label(self) -> str:
        """The role's name as users see it."""
        return self.name.lower()


class LoginThrottled(GsomiaError):
    """Too many failed logins for this username or from this address; try again later."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many failed logins: try again in {retry_after} seconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """A logged-in officer."""

    username: str
    role: Role
    csrf: str
    token_sha256: str

    def require(self, role: Role) -> None:
        """Raise unless the session's role is at least ``role``.

        Raises:
            NotPermitted: the role is too low.
        """
        if self.role < role:
            raise NotPermitted(f"this needs the {role.label} role; {self.username} is {self.role.label}")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class UserService:
    """Accounts and sessions, in the node's encrypted store."""

    def __init__(self, store: NodeStore, *, hasher: PasswordHasher | None = None) -> None:
        self.store = store
        self.audit = AuditLog(store)
        self._hasher = hasher or PasswordHasher()
        # Each Argon2 computation holds its memory (64 MiB) while it runs: at most
        # HASHING_AT_ONCE at a time, or logins sent at once from many addresses would take
        # one each per server thread (gigabytes) before the throttle counted them.
        self._hashing = threading.BoundedSemaphore(HASHING_AT_ONCE)
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def dummy_check(self, password: str) -> None:
        """The work of a password check, for a user that does not exist or may not log in, so
        that the answer takes as long as for one that does.

        Raises:
            VerificationError: always (the dummy hash is of no password anyone has).
        """
        self._verify(self._dummy, password + "\x00")

    def _verify(self, hashed: str, password: str) -> bool:
        """Argon2 verification, at most :data:`HASHING_AT_ONCE` at a time.

        Raises:
            VerificationError: the password is not the hash's.
            InvalidHashError: not an Argon2 hash.
        """
        with self._hashing:
            return self._hasher.verify(hashed, password)

    def _hash(self, password: str) -> str:
        """An Argon2id hash, at most :data:`HASHING_AT_ONCE` at a time."""
        with self._hashing:
            return self._hasher.hash(password)

    # --- accounts ----------------------------------------------------------------------------------

    def add(self, username: str, password: str, role: Role, *, by: str) -> dict[str, Any]:
        """Create an account.

        Raises:
            InvalidInput: a malformed username, or a password shorter than 12 characters, longer
                than 1024, only spaces or holding a control character.
            Conflict: the username exists (revoked accounts keep their name).
        """
        if not _USERNAME.fullmatch(username):  # match's $ also matches before a final newline
            raise InvalidInput(
                f"username {username!r}: 2 to 64 characters, lower-case letters, digits, '.', '_' or '-', a letter first"
            )
        if len(password) > MAX_PASSWORD:
            raise InvalidInput(f"a password has at most {MAX_PASSWORD} characters")
        password = _normal(password)
        if len(password) < MIN_PASSWORD:
            raise InvalidInput(f"a password has at least {MIN_PASSWORD} characters")
        if len(password) > MAX_PASSWORD:
            raise InvalidInput(f"a password has at most {MAX_PASSWORD} characters (after Unicode NFKC)")
        if not password.strip() or any(unicodedata.category(ch) == "Cc" for ch in password):
            raise InvalidInput("a password is not only spaces and has no control characters (tab, newline, NUL)")
        hashed = self._hash(password)
        with self.store.write() as c:
            if c.execute(select(users.c.username).where(users.c.username == username)).first() is not None:
                raise Conflict(f"user {username!r} exists")
            c.execute(
                insert(users).values(
                    username=username, role=role.label, password_hash=hashed, created_at=iso_now(), created_by=by
                )
            )
        return self.get(username)

    def get(self, username: str) -> dict[str, Any]:
        """One account (never its hash).

        Raises:
            UnknownEntity: no such user.
        """
        with self.store.read() as c:
            row = c.execute(select(users).where(users.c.username == username)).mappings().first()
        if row is None:
            raise UnknownEntity(f"no user {username!r}")
        return _user(row)

    def all(self) -> list[dict[str, Any]]:
        """Every account, revoked ones included."""
        with self.store.read() as c:
            rows = c.execute(select(users).order_by(users.c.username)).mappings().all()
        return [_user(r) for r in rows]

    def revoke(self, username: str) -> dict[str, Any]:
        """Revoke an account and end its sessions at once (idempotent).

        Raises:
            UnknownEntity: no such user.
            NotPermitted: the last active admin (counted in the transaction that revokes, so
                two admins revoking each other at once cannot both succeed).
        """
        with self.store.write() as c:
            found = c.execute(select(users.c.revoked_at, users.c.role).where(users.c.username == username)).first()
            if found is None:
                raise UnknownEntity(f"no user {username!r}")
            if found[0] is None and found[1] == "admin":
                admins = c.execute(
                    select(func.count()).where(users.c.role == "admin", users.c.revoked_at.is_(None))
                ).scalar_one()
                if int(admins) <= 1:
                    raise NotPermitted("this is the last active admin; add another admin first")
            if found[0] is None:
                c.execute(update(users).where(users.c.username == username).values(revoked_at=iso_now()))
            c.execute(delete(sessions).where(sessions.c.username == username))
        return self.get(username)

    # --- sessions ----------------------------------------------------------------------------------

    def login(self, username: str, password: str, *, client: str, now: datetime | None = None) -> tuple[str, Session]:
        """Check a password and open a session: the cookie value and the session.

        Raises:
            LoginThrottled: too many recent failures for this username or this address.
            NotAuthenticated: a wrong password, an unknown or a revoked user (one answer for all).
        """
        at = now or datetime.now(UTC)
        row, attempt, new_hash = self._authenticate(username, password, client, at, via="console")
        token = secrets.token_urlsafe(32)
        session = Session(
            username=username,
            role=Role.parse(str(row["role"])),
            csrf=secrets.token_urlsafe(32),
            token_sha256=_digest(token),
        )
        with self.store.write() as c:
            self._succeeded(c, row, attempt, client=client, at=at, new_hash=new_hash)
            c.execute(
                insert(sessions).values(
                    token_sha256=session.token_sha256,
                    username=username,
                    csrf=session.csrf,
                    created_at=at.isoformat(),
                    last_seen=at.isoformat(),
                    client=client[:64],
                )
            )
        return token, session

    def check(self, username: str, password: str, *, client: str, now: datetime | None = None) -> Role:
        """Check a password as :meth:`login` does, under the same throttle, without opening a
        session (TAXII's HTTP Basic): the user's role.

        Raises:
            LoginThrottled: too many recent failures for this username or this address.
            NotAuthenticated: a wrong password, an unknown or a revoked user (one answer for all).
        """
        at = now or datetime.now(UTC)
        row, attempt, new_hash = self._authenticate(username, password, client, at, via="taxii")
        with self.store.write() as c:
            self._succeeded(c, row, attempt, client=client, at=at, new_hash=new_hash)
        return Role.parse(str(row["role"]))

    def held(self, username: str, *, client: str, now: datetime | None = None) -> int:
        """How long logins for this username or from this address must wait (0: not throttled),
        reserving nothing: for a password already checked (TAXII remembers one for a while),
        which must not get past a throttle that holds every other attempt. A refusal is counted
        as the throttle's refusals are (see :meth:`_refused`)."""
        at = now or datetime.now(UTC)
        with self.store.read() as c:
            wait = _wait(c, _holding(c, username, client, at), at)
        if wait:
            with self.store.write() as c:
                waits = _waits(c, _holding(c, username, client, at), at)
                if any(waits.values()):
                    self._refused(c, username, client, waits, at, via="taxii")
        return wait

    def settle(self, *, now: datetime | None = None) -> None:
        """Write the summary of every window of throttled refusals that has ended (the audit
        log's readers call this first, so that it is complete up to the last quarter of an hour)."""
        at = now or datetime.now(UTC)
        ended = login_refusals.c.first_at < (at - WINDOW).isoformat()
        with self.store.read() as c:
            if c.execute(select(login_refusals.c.subject).where(ended).limit(1)).first() is None:
                return
        with self.store.write() as c:
            self._settle(c, at)

    def _settle(self, c: Connection, at: datetime) -> None:
        """Summarise and forget the throttled refusals of every window that has ended."""
        ended = login_refusals.c.first_at < (at - WINDOW).isoformat()
        for row in c.execute(select(login_refusals).where(ended).order_by(login_refusals.c.first_at)).mappings().all():
            self._summarise(c, row)
        c.execute(delete(login_refusals).where(ended))

    def _summarise(self, c: Connection, row: RowMapping) -> None:
        """One audit row for a window of throttled refusals: how many, when, and the usernames
        (or addresses) refused. A window of one refusal has its own row already."""
        if int(row["count"]) <= 1:
            return
        kind, _, value = str(row["subject"]).partition(":")
        held = "address" if kind == "addr" else "username"
        detail = {
            "held": held,
            "refused": int(row["count"]),
            "first": row["first_at"],
            "last": row["last_at"],
            ("usernames" if held == "address" else "addresses"): json.loads(str(row["tried"])),
        }
        self.audit.record(SYSTEM, "login_throttled_summary", shown(value), detail, c)

    def _refused(
        self, c: Connection, username: str, client: str, waits: dict[str, int], at: datetime, *, via: str
    ) -> None:
        """Count a refusal of the throttle against what held it: the address when it does (one
        count for every username tried from it), else the username. The first refusal of a
        window is written to the audit log at once, the others counted for its summary: an
        attacker refused a million times a quarter of an hour adds two rows, not a million."""
        held = [subject for subject, wait in waits.items() if wait]
        subject = held[-1]  # _holding puts the address last
        other = shown(username) if subject.startswith("addr:") else shown(client)
        row = c.execute(select(login_refusals).where(login_refusals.c.subject == subject)).mappings().first()
        if row is not None and str(row["first_at"]) >= (at - WINDOW).isoformat():
            tried = json.loads(str(row["tried"]))
            if other not in tried and len(tried) < TRIED:
                tried.append(other)
            c.execute(
                update(login_refusals)
                .where(login_refusals.c.subject == subject)
                .values(count=int(row["count"]) + 1, last_at=at.isoformat(), tried=json.dumps(tried))
            )
            return
        if row is not None:
            self._summarise(c, row)
            c.execute(delete(login_refusals).where(login_refusals.c.subject == subject))
        iso = at.isoformat()
        c.execute(
            insert(login_refusals).values(
                subject=subject, first_at=iso, last_at=iso, count=1, tried=json.dumps([other])
            )
        )
        detail = {
            "via": via,
            "held": "address" if subject.startswith("addr:") else "username",
            "retry_after": max(waits.values()),
        }
        self.audit.record(shown(username), "login_throttled", shown(client), detail, c)

    def _authenticate(
        self, username: str, password: str, client: str, at: datetime, *, via: str
    ) -> tuple[RowMapping, list[int], str | None]:
        """The account row of a right password, the attempt's places in the window, and the
        hash to store instead (None: the stored hash is current).

        Raises:
            LoginThrottled: too many recent failures for this username or this address.
            NotAuthenticated: a wrong password, an unknown or a revoked user (the attempt stays
                a failure).
        """
        wait, attempt = self._admit(username, client, at, via=via)
        if wait:
            raise LoginThrottled(wait)
        if len(password) > MAX_PASSWORD:  # no account has one: refused before any work on it
            self._failed(username, client, via=via, reason="password over 1024 characters")
            raise NotAuthenticated("wrong username or password")
        with self.store.read() as c:
            row = c.execute(select(users).where(users.c.username == username)).mappings().first()
        normal = _normal(password)
        # A hash made before passwords were normalised is of the password as typed: tried
        # second, for everyone alike (an unknown user too), so the work says nothing of the user.
        forms = [normal] if normal == password else [normal, password]
        matched: str | None = None
        for form in forms:
            try:
                if row is None or row["revoked_at"] is not None:
                    self.dummy_check(form)
                elif self._verify(str(row["password_hash"]), form):
                    matched = form
                    break
            except (VerificationError, InvalidHashError):
                continue
        if matched is None or row is None:
            reason = "unknown user" if row is None else "revoked user" if row["revoked_at"] else "wrong password"
            self._failed(username, client, via=via, reason=reason)
            raise NotAuthenticated("wrong username or password")  # the attempt stays a failure
        stale = matched != normal or self._hasher.check_needs_rehash(str(row["password_hash"]))
        return row, attempt, self._hash(normal) if stale else None  # hashed before the write lock

    def _failed(self, username: str, client: str, *, via: str, reason: str) -> None:
        """Write a failed attempt the throttle admitted to the audit log (never its password)."""
        self.audit.record(shown(username), "login_failed", shown(client), {"via": via, "reason": reason})

    def _succeeded(
        self, c: Connection, row: RowMapping, attempt: list[int], *, client: str, at: datetime, new_hash: str | None
    ) -> None:
        """A right password: the username's failures made from this address are forgiven (not
        those from elsewhere: a login from a known address, which their throttle does not hold,
        must not give whoever made them their places back), the attempt gives its places back,
        the address is remembered as the user's, and a hash made with older parameters (or of
        a password as typed, not normalised) is made again."""
        username = str(row["username"])
        user, addr = _subjects(username, client)
        # each attempt's failures are recorded as a pair, the username's id just before the address's
        from_here = select(login_failures.c.id - 1).where(login_failures.c.subject == addr)
        c.execute(delete(login_failures).where(login_failures.c.subject == user, login_failures.c.id.in_(from_here)))
        c.execute(delete(login_failures).where(login_failures.c.id.in_(attempt)))
        known = (login_known.c.username == username) & (login_known.c.client == _known_as(client))
        c.execute(delete(login_known).where(known))
        c.execute(insert(login_known).values(username=username, client=_known_as(client), at=at.isoformat()))
        if new_hash is not None:
            c.execute(update(users).where(users.c.username == username).values(password_hash=new_hash))

    def _admit(self, username: str, client: str, at: datetime, *, via: str) -> tuple[int, list[int]]:
        """How long the attempt must wait (0: not throttled) and, when admitted, the ids of the
        failures recorded for it (against its username and its address) before its password is
        checked: in the transaction that counts them, so that attempts made at once each take
        a place in the window and no more than :data:`MAX_FAILURES` are ever checked (a
        successful login removes its own)."""
        with self.store.write() as c:
            c.execute(delete(login_failures).where(login_failures.c.at < (at - WINDOW).isoformat()))
            c.execute(delete(login_known).where(login_known.c.at < (at - KNOWN).isoformat()))
            self._settle(c, at)
            waits = _waits(c, _holding(c, username, client, at), at)
            wait = max(waits.values(), default=0)
            if wait:
                self._refused(c, username, client, waits, at, via=via)
                return wait, []
            ids: list[int] = []
            for subject in _subjects(username, client):  # in this order: see _succeeded
                key = c.execute(insert(login_failures).values(subject=subject, at=at.isoformat())).inserted_primary_key
                if key is not None:
                    ids.append(int(key[0]))
        return 0, ids

    def session(self, token: str | None, *, now: datetime | None = None) -> Session:
        """The live session of a cookie value, touched.

        Raises:
            NotAuthenticated: no cookie, an unknown or expired session, or a revoked user.
        """
        if not token:
            raise NotAuthenticated("log in first (POST /api/session)")
        at = now or datetime.now(UTC)
        digest = _digest(token)
        with self.store.read() as c:
            row = (
                c.execute(
                    select(sessions, users.c.role, users.c.revoked_at)
                    .join(users, users.c.username == sessions.c.username)
                    .where(sessions.c.token_sha256 == digest)
                )
                .mappings()
                .first()
            )
        if row is None or row["revoked_at"] is not None:
            raise NotAuthenticated("the session has ended: log in again")
        created = datetime.fromisoformat(str(row["created_at"]))
        seen = datetime.fromisoformat(str(row["last_seen"]))
        if not _live(at, created, seen):
            self.logout(token)
            raise NotAuthenticated("the session has expired: log in again")
        if at - seen > timedelta(seconds=30):  # touch at most twice a minute
            with self.store.write() as c:
                c.execute(update(sessions).where(sessions.c.token_sha256 == digest).values(last_seen=at.isoformat()))
        return Session(
            username=str(row["username"]), role=Role.parse(str(row["role"])), csrf=str(row["csrf"]), token_sha256=digest
        )

    def alive(self, token_sha256: str, *, now: datetime | None = None) -> bool:
        """Whether a session (by its SHA-256) is still live: not ended, its user not revoked,
        neither idle nor older than its lifetime. Unlike :meth:`session` it does not touch the
        session: an open event stream is not a request (read from the store, so a revocation
        by another process is seen)."""
        at = now or datetime.now(UTC)
        with self.store.read() as c:
            row = (
                c.execute(
                    select(sessions.c.created_at, sessions.c.last_seen, users.c.revoked_at)
                    .join(users, users.c.username == sessions.c.username)
                    .where(sessions.c.token_sha256 == token_sha256)
                )
                .mappings()
                .first()
            )
        if row is None or row["revoked_at"] is not None:
            return False
        created = datetime.fromisoformat(str(row["created_at"]))
        seen = datetime.fromisoformat(str(row["last_seen"]))
        return _live(at, created, seen)

    def logout(self, token: str) -> str:
        """End a session (idempotent): its SHA-256, as :class:`Session` names it."""
        digest = _digest(token)
        with self.store.write() as c:
            c.execute(delete(sessions).where(sessions.c.token_sha256 == digest))
        return digest


def _subjects(username: str, client: str) -> list[str]:
    """What the throttle counts an attempt against: its username and its client's address."""
    return [f"user:{username[:100]}", f"addr:{client}"]


def _holding(c: Connection, username: str, client: str, at: datetime) -> list[str]:
    """What may hold an attempt: its address, and its username unless the user logged in from
    this address within :data:`KNOWN` (failures from elsewhere must not keep them out)."""
    user, addr = _subjects(username, client)
    known = c.execute(
        select(login_known.c.at).where(
            login_known.c.username == username[:64],
            login_known.c.client == _known_as(client),
            login_known.c.at >= (at - KNOWN).isoformat(),
        )
    ).first()
    return [addr] if known is not None else [user, addr]


def _known_as(client: str) -> str:
    """An address as ``login_known`` keeps it (at most 64 characters): a longer one by its
    SHA-256, not its first 64 characters, which another address could share."""
    return client if len(client) <= 64 else hashlib.sha256(client.encode("utf-8", "replace")).hexdigest()


def _normal(password: str) -> str:
    """A password in Unicode normalisation form NFKC: as a user means it, however typed."""
    return unicodedata.normalize("NFKC", password)


def _wait(c: Connection, subjects: list[str], at: datetime) -> int:
    """How long the subjects must wait (0: not throttled): until enough of the failures of the
    most held one have left the window."""
    return max(_waits(c, subjects, at).values(), default=0)


def _waits(c: Connection, subjects: list[str], at: datetime) -> dict[str, int]:
    """How long each subject must wait (0: not throttled): until enough of its failures have
    left the window."""
    since = (at - WINDOW).isoformat()
    waits: dict[str, int] = {}
    for subject in subjects:
        times = (
            c.execute(
                select(login_failures.c.at)
                .where(login_failures.c.subject == subject, login_failures.c.at >= since)
                .order_by(login_failures.c.at)
            )
            .scalars()
            .all()
        )
        waits[subject] = 0
        if len(times) >= MAX_FAILURES:
            oldest = datetime.fromisoformat(times[len(times) - MAX_FAILURES])
            waits[subject] = int((oldest + WINDOW - at).total_seconds()) + 1
    return waits


def _user(row: RowMapping) -> dict[str, Any]:
    return {
        "username": row["username"],
        "role": row["role"],
        "created_at": row["created_at"],
        "created_by": row["created_by"],
        "revoked_at": row["revoked_at"],
        "active": row["revoked_at"] is None,
    }


def _live(at: datetime, created: datetime, seen: datetime) -> bool:
    """Whether a session made at ``created`` and last seen at ``seen`` is live at ``at``:
    neither idle nor past its lifetime, and neither instant after ``at`` beyond :data:`AHEAD`."""
    return seen - at <= AHEAD and created - at <= AHEAD and at - seen <= IDLE and at - created <= LIFETIME
