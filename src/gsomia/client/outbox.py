"""The originator's outbox: every signed submission is kept until the exchange has answered it.

A report is signed once. Its ``created`` instant is part of what is signed, so signing the
same draft again makes another report, which the exchange refuses under the same id (409):
when an answer is lost (a timeout, a dropped connection, a crash of this machine), the only
safe retry is the same bytes. So the client writes the signed submission body — report,
signature, key fingerprint; never a private key — to ``OUTBOX/<PARTY>/<ID>.json`` (mode 0600,
written whole or not at all, synced) *before* sending it, and removes it once the exchange has
answered 200 or 201, or has refused it for good (the same bytes would be refused again). Running the same command with the same ``--id`` again finds it and
resends it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gsomia.codec import b64decode
from gsomia.errors import InvalidInput

__all__ = ["Outbox", "Spooled"]


@dataclass(frozen=True, slots=True)
class Spooled:
    """A signed submission kept in the outbox: the exact bytes to send, and where they are."""

    path: Path
    body: bytes

    def report(self) -> dict[str, Any]:
        """The signed report object.

        Raises:
            InvalidInput: the file is not a submission body.
        """
        try:
            doc = json.loads(self.body)
            report = doc["report"]
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidInput(f"{self.path} is not a signed submission; move it away and sign again") from e
        if not isinstance(report, dict):
            raise InvalidInput(f"{self.path} is not a signed submission; move it away and sign again")
        return report

    def payload_digest(self) -> str:
        """SHA-256 (hex) of the payload it carries.

        Raises:
            InvalidInput: the file is not a submission body.
        """
        return sha256(b64decode(str(self.report().get("payload", "")), "payload")).hexdigest()


class Outbox:
    """Signed submissions not yet answered, one file each, per originator."""

    def __init__(self, folder: Path) -> None:
        """Use ``folder`` (created, mode 0700, on the first write)."""
        self.folder = folder

    def path(self, party: str, report_id: str) -> Path:
        """Where the submission of ``party``'s report ``report_id`` is kept.

        Raises:
            InvalidInput: an empty report id.
        """
        if not report_id:
            raise InvalidInput("a report id cannot be empty")
        # quoted: an id is checked by the exchange, not here, and must never name another path
        return self.folder / quote(party, safe="") / f"{quote(report_id, safe='')}.json"

    def find(self, party: str, report_id: str) -> Spooled | None:
        """The kept submission of ``party``'s report ``report_id``, or None.

        Raises:
            InvalidInput: it exists but cannot be read.
        """
        path = self.path(party, report_id)
        try:
            return Spooled(path, path.read_bytes())
        except FileNotFoundError:
            return None
        except OSError as e:
            raise InvalidInput(f"cannot read {path}: {e.strerror}") from e

    def keep(self, party: str, report_id: str, body: bytes) -> Spooled:
        """Write ``body`` for ``party``'s report ``report_id``: mode 0600, whole, synced.

        Raises:
            InvalidInput: the outbox cannot be written.
        """
        path = self.path(party, report_id)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)
            _fsync_dir(path.parent)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise InvalidInput(f"cannot keep the signed report in {path}: {e.strerror}") from e
        return Spooled(path, body)

    def remove(self, spooled: Spooled) -> None:
        """Forget an answered submission (a missing file is fine)."""
        with contextlib.suppress(FileNotFoundError):
            spooled.path.unlink()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
