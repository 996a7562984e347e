"""One error root for the whole product, with subclasses by cause.

Transport mappings live at the edges: HTTP status codes in ``gsomia.api.problems``,
exit codes in ``gsomia.cli``. Nothing here knows about either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class GsomiaError(Exception):
    """Root of every error gsomia raises on purpose."""


class InvalidInput(GsomiaError):
    """A value supplied by a user or a file is malformed (bad instant, bad id, bad event)."""


class KeysRetired(InvalidInput):
    """Public keys that were registered before and have since been retired (never current again)."""


class UnknownEntity(GsomiaError):
    """A named party, agreement, level, topic, event or object does not exist."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a document, located by file and line when known."""

    message: str
    path: str = ""
    line: int | None = None
    file: str = ""

    def __str__(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        loc = f" ({self.path})" if self.path else ""
        return f"{where}: {self.message}{loc}"


class ValidationFailed(GsomiaError):
    """A document (scenario, what-if) has one or more problems; nothing was loaded."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        first = str(self.problems[0]) if self.problems else "invalid document"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(first + more)


class ReleaseDenied(GsomiaError):
    """``enforce`` refused a release; ``reasons`` names every rule that failed."""

    def __init__(self, reasons: Sequence[object]) -> None:
        self.reasons = tuple(reasons)
        super().__init__("; ".join(str(r) for r in self.reasons) or "release denied")


class StorageError(GsomiaError):
    """The database failed or holds something unexpected."""


class Conflict(GsomiaError):
    """The request conflicts with what is stored (e.g. a used id with other content)."""


class Busy(GsomiaError):
    """What an action was decided on (the record, the keys it wraps to) kept changing under it
    until the exchange gave up: nothing was written, and the same request may be sent again
    after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyRequests(GsomiaError):
    """The caller did this too often of late (a party registering key sets): refused, nothing
    written, until ``retry_after`` seconds from now."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotPermitted(GsomiaError):
    """The principal may not do this (wrong role, or acting for another party)."""


class NotAuthenticated(GsomiaError):
    """No valid credentials were presented."""


class BadSignature(GsomiaError):
    """A signature did not verify. Deliberately carries no detail."""

    def __init__(self) -> None:
        super().__init__("signature verification failed")


class DecryptionFailed(GsomiaError):
    """A ciphertext could not be opened. Deliberately carries no detail."""

    def __init__(self) -> None:
        super().__init__("decryption failed")


class LedgerInvalid(GsomiaError):
    """The ledger, a proof or a checkpoint does not verify."""


class PayloadTooLarge(GsomiaError):
    """A request body or payload exceeds the configured limit."""


class ExchangeUnreachable(GsomiaError):
    """The exchange could not be reached (refused connection, name resolution, TLS, timeout,
    a broken stream). Nothing is known to have happened on the server."""


class ExchangeError(GsomiaError):
    """The exchange answered with an error that names no cause gsomia knows (an internal
    error, or an answer that is not a problem document)."""
