"""``gsomia ledger``: checkpoints, exports, proofs and verification of the exchange's ledger.

``verify`` re-derives every leaf from the entry bytes (from the local store, an export file
or a server over HTTP), rebuilds the RFC 9162 tree, checks the signed checkpoint and, given
an older checkpoint you kept (``--since``), detects rollback and forks. It names the first bad
entry, checkpoint or proof element and exits 8. Verifying an export or a proof needs no
database.

Errors and exit codes come from :mod:`gsomia.cli` (one table for the whole command line).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from gsomia.cli import common
from gsomia.cli.options import AsJson
from gsomia.client.http import ExchangeClient
from gsomia.codec import b64decode
from gsomia.crypto.ledger_key import CosignerPublicKey, LedgerKey
from gsomia.errors import ExchangeUnreachable, GsomiaError, InvalidInput, LedgerInvalid, NotAuthenticated, NotPermitted
from gsomia.ledger.audit import EntryProblem, VerifyReport, verify_entries, verify_ledger, verify_proof
from gsomia.ledger.checkpoint import b64, parse_note
from gsomia.ledger.cosignature import quorum as quorum_of
from gsomia.ledger.entries import entry_bytes
from gsomia.services.exchange.audit import RowFinding, audit_rows
from gsomia.services.ledger.service import PAGE_LIMIT, LedgerService, open_export

ledger_cli = typer.Typer(
    help="The exchange's tamper-evident ledger: signed checkpoints, exports, proofs and verification.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_PROGRESS_MIN = 10_000  # below this a progress bar only flickers


# --- checkpoint, key, export, proof ----------------------------------------------------------------


@ledger_cli.command("checkpoint")
def checkpoint_cmd(
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="Save the signed note to FILE (keep it for --since).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Print (or save) the current signed checkpoint of the local ledger (C2SP tlog-checkpoint)."""
    with common.errors():
        note = common.app().ledger.checkpoint()
        if out_file is not None:
            _write(out_file, note.encode("utf-8"))
        if as_json:
            cp, _sigs = parse_note(note)
            common.emit_json(
                {"origin": cp.origin, "size": cp.size, "root": b64(cp.root_hash), "note": note, "file": _str(out_file)}
            )
        elif out_file is None:
            sys.stdout.write(note)
        else:
            sys.stderr.write(f"saved the checkpoint to {out_file}\n")


@ledger_cli.command("key")
def key_cmd(
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="Save the key (JSON) to FILE.")] = None,
    as_json: AsJson = False,
) -> None:
    """Print the exchange's checkpoint verification key (pin it for 'ledger verify --key')."""
    with common.errors():
        key = common.app().ledger.public_key()
        if out_file is not None:
            _write(out_file, (json.dumps(key, indent=2) + "\n").encode("utf-8"))
        if as_json:
            common.emit_json(key)
        else:
            sys.stdout.write(f"{key['vkey']}\n")


@ledger_cli.command("export")
def export_cmd(
    out_file: Annotated[Path, typer.Option("--out", "-o", help="File to write (JSON lines).")],
    as_json: AsJson = False,
) -> None:
    """Write every entry and the checkpoint that covers them, for offline 'ledger verify --export'.

    The file is new, mode 0600 (it holds every party's metadata), and appears only when whole.
    '-', or a pipe or a device (/dev/stdout), is written as it goes: e.g. '-o - | ssh host ...'."""
    with common.errors():
        ledger = common.app().ledger
        count = _export_streamed(ledger, out_file)
        if count is None:
            count = _export_to_new_file(ledger, out_file)
        if as_json:
            common.emit_json({"file": str(out_file), "entries": count, "origin": ledger.origin})
        else:
            sys.stderr.write(f"wrote {count} entries and their checkpoint to {out_file}\n")


def _export_streamed(ledger: LedgerService, out_file: Path) -> int | None:
    """Export to standard output ('-') or to an existing pipe, socket or device, written as it
    goes (never replaced by a file: a rename would put a file in place of /dev/stdout); None if
    ``out_file`` is none of those.

    Raises:
        InvalidInput: it cannot be written.
    """
    if str(out_file) == "-":
        sys.stdout.flush()
        count = ledger.export(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return count
    try:
        mode = out_file.stat().st_mode
    except OSError:
        return None  # not there (or not reachable): the new file's own error says so
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    try:
        # no O_CREAT: this opens what is there; for a pipe, it waits for its reader
        fd = os.open(out_file, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise InvalidInput(f"cannot write {out_file}: {e.strerror}") from e
    with os.fdopen(fd, "wb") as fh:
        st = os.fstat(fd)
        if stat.S_ISFIFO(st.st_mode) and st.st_uid != os.getuid():
            # made under the name given, in a folder anyone may write: its owner would read
            # every party's metadata
            raise InvalidInput(f"cannot write {out_file}: it is a named pipe of another user; give a file of your own")
        if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
            raise InvalidInput(f"cannot write {out_file}: it changed while it was opened; run it again")
        try:
            return ledger.export(fh)
        except OSError as e:
            raise InvalidInput(f"cannot write {out_file}: {e.strerror}") from e


def _export_to_new_file(ledger: LedgerService, out_file: Path) -> int:
    """Export to a new file, mode 0600, renamed into place once whole.

    Raises:
        InvalidInput: it cannot be written (nothing is left of it).
    """
    # a name nobody can guess, created afresh: never a file or a link someone left there
    tmp = out_file.with_name(f".{out_file.name}.{secrets.token_hex(8)}.tmp")
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(tmp, flags, 0o600), "wb") as fh:
            count = ledger.export(fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(out_file)
    except BaseException as e:
        # a failed export (an altered store, a full disk, Ctrl-C) leaves no partial file
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise InvalidInput(f"cannot write {out_file}: {e.strerror}") from e
        raise
    return count


@ledger_cli.command("proof")
def proof_cmd(
    index: Annotated[int | None, typer.Option("--index", help="Inclusion proof of entry N.", min=0)] = None,
    size: Annotated[
        int | None, typer.Option("--size", help="...in the tree of this size (default: current).", min=0)
    ] = None,
    old: Annotated[int | None, typer.Option("--old", help="Consistency proof from this older size.", min=0)] = None,
    new: Annotated[int | None, typer.Option("--new", help="...to this size (default: current).", min=0)] = None,
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="Save the proof (JSON) to FILE.")] = None,
) -> None:
    """Print an inclusion proof (--index N) or a consistency proof (--old M) as JSON.

    At the current size the proof carries the signed checkpoint (and an inclusion proof its
    entry), so 'gsomia ledger verify --proof FILE --key KEY' checks it offline."""
    with common.errors():
        if (index is None) == (old is None):
            raise InvalidInput("give exactly one of --index N (inclusion) or --old M (consistency)")
        ledger = common.app().ledger
        if index is not None:
            doc = ledger.inclusion(index, size)
            doc["entry"] = ledger.entry(index)["entry"]
        else:
            assert old is not None  # noqa: S101 - checked above
            doc = ledger.consistency(old, new)
        if out_file is not None:
            _write(out_file, (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
            sys.stderr.write(f"saved the proof to {out_file}\n")
        else:
            common.emit_json(doc)


# --- verify ---------------------------------------------------------------------------------------


@ledger_cli.command("verify")
def verify_cmd(
    export: Annotated[
        Path | None, typer.Option("--export", help="Verify this export file (offline, no database).")
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="Verify the ledger a server publishes at URL.")] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="GSOMIA_TOKEN", help="API token for --url (any role; or GSOMIA_TOKEN)."),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="The latest signed checkpoint to check against (default: the source's)."),
    ] = None,
    since: Annotated[
        Path | None,
        typer.Option("--since", help="An older checkpoint you kept: detects rollback and forks."),
    ] = None,
    key_file: Annotated[
        Path | None,
        typer.Option("--key", help="The exchange's key: JSON from 'gsomia ledger key --json', or a vkey line."),
    ] = None,
    key_b64: Annotated[
        str | None, typer.Option("--key-b64", help="The exchange's Ed25519 public key, base64 of 32 bytes.")
    ] = None,
    proof: Annotated[
        list[Path] | None,
        typer.Option(
            "--proof",
            help="Also check this proof (from 'gsomia ledger proof'). Without --export or --url, "
            "check only the proofs, offline. Repeatable.",
        ),
    ] = None,
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            help="A witness key you trust (NAME+KEYID+BASE64 vkey, or a file of them, one per line). "
            "The checkpoint its cosignatures are on must be a prefix of the verified ledger. Repeatable.",
        ),
    ] = None,
    quorum: Annotated[
        int | None,
        typer.Option("--quorum", min=1, help="How many of the --witness keys must have cosigned (default: all)."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Re-derive every leaf, rebuild the tree, check the signed checkpoint and consistency with a
    checkpoint you kept. Names the first bad entry, checkpoint or proof element; exit code 8.

    With --witness, also require a quorum of those witnesses' cosignatures (C2SP
    tlog-cosignature) on a checkpoint the verified ledger extends: a log that showed you a
    view nobody else saw fails here.

    The source is the local database unless --export or --url is given."""
    with common.errors():
        if export is not None and url is not None:
            raise InvalidInput("give at most one of --export FILE and --url URL")
        if key_file is not None and key_b64 is not None:
            raise InvalidInput("give at most one of --key FILE and --key-b64 KEY")
        witnesses = _witness_keys(witness or ())
        need = _quorum(quorum, witnesses, export=export is not None, since=since is not None)
        latest = _read_text(checkpoint, "checkpoint") if checkpoint else None
        kept = _read_text(since, "kept checkpoint") if since else None
        witnessed: str | None = None
        if witnesses:
            kept = _cosigned_checkpoint(url, token)
            witnessed = _check_quorum(kept, witnesses, need)
        proofs = [_read_json(p) for p in proof or ()]
        pin = _pin(_read_text(key_file, "key") if key_file else key_b64)
        if export is None and url is None and not proofs:
            _verify_database(pin, latest, kept, witnessed, as_json)
            return
        if export is not None:
            report = _verify_export(export, pin, latest, kept, proofs)
        elif url is not None:
            report = _verify_url(url, token, pin, latest, kept, proofs)
        else:
            carried = proofs[0].get("checkpoint") if isinstance(proofs[0], dict) else None
            report = _verify_proofs(pin(latest or carried, _env_origin), latest, kept, proofs)
        _render(_witnessed(report, witnessed), as_json)


def _cosigned_checkpoint(url: str | None, token: str | None) -> str:
    """The latest checkpoint with its witnesses' cosignatures, from the server at ``url`` or
    from the local database."""
    if url is not None:
        with _Server(url, token) as server:
            return server.text("/checkpoint/cosigned")
    return common.app().ledger.cosigned_checkpoint()


def _pin(key_text: str | None) -> Pin:
    """The exchange's key as given (``--key``, ``--key-b64``), read for a checkpoint note; None
    when no key is given (the source's own is used)."""

    def pin(note: str | None, default_origin: Callable[[], str]) -> LedgerKey | None:
        if key_text is None:
            return None
        # A bare base64 key is named by the log's origin (tlog-checkpoint §Signatures); the
        # JSON and vkey forms name themselves, and need neither (so a malformed checkpoint is
        # reported as one when it is verified, not as a key without a name).
        named = LedgerKey.parse(key_text, name=_origin(note) or _BARE)
        return named if named.name != _BARE else LedgerKey.parse(key_text, name=default_origin())

    return pin


def _witnessed(report: VerifyReport, witnessed: str | None) -> VerifyReport:
    """``report`` with the witness quorum's check line, when one was required."""
    return report if witnessed is None else replace(report, checks=(*report.checks, witnessed))


def _verify_database(pin: Pin, latest: str | None, kept: str | None, witnessed: str | None, as_json: bool) -> None:
    """Verify the local database's ledger, then the rows the exchange serves against it."""
    app = common.app()
    pinned = pin(latest, lambda: app.ledger.origin)
    with _progress(app.ledger.stored_count()) as tick:
        report = app.ledger.verify(key=pinned, checkpoint=latest, since=kept, proofs=[], progress=tick)
    report = _witnessed(report, witnessed)
    # The rows the exchange serves must say what the ledger says (each names its entry).
    rows = audit_rows(app.exchange.context) if report.ok else None
    _render(report, as_json, rows=rows, rows_checked=report.ok)


def _witness_keys(given: Sequence[str]) -> list[CosignerPublicKey]:
    """The witness keys given, each a vkey or a file of vkeys (one per line, # comments)."""
    keys: list[CosignerPublicKey] = []
    for item in given:
        path = Path(item)
        lines = _read_text(path, "witness keys").splitlines() if "+" not in item and path.is_file() else [item]
        for line in lines:
            text = line.strip()
            if text and not text.startswith("#"):
                key = CosignerPublicKey.parse(text)
                if all(k.name != key.name for k in keys):
                    keys.append(key)
    return keys


def _quorum(quorum: int | None, witnesses: Sequence[CosignerPublicKey], *, export: bool, since: bool) -> int:
    if not witnesses:
        if quorum is not None:
            raise InvalidInput("--quorum counts --witness keys: give the witness keys you trust with --witness")
        return 0
    if export:
        raise InvalidInput("--witness checks the cosigned checkpoint a server serves: use --url URL, not --export")
    if since:
        raise InvalidInput("give --since FILE or --witness KEY: the cosigned checkpoint is the kept one then")
    need = len(witnesses) if quorum is None else quorum
    if need > len(witnesses):
        raise InvalidInput(f"--quorum {need} is more than the {len(witnesses)} witness key(s) given")
    return need


def _check_quorum(note: str, witnesses: Sequence[CosignerPublicKey], need: int) -> str:
    """The check line for a quorum of ``need`` cosignatures on ``note``.

    Raises:
        LedgerInvalid: fewer of ``witnesses`` cosigned it, or the note is malformed.
    """
    body, verified = quorum_of(note, witnesses)
    size = body.split("\n")[1] if body.count("\n") >= 2 else "?"
    if len(verified) < need:
        missing = ", ".join(w.name for w in witnesses if w.name not in verified)
        raise LedgerInvalid(
            f"only {len(verified)} of the {need} witness cosignatures required verify on the cosigned checkpoint "
            f"of size {size} (missing or invalid: {missing})"
        )
    return (
        f"{len(verified)} of {len(witnesses)} witnesses cosigned the checkpoint of size {size}: {', '.join(verified)}"
    )


Pin = Callable[[str | None, Callable[[], str]], LedgerKey | None]


def _verify_export(path: Path, pin: Pin, latest: str | None, kept: str | None, proofs: Sequence[Any]) -> VerifyReport:
    reader = open_export(path)
    try:
        header = reader.header
        pinned = pin(latest or header.checkpoint, lambda: header.origin)
        key = pinned or header.key
        if pinned is None:
            _warn_unpinned(f"the export {path}")
        with _progress(header.size) as tick:
            return verify_ledger(
                reader.batches(),
                key=key,
                key_pinned=pinned is not None,
                checkpoint=latest or header.checkpoint,
                since=kept,
                proofs=proofs,
                source=f"export {path.name}",
                progress=tick,
                exact=True,
            )
    finally:
        reader.close()


def _verify_url(
    url: str, token: str | None, pin: Pin, latest: str | None, kept: str | None, proofs: Sequence[Any]
) -> VerifyReport:
    with _Server(url, token) as server:
        note = latest or server.text("/checkpoint")
        pinned = pin(note, _env_origin)
        if pinned is None:
            _warn_unpinned(url)
            key = LedgerKey.parse(json.dumps(server.json("/key")))
        else:
            key = pinned
        try:
            size = parse_note(note)[0].size
        except LedgerInvalid:
            size = 0  # verify_ledger reports the malformed checkpoint
        party = server.party()
        if party is not None:
            # A party reads only the entries about it: it checks those are in the signed log.
            with _progress(size) as tick:
                return verify_entries(
                    server.entries(size, dense=False),
                    key=key,
                    key_pinned=pinned is not None,
                    checkpoint=note,
                    since=kept,
                    inclusion=server.inclusion,
                    consistency=lambda old, new: server.json("/proof/consistency", {"old": old, "new": new}),
                    source=f"{url} (entries readable by {party})",
                    progress=tick,
                )
        with _progress(size) as tick:
            return verify_ledger(
                server.entries(size),
                key=key,
                key_pinned=pinned is not None,
                checkpoint=note,
                since=kept,
                proofs=proofs,
                served_consistency=server.consistency,
                source=url,
                progress=tick,
                exact=True,
            )


def _verify_proofs(
    pinned: LedgerKey | None, latest: str | None, kept: str | None, proofs: Sequence[Any]
) -> VerifyReport:
    if pinned is None:
        raise InvalidInput("a proof alone cannot tell which key to trust: pass --key FILE or --key-b64 KEY")
    report: VerifyReport | None = None
    for doc in proofs:
        report = verify_proof(doc, key=pinned, checkpoint=latest, since=kept)
        if not report.ok:
            return report
    assert report is not None  # noqa: S101 - proofs is not empty
    return report


def _render(report: VerifyReport, as_json: bool, *, rows: RowFinding | None = None, rows_checked: bool = False) -> None:
    if as_json:
        doc = report.as_dict()
        if rows_checked:
            doc["rows"] = {"ok": rows is None, "problem": str(rows) if rows else None}
            doc["ok"] = doc["ok"] and rows is None
        common.emit_json(doc)
    elif report.ok:
        cp = report.checkpoint
        key = report.key
        head = f"ledger verified ({report.source})"
        if cp is not None:
            head += f": {cp.origin} size {cp.size} root {b64(cp.root_hash)}"
        if key is not None:
            head += f", signed by {key.name} ({key.key_id.hex()}{'' if report.key_pinned else ', not pinned'})"
        # plain writes: a verdict line must never be wrapped
        lines = [f"  ok: {check}" for check in report.checks]
        if rows_checked and rows is None:
            lines.append("  ok: every row the exchange serves matches its ledger entry")
        sys.stdout.write(head + "\n" + "".join(line + "\n" for line in lines))
    if report.problem is not None:
        raise LedgerInvalid(report.problem.message)
    if rows is not None:
        raise LedgerInvalid(f"{rows}: the database was altered after the fact; the ledger holds what happened")


_BARE = "\x00bare"
"""A placeholder name for a bare base64 key before the log's origin is known (no origin is it)."""


def _origin(note: str | None) -> str | None:
    if note is None:
        return None
    try:
        return parse_note(note)[0].origin
    except (LedgerInvalid, InvalidInput):
        return None  # reported when the checkpoint itself is verified


def _env_origin() -> str:
    from gsomia.bootstrap import Settings  # noqa: PLC0415 - settings only, never the database

    origin = Settings().ledger_origin
    if origin is None:
        raise InvalidInput(
            "a bare base64 key needs the log's origin: give a checkpoint (--checkpoint), the key as JSON or a "
            "vkey (gsomia ledger key --json), or set GSOMIA_LEDGER_ORIGIN"
        )
    return origin


def _warn_unpinned(where: str) -> None:
    sys.stderr.write(
        f"warning: the key comes from {where} itself; pass --key (from 'gsomia ledger key --json') to pin it\n"
    )


# --- HTTP source ------------------------------------------------------------------------------------


class _Server:
    """The ledger endpoints of a gsomia server (see :mod:`gsomia.api.ledger`), through
    :class:`~gsomia.client.http.ExchangeClient`."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        # The ledger endpoints need a bearer token (any role): --token or GSOMIA_TOKEN, as for 'gsomia client'.
        self._client = ExchangeClient(self.url, token=token, timeout=60.0)

    def __enter__(self) -> _Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def _get(self, path: str, params: dict[str, int] | None = None) -> httpx.Response:
        try:
            return self._client.request("GET", "/api/v1/ledger" + path, params=params)
        except (NotAuthenticated, NotPermitted) as e:
            raise NotAuthenticated(f"{self.url} refused to serve the ledger ({e}); pass --token") from e
        except ExchangeUnreachable:
            raise
        except GsomiaError as e:
            raise LedgerInvalid(f"{self.url}: GET {path}: {e}") from e

    def text(self, path: str) -> str:
        return self._get(path).text

    def json(self, path: str, params: dict[str, int] | None = None) -> Any:
        try:
            return self._get(path, params).json()
        except ValueError as e:
            raise LedgerInvalid(f"{self.url}: GET {path} did not answer JSON") from e

    def party(self) -> str | None:
        """The party the token acts for (None for an auditor or operator, who read every entry)."""
        who = self._client.whoami()
        return str(who["party"]) if who.get("role") == "party" and who.get("party") else None

    def inclusion(self, index: int, size: int) -> Any:
        return self.json("/proof/inclusion", {"index": index, "size": size})

    def entries(self, size: int, *, dense: bool = True) -> Iterator[list[tuple[int, bytes, bytes | None]]]:
        """The served entries below ``size``, a page at a time; ``dense`` (every entry, for an
        auditor) checks nothing was skipped, otherwise indices skip the entries not readable."""
        start = 0
        while start < size:
            page = self.json("/entries", {"start": start, "limit": min(PAGE_LIMIT, size - start)})
            rows = page.get("entries") if isinstance(page, dict) else None
            if not isinstance(rows, list) or not rows:
                return  # verify_ledger reports the missing entries
            batch: list[tuple[int, bytes, bytes | None]] = []
            for offset, row in enumerate(rows):
                expected = start + offset
                try:
                    index = row["index"]
                    # the leaf data exactly as served; its parsed form only for servers that send no body
                    body = b64decode(row["body"], "body") if "body" in row else entry_bytes(row["entry"])
                    leaf = b64decode(row["leaf_hash"], "leaf_hash")
                except (KeyError, TypeError, InvalidInput) as e:
                    raise EntryProblem(f"{self.url}: entry {expected} is malformed ({e})", index=expected) from None
                batch.append((index, body, leaf))
            yield batch
            following = page.get("next")
            if not isinstance(following, int) or following <= start:
                return
            start = following if not dense else start + len(rows)

    def consistency(self, old: int, new: int) -> list[bytes]:
        doc = self.json("/proof/consistency", {"old": old, "new": new})
        try:
            return [b64decode(h, "proof") for h in doc["proof"]]
        except (KeyError, TypeError, InvalidInput) as e:
            raise LedgerInvalid(f"{self.url}: the consistency proof {old} -> {new} is malformed") from e


# --- helpers ----------------------------------------------------------------------------------------


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None] | None]:
    """A Rich progress bar on stderr for long verifications, only when stderr is a terminal."""
    if total < _PROGRESS_MIN or not sys.stderr.isatty():
        yield None
        return
    columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=common.err) as bar:
        task = bar.add_task("entries", total=total)

        def tick(done: int) -> None:
            bar.update(task, completed=done)

        yield tick


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as e:
        raise InvalidInput(f"cannot write {path}: {e.strerror}") from e


_read_text = common.read_text


def _read_json(path: Path) -> Any:
    text = _read_text(path, "proof")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # RecursionError: nested deeper than the stack
        raise InvalidInput(f"proof file {path} is not JSON: {e}") from e
