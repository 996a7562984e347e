"""``gsomia client``, ``gsomia keys`` and ``gsomia principals``.

- ``client``: talk to a running exchange over HTTP as a party, operator or auditor (``--url``,
  ``--token`` or ``GSOMIA_URL``, ``GSOMIA_TOKEN``). Private keys never leave this machine:
  reports are signed here, and deliveries are decrypted here.
- ``keys``: generate a party's key pairs into a 0600 file; show its public half.
- ``principals``: local administration of API tokens, directly on the database.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from gsomia.cli import common
from gsomia.cli.names import ScenarioNames
from gsomia.cli.options import AsJson
from gsomia.cli.tables import Column, Wide, print_table
from gsomia.client.http import DEFAULT_URL, ExchangeClient
from gsomia.client.opening import check_included, check_ledgered, open_delivery, verify_origin
from gsomia.client.outbox import Outbox, Spooled
from gsomia.client.reports import ReportDraft, sign_report
from gsomia.codec import b64decode
from gsomia.crypto import PartyKeys, Profile, read_private_keyfile, write_private_keyfile
from gsomia.crypto.ledger_key import LedgerKey
from gsomia.errors import (
    BadSignature,
    Conflict,
    ExchangeUnreachable,
    InvalidInput,
    PayloadTooLarge,
    StorageError,
    UnknownEntity,
    ValidationFailed,
)
from gsomia.services.exchange.access import Role
from gsomia.services.exchange.submissions import MAX_BATCH

client_cli = typer.Typer(
    help="Use a running exchange: submit, inbox, fetch and decrypt, acknowledge, consents, incidents, watch.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
keys_cli = typer.Typer(help="Generate a party's key pairs (kept on this machine, mode 0600).", no_args_is_help=True)
principals_cli = typer.Typer(
    help="Administer API tokens on the local database (add shows the token once).", no_args_is_help=True
)

KeyFile = Annotated[Path, typer.Option("--key", help="Your private key file (from 'gsomia keys generate').")]


# --- HTTP client -----------------------------------------------------------------------------


class _Target:
    """Where ``gsomia client`` talks to, and as whom (set by the group's options)."""

    url: str = DEFAULT_URL
    token: str | None = None
    token_file: Path | None = None


_target = _Target()


def _names(exchange: ExchangeClient) -> ScenarioNames | None:
    """The exchange's parties, ladders and topics, to resolve what was typed; None when the
    exchange cannot be reached (the report is then kept as typed, and the exchange checks the
    names when it answers)."""
    try:
        return ScenarioNames(exchange.scenario())
    except ExchangeUnreachable:
        return None


ContentType = Annotated[
    str,
    typer.Option(
        "--content-type",
        help="The payload's media type, signed with it and shown to the recipients, e.g. application/json.",
    ),
]


def _exchange() -> ExchangeClient:
    """A client of the exchange, as the principal of the token given.

    Raises:
        InvalidInput: both a token and a token file are given, or the token file cannot be read
            or is empty.
    """
    token = _target.token
    if _target.token_file is not None:
        if token:
            raise InvalidInput("give the token once: --token (GSOMIA_TOKEN) or --token-file (GSOMIA_TOKEN_FILE)")
        # the file's one line; the line break an editor or 'echo' ends it with is not the token's
        token = common.read_secret_text(_target.token_file, "token").rstrip("\r\n")
        if not token:
            raise InvalidInput(f"the token file {_target.token_file} is empty: give the file that holds your API token")
        # read once: a pipe (<(pass show …)) is empty the second time, and 'watch' reconnects
        _target.token, _target.token_file = token, None
    return ExchangeClient(_target.url, token=token)


@client_cli.callback()
def _client_root(
    url: Annotated[str, typer.Option("--url", envvar="GSOMIA_URL", help="The exchange's address.")] = DEFAULT_URL,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="GSOMIA_TOKEN",
            help="Your API token (or GSOMIA_TOKEN). On a shared machine prefer --token-file: the command line of "
            "a process is readable by every user.",
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            envvar="GSOMIA_TOKEN_FILE",
            help="A file (mode 0600) or a pipe that holds your API token, instead of --token.",
        ),
    ] = None,
) -> None:
    _target.url = url
    _target.token = token
    _target.token_file = token_file


def _keys(path: Path) -> PartyKeys:
    return read_private_keyfile(path)


# --- client commands -------------------------------------------------------------------------


def _check_sealed_to(view: Mapping[str, Any], keys: PartyKeys, path: Path) -> None:
    """Refuse, naming both, a key file other than the key set a delivery is sealed to: it could
    only fail to decrypt, and "decryption failed" says nothing of which file to give.

    Raises:
        InvalidInput: the delivery names another key set.
    """
    sealed_to = view.get("key")
    if isinstance(sealed_to, str) and sealed_to != keys.fingerprint():
        raise InvalidInput(
            f"delivery {view.get('id')} is sealed to the key set {sealed_to} ({view.get('profile')}); {path} holds {keys.party}'s {keys.profile} set "
            f"{keys.fingerprint()}: give the key file of the set that was current when the delivery was made"
        )


@client_cli.command("register")
def register_cmd(key: KeyFile, as_json: AsJson = False) -> None:
    """Register the public half of your key file with the exchange (the private half stays here)."""
    with common.errors():
        keys = _keys(key)
        public = keys.public_keys().to_dict()
        with _exchange() as exchange:
            body = exchange.register_keys(keys.party, public)
        if as_json:
            common.emit_json(body)
        else:
            common.out.print(f"registered {keys.party} {keys.profile.value} keys {body['fingerprint']}", markup=False)


@client_cli.command("submit")
def submit_cmd(
    key: KeyFile,
    topic: Annotated[str, typer.Option("--topic", help="e.g. dprk.missile.launch")],
    level: Annotated[str, typer.Option("--level", help="A level of your national ladder, e.g. 極秘.")],
    payload: Annotated[Path, typer.Option("--payload", help="File with the payload (any bytes).")],
    recipient: Annotated[
        list[str] | None,
        typer.Option("--recipient", help="A recipient (repeatable). Recipients are always named (need-to-know)."),
    ] = None,
    all_eligible: Annotated[
        bool,
        typer.Option(
            "--all-eligible",
            help="Name every other party of the loaded scenario as a recipient (each is still decided on its own).",
        ),
    ] = False,
    rel_to: Annotated[str | None, typer.Option("--rel-to", help="REL TO list, comma-separated.")] = None,
    noforn: Annotated[bool, typer.Option("--noforn", help="No foreign release at all.")] = False,
    orcon: Annotated[bool, typer.Option("--orcon", help="Every relay needs consent for this report.")] = False,
    report_id: Annotated[str | None, typer.Option("--id", help="Report id (default: a fresh one).")] = None,
    content_type: ContentType = "application/octet-stream",
    as_json: AsJson = False,
    wide: Wide = False,
) -> None:
    """Sign a report with your key and submit it; show what happened for each recipient.

    The signed report is kept in DATA_DIR/outbox/PARTY/ID.json (mode 0600; never a private key)
    until the exchange answers. If the answer is lost, the same bytes are sent again (a few
    times, then the command stops with exit code 10); run the same command with the same --id
    to send them again later: the exchange stores a report once, and answers a repeat with
    what it stored. The same --id with another topic, level, recipients, caveats or payload
    is refused (exit code 6)."""
    with common.errors():
        keys = _keys(key)
        data = _read_payload(payload)
        if bool(recipient) == all_eligible:
            raise InvalidInput("name the recipients: --recipient PARTY (repeatable), or --all-eligible for every party")
        rel_to_list = [p.strip() for p in rel_to.split(",") if p.strip()] if rel_to else None
        # one client for the whole command: the names, the recipients and the submission
        with _exchange() as exchange:
            recipient, topic, level, rel_to_list = _typed_names(
                exchange, keys.party, recipient, topic, level, rel_to_list
            )
            caveats = {"rel_to": rel_to_list, "noforn": noforn, "orcon": orcon}
            outbox = Outbox(common.settings().data_dir / "outbox")
            rid = report_id or f"{keys.party.lower()}-{secrets.token_hex(8)}"
            spooled = outbox.find(keys.party, rid) if report_id else None
            if spooled is not None:
                _same_report(
                    spooled,
                    rid,
                    topic=topic,
                    level=level,
                    recipients=recipient,
                    caveats=caveats,
                    content_type=content_type,
                    payload=data,
                )
            else:
                draft = ReportDraft(
                    id=rid,
                    topic=topic,
                    level=level,
                    payload=data,
                    created=datetime.now(UTC),
                    recipients=_recipients(exchange, keys.party, recipient),
                    rel_to=rel_to_list,
                    noforn=noforn,
                    orcon=orcon,
                    content_type=content_type,
                )
                signed = json.dumps(sign_report(keys, draft), ensure_ascii=False).encode("utf-8")
                spooled = outbox.keep(keys.party, rid, signed)
            result = _send(exchange, outbox, spooled, rid)
        if as_json:
            common.emit_json(result)
            return
        _print_submitted(result, wide=wide)


MAX_PAYLOAD_FILE = 64 * 1024 * 1024
"""The most bytes of a payload file read: far above what an exchange takes (a request body of
``GSOMIA_MAX_BODY_BYTES``, 1 MiB by default), and a bound on what a device or an endless pipe
given by mistake can make this command hold."""


def _read_payload(path: Path) -> bytes:
    """The payload file's bytes: a regular file or a pipe (``<(command)``), at most
    :data:`MAX_PAYLOAD_FILE` bytes; never a device (``/dev/zero``), a folder or a socket.

    Raises:
        InvalidInput: if it cannot be read, is no regular file or pipe, or is too large.
    """
    return common.read_bytes(path, "payload", MAX_PAYLOAD_FILE)


def _recipients(exchange: ExchangeClient, party: str, named: list[str] | None) -> list[str]:
    """The recipients named, or (with --all-eligible) every party of the exchange but ``party``.

    Raises:
        ExchangeUnreachable: if the exchange must be asked and cannot be reached.
    """
    if named:
        return list(named)
    return [p for p in exchange.parties() if p != party]


def _typed_names(
    exchange: ExchangeClient, party: str, recipients: list[str] | None, topic: str, level: str, rel_to: list[str] | None
) -> tuple[list[str] | None, str, str, list[str] | None]:
    """The scenario's own names for what was typed (ROK → KOR, echoed), so the outbox keeps
    what the exchange stores; as typed when the exchange cannot be reached. A party named twice
    (KOR and ROK, kor and KOR) is named once: the exchange refuses a list that names one twice.

    Raises:
        UnknownEntity: for a name the scenario does not know (exit 5, with the closest).
    """
    names = _names(exchange)
    if names is not None:
        recipients = names.parties_of(recipients) if recipients else recipients
        topic, level = names.topic(topic), names.level(party, level)
        rel_to = names.parties_of(rel_to) if rel_to else rel_to
    return (
        list(dict.fromkeys(recipients)) if recipients else recipients,
        topic,
        level,
        list(dict.fromkeys(rel_to)) if rel_to else rel_to,
    )


def _send(exchange: ExchangeClient, outbox: Outbox, spooled: Spooled, rid: str) -> dict[str, Any]:
    """Submit a kept report; drop it from the outbox once the exchange has answered.

    Raises:
        ExchangeUnreachable, StorageError: with where the report is kept and how to send it again.
    """
    try:
        result = exchange.submit(spooled.body)
    except (ExchangeUnreachable, StorageError) as e:
        raise type(e)(
            f"{e}; the signed report is kept in {spooled.path}: run the same command with --id {rid} to send it again"
        ) from e
    except _REFUSED:
        # the exchange answered, and these bytes will never be accepted: kept, they would only
        # turn the corrected command under the same --id into "used for another report"
        outbox.remove(spooled)
        raise
    outbox.remove(spooled)
    return result


_REFUSED = (ValidationFailed, InvalidInput, UnknownEntity, Conflict, BadSignature, PayloadTooLarge)
"""The exchange's answers that refuse a signed report as it is, for good: sent again, the same
bytes get the same answer. Anything else (not reached, busy, a token refused, an answer not
understood) may yet end with the report stored, so it stays in the outbox."""


def _print_submitted(result: dict[str, Any], *, wide: bool) -> None:
    """What the exchange did for each recipient of a submitted report."""
    common.out.print(f"report {result['report']} (ledger entry {result['leaf_index']})", markup=False)
    rows = []
    for r in result["recipients"]:
        route = " → ".join(r["path"]) if r["path"] else "-"
        mark = r["marking"]["banner"] if r["decision"] != "deny" else "-"
        ids = ", ".join(d["id"] for d in r["deliveries"])
        if r["consent"]:
            ids = (ids + ", " if ids else "") + f"consent {r['consent']['id']} ({r['consent']['state']})"
        why = r["reasons"][0]["message"] if r["outcome"] in ("denied", "no_key") and r["reasons"] else ""
        rows.append([r["recipient"], r["outcome"], why or route, mark or "-", ids or "-"])
    print_table(
        [
            Column("recipient"),
            Column("outcome"),
            Column("route", whole=False),
            Column("marking", whole=False),
            Column("delivery / consent", whole=False),
        ],
        rows,
        wide=wide,
    )


@client_cli.command("submit-batch")
def submit_batch_cmd(
    key: KeyFile,
    batch: Annotated[
        Path,
        typer.Argument(
            help='JSON lines, one report each: {"topic", "level", "recipients": [..], "payload" (text) or '
            '"payload_base64", optional "id", "rel_to", "noforn", "orcon", "content_type"}.'
        ),
    ],
    as_json: AsJson = False,
) -> None:
    """Sign every report of a JSON-lines file with your key and submit them in batches of up to
    1,000 per request (one commit each); print one line per report. Exits 4 if any was refused."""
    with common.errors():
        keys = _keys(key)
        drafts = _read_batch(batch)
        bodies = [sign_report(keys, draft) for draft in drafts]
        results: list[dict[str, Any]] = []
        with _exchange() as exchange:
            for start in range(0, len(bodies), MAX_BATCH):
                answer = exchange.submit_batch(bodies[start : start + MAX_BATCH])
                results += [{**r, "index": r["index"] + start} for r in answer["results"]]
        refused = [r for r in results if r["status"] >= 400]
        if as_json:
            common.emit_json({"results": results, "refused": len(refused)})
        else:
            for r, draft in zip(results, drafts, strict=True):
                outcome = (
                    ", ".join(f"{x['recipient']} {x['outcome']}" for x in r["result"]["recipients"])
                    if r["result"]
                    else r["problem"]["detail"]
                )
                common.out.print(f"{draft.id}  {r['status']}  {outcome}", markup=False)
        if refused:
            raise InvalidInput(f"{len(refused)} of {len(results)} reports were refused (see above)")


def _read_batch(path: Path) -> list[ReportDraft]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"cannot read {path}: {getattr(e, 'strerror', None) or 'not UTF-8 text'}") from e
    drafts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            payload = (
                b64decode(doc["payload_base64"], "payload_base64")
                if "payload_base64" in doc
                else str(doc["payload"]).encode("utf-8")
            )
            drafts.append(
                ReportDraft(
                    id=str(doc.get("id") or f"{secrets.token_hex(8)}"),
                    topic=str(doc["topic"]),
                    level=str(doc["level"]),
                    payload=payload,
                    created=datetime.now(UTC),
                    recipients=[str(p) for p in doc["recipients"]],
                    rel_to=[str(p) for p in doc["rel_to"]] if doc.get("rel_to") is not None else None,
                    noforn=bool(doc.get("noforn", False)),
                    orcon=bool(doc.get("orcon", False)),
                    content_type=str(doc.get("content_type", "application/octet-stream")),
                )
            )
        except (ValueError, KeyError, TypeError, RecursionError, InvalidInput) as e:
            raise InvalidInput(
                f"{path}:{number}: not a report line ({e}); see 'gsomia client submit-batch --help'"
            ) from e
    if not drafts:
        raise InvalidInput(f"{path} holds no report")
    return drafts


def _same_report(
    spooled: Spooled,
    rid: str,
    *,
    topic: str,
    level: str,
    recipients: list[str] | None,
    caveats: dict[str, Any],
    content_type: str,
    payload: bytes,
) -> None:
    """Refuse to resend a kept report that is not the one this command describes; otherwise say
    on stderr that it is sent again, as signed.

    With --all-eligible (``recipients`` None) the recipients are those named when it was signed.

    Raises:
        Conflict: the id was used for another report.
    """
    report = spooled.report()
    differ = [
        name
        for name, same in (
            ("topic", report.get("topic") == topic),
            ("level", report.get("level") == level),
            ("recipients", recipients is None or report.get("recipients") == recipients),
            ("caveats", report.get("caveats") == caveats),
            ("content type", report.get("content_type") == content_type),
            ("payload", spooled.payload_digest() == hashlib.sha256(payload).hexdigest()),
        )
        if not same
    ]
    if differ:
        raise Conflict(
            f"report id {rid} was used for another report ({', '.join(differ)} differ), signed and kept in "
            f"{spooled.path} until the exchange accepts it: give another --id, or delete that file to sign "
            "this report under the same id"
        )
    # a plain write: a path must never be wrapped
    sys.stderr.write(f"sending report {rid} again exactly as signed at {report.get('created')} ")
    sys.stderr.write(f"({spooled.path})\n")


@client_cli.command("inbox")
def inbox_cmd(
    cursor: Annotated[str | None, typer.Option("--cursor", help="Continue after this cursor.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1000, help="Most items in one page (1 to 1000); --cursor for the next.")
    ] = 100,
    as_json: AsJson = False,
    wide: Wide = False,
) -> None:
    """Your deliveries, consent requests and incident notices, oldest first."""
    with common.errors():
        with _exchange() as exchange:
            page = exchange.inbox(cursor=cursor, limit=limit)
        if as_json:
            common.emit_json(page)
            return
        print_table(
            [
                Column("#", justify="right"),
                Column("type"),
                Column("id"),
                Column("report"),
                Column("from", drop=2),
                Column("marking / subject", whole=False),
                Column("via", drop=1),
                Column("state"),
            ],
            [_inbox_row(item) for item in page["items"]],
            wide=wide,
        )
        if page["next_cursor"]:
            common.err.print(f"more: gsomia client inbox --cursor {page['next_cursor']}", markup=False)


def _inbox_row(item: dict[str, Any]) -> list[str]:
    kind = item["type"]
    if kind == "delivery":
        return [
            str(item["seq"]),
            kind,
            item["id"],
            item["report"],
            item["originator"],
            item["marking"]["banner"],
            item.get("via") or "-",
            item.get("state", ""),
        ]
    if kind == "consent_request":
        subject = f"relay to {item['recipient']} via {item['hub']} ({item['topic']}, {item['level']})"
        return [str(item["seq"]), kind, item["id"], item["report"], "-", subject, item["hub"], "pending"]
    subject = item.get("kind") or item.get("result") or ""
    who = item.get("reporter") or item.get("by") or "-"
    ref = item.get("id") or item.get("incident") or ""
    return [str(item["seq"]), kind, ref, item.get("report", "-"), who, subject, "-", "-"]


@client_cli.command("fetch")
def fetch_cmd(
    delivery: Annotated[str, typer.Argument(help="Delivery id (from the inbox).")],
    key: KeyFile,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the payload to FILE, mode 0600 (only you may read it); a file there is replaced whole, a symbolic link refused.",
        ),
    ] = None,
    ledger_key: Annotated[
        Path | None,
        typer.Option("--ledger-key", help="The exchange's ledger key to trust (from 'gsomia ledger key --json')."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Fetch a delivery (attesting need-to-know), decrypt it with your key here, check the
    originator's signature with the key valid when the exchange received it, check that the
    ledger's submission and delivery entries say what the delivery says and are in the signed
    tree, then print the marking banner and the payload. Exit 4 if the key file is not the key
    set the delivery is sealed to (the delivery names it), 8 if the ledger does not confirm the
    delivery, 1 if it cannot be decrypted or the originator's signature does not verify."""
    with common.errors():
        keys = _keys(key)
        pinned = LedgerKey.parse(common.read_text(ledger_key, "ledger key")) if ledger_key is not None else None
        with _exchange() as exchange:
            view = exchange.delivery(delivery)
            _check_sealed_to(view, keys, key)
            payload = open_delivery(view, keys)
            signer = exchange.public_keys(view["origin"]["report"]["originator"])
            verify_origin(view, payload, signer["keys"])
            entries = [exchange.ledger_entry(int(i)) for i in (view["origin"]["leaf_index"], view["leaf_index"])]
            check_ledgered(view, *entries)
            log_key = pinned or LedgerKey.parse(json.dumps(exchange.ledger_key()))
            checkpoint = None
            for doc in entries:
                checkpoint = check_included(doc, exchange.ledger_inclusion(int(doc["index"])), log_key)
        in_ledger = f"in the ledger (checkpoint size {checkpoint.size if checkpoint else '?'}"
        in_ledger += ")" if pinned else ", key not pinned: pass --ledger-key)"
        if out_file is not None:
            common.write_private_file(out_file, payload, "payload")
        if as_json:
            common.emit_json(
                {
                    "delivery": view["id"],
                    "report": view["report"],
                    "marking": view["marking"],
                    "via": view["via"],
                    "signature": "verified",
                    "ledger": {
                        "entries": [int(doc["index"]) for doc in entries],
                        "checkpoint_size": checkpoint.size if checkpoint else None,
                        "key_pinned": pinned is not None,
                    },
                    "payload_file": str(out_file) if out_file else None,
                    **_payload_json(None if out_file else payload),
                }
            )
            return
        via = f" via {view['via']}" if view["via"] else ""
        common.out.print(f"{view['marking']['banner']}{via}", markup=False)
        common.err.print(
            f"delivery {view['id']} of report {view['report']}: originator's signature verified, {in_ledger}",
            markup=False,
            soft_wrap=True,  # one line, whatever the width: scripts grep it
        )
        if out_file is not None:
            common.out.print(f"payload written to {out_file} ({len(payload)} bytes)", markup=False)
        else:
            sys.stdout.flush()
            sys.stdout.buffer.write(payload + (b"" if payload.endswith(b"\n") else b"\n"))


def _payload_json(payload: bytes | None) -> dict[str, str | None]:
    """A fetched payload in ``--json``: ``payload_base64`` (its exact bytes), and ``payload``
    as text when it is UTF-8 (null when it is not, never text with bytes replaced); both null
    when it was written to a file."""
    if payload is None:
        return {"payload": None, "payload_base64": None}
    try:
        text: str | None = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {"payload": text, "payload_base64": base64.b64encode(payload).decode("ascii")}


@client_cli.command("ack")
def ack_cmd(delivery: Annotated[str, typer.Argument(help="Delivery id.")], as_json: AsJson = False) -> None:
    """Acknowledge receipt of a delivery, attesting your need-to-know (rule 5)."""
    with common.errors():
        with _exchange() as exchange:
            body = exchange.acknowledge(delivery)
        if as_json:
            common.emit_json(body)
        else:
            common.out.print(f"acknowledged {body['id']} at {body['acked_at']} (ledger entry {body['leaf_index']})")


@client_cli.command("consents")
def consents_cmd(
    state: Annotated[str, typer.Option("--state", help="pending, granted, refused, expired or all.")] = "pending",
    as_json: AsJson = False,
    wide: Wide = False,
) -> None:
    """Consent requests for relays of your reports."""
    with common.errors():
        with _exchange() as exchange:
            body = exchange.consents(state=state)
        if as_json:
            common.emit_json(body)
            return
        print_table(
            [
                Column("id"),
                Column("report"),
                Column("relay", whole=False),
                Column("topic"),
                Column("level"),
                Column("state"),
                Column("expires"),
            ],
            [
                [
                    c["id"],
                    c["report"],
                    f"→ {c['hub']} → {c['recipient']} ({c['arrangement']})",
                    c.get("topic", ""),
                    c.get("level", ""),
                    c["state"],
                    c["expires_at"],
                ]
                for c in body["consents"]
            ],
            wide=wide,
        )


@client_cli.command("consent")
def consent_cmd(
    consent: Annotated[str, typer.Argument(help="Consent request id.")],
    decision: Annotated[str, typer.Argument(help="grant or refuse.")],
    reason: Annotated[
        str,
        typer.Option(
            "--reason", help="Why (at most 2000 characters); the ledger keeps only a salted commitment to it."
        ),
    ] = "",
    as_json: AsJson = False,
) -> None:
    """Grant or refuse a relay of your report."""
    with common.errors():
        if decision not in ("grant", "refuse"):
            raise InvalidInput("decision must be grant or refuse")
        with _exchange() as exchange:
            body = exchange.answer_consent(consent, grant=decision == "grant", reason=reason)
        if as_json:
            common.emit_json(body)
            return
        outcome = body.get("outcome") or {}
        if body["state"] == "granted" and outcome.get("relayed"):
            common.out.print(f"granted: relayed, deliveries {', '.join(outcome['deliveries'])}", markup=False)
        elif body["state"] == "granted":
            reasons = "; ".join(r["message"] for r in outcome.get("reasons", []))
            common.out.print(f"granted, but the relay was refused: {reasons}", markup=False)
        else:
            common.out.print(f"{body['state']}", markup=False)


@client_cli.command("incident")
def incident_cmd(
    delivery: Annotated[str, typer.Argument(help="Delivery id.")],
    kind: Annotated[str, typer.Option("--kind", help="loss, compromise or possible_compromise.")],
    description: Annotated[
        str, typer.Option("--description", help="What happened (1 to 8000 characters); the originator reads it.")
    ],
    as_json: AsJson = False,
) -> None:
    """Report the loss or compromise of a delivery (Art. 17); the originator is told at once."""
    with common.errors():
        with _exchange() as exchange:
            body = exchange.file_incident(delivery, kind=kind, description=description)
        if as_json:
            common.emit_json(body)
        else:
            common.out.print(f"incident {body['id']} filed; {body['originator']} has been told", markup=False)


@client_cli.command("watch")
def watch_cmd(
    cursor: Annotated[str | None, typer.Option("--cursor", help="Replay items after this cursor first.")] = None,
    as_json: AsJson = False,
) -> None:
    """Print inbox items as they are committed (server-sent events); reconnects, Ctrl-C stops."""
    last = cursor
    with common.errors():
        try:
            while True:
                last = _watch_once(last, as_json=as_json)
                time.sleep(1.0)  # the server went away: reconnect after a pause
        except KeyboardInterrupt:
            return


def _watch_once(last: str | None, *, as_json: bool) -> str | None:
    """Print the items of one connection of the stream, after ``last``; the cursor to resume
    after. With no cursor yet, the inbox's head is read first and the stream resumed after it:
    a stream opened without one carries only what is committed after it opened, so an item
    committed while it reconnects (the exchange restarting) would never be printed. An item
    at or before the cursor (a replay: delivery is at least once) is not printed twice."""
    try:
        with _exchange() as exchange:
            if last is None:
                last = str(exchange.inbox(limit=1)["head"])
            common.err.print(f"watching {_target.url} (Ctrl-C to stop)", markup=False)
            for event in exchange.events(last_event_id=last):
                if _seen(event.id, last):
                    continue
                last = event.id or last
                if as_json:
                    sys.stdout.write(json.dumps(event.data, ensure_ascii=False) + "\n")
                else:
                    sys.stdout.write("  ".join(_inbox_row(event.data)) + "\n")
                sys.stdout.flush()
    except (ExchangeUnreachable, StorageError) as e:
        common.err.print(f"{e}; reconnecting", markup=False)
    return last


def _seen(event_id: str | None, last: str | None) -> bool:
    """Whether an event's id (its inbox cursor) is at or before ``last``: printed already."""
    if event_id is None or last is None or not (event_id.isdecimal() and last.isdecimal()):
        return False
    return int(event_id) <= int(last)


# --- keys ------------------------------------------------------------------------------------


@keys_cli.command("generate")
def keys_generate(
    party: Annotated[str, typer.Argument(help="Your party id, e.g. JPN.")],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Where to write the private key file (0600).")],
    profile: Annotated[str, typer.Option("--profile", help="classic (Ed25519, X25519) or cnsa2.")] = "classic",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key file.")] = False,
    as_json: AsJson = False,
) -> None:
    """Generate a signing and an encryption key pair into a new 0600 file. Only the public half
    ever goes to the exchange ('gsomia client register --key FILE'). With GSOMIA_URL set, the
    party is checked against the exchange's scenario first (an alias such as ROK is read as KOR)."""
    with common.errors():
        url = os.environ.get("GSOMIA_URL")
        if url:
            # the exchange is known: generate keys only for a party its scenario names
            with ExchangeClient(url) as exchange:
                party = ScenarioNames(exchange.scenario()).party(party)
        keys = PartyKeys.generate(party, Profile.parse(profile))
        write_private_keyfile(out_file, keys, overwrite=force)
        public = {**keys.public_keys().to_dict(), "fingerprint": keys.fingerprint()}
        if as_json:
            common.emit_json({"file": str(out_file), "public": public})
            return
        common.out.print(f"wrote {out_file} (mode 0600): {party} {profile} keys {keys.fingerprint()}", markup=False)
        common.err.print(f"register the public keys with: gsomia client register --key {out_file}", markup=False)


@keys_cli.command("show")
def keys_show(path: Annotated[Path, typer.Argument(help="A private key file.")], as_json: AsJson = False) -> None:
    """Show the public half of a key file (never the private keys)."""
    with common.errors():
        keys = read_private_keyfile(path)
        public = {**keys.public_keys().to_dict(), "fingerprint": keys.fingerprint()}
        if as_json:
            common.emit_json(public)
            return
        for k, v in public.items():
            common.out.print(f"{k:<15} {v}", markup=False)


# --- principals --------------------------------------------------------------------------------


@principals_cli.command("add")
def principals_add(
    role: Annotated[str, typer.Option("--role", help="party, operator or auditor.")],
    name: Annotated[str, typer.Option("--name", help="Who holds the token, e.g. 'JPN MoD liaison desk'.")],
    party: Annotated[str | None, typer.Option("--party", help="The party a party principal acts for.")] = None,
    as_json: AsJson = False,
) -> None:
    """Create a principal and print its token once (only its SHA-256 is stored)."""
    with common.errors():
        app = common.app(creates=True)
        if party is not None and app.store.summary() is None:
            # nothing to check the party against: a typo, or an alias (ROK) kept as the party's
            # id, would make a token that can never act for the party meant
            raise UnknownEntity(
                f"party {party!r} cannot be checked: no scenario is loaded in {app.store.describe()}; load it "
                "first ('gsomia scenario load FILE'), then add the party's principal"
            )
        if party is not None:
            # the party as the loaded scenario knows it: an alias is read as its id, a typo exits 5
            found = app.analysis.resolve("party", party)
            if found != party:
                common.err.print(f"party {party!r} read as {found}", markup=False)
            party = found
        issued = app.exchange.identity.add_principal(role=Role.parse(role), name=name, party=party)
        p = issued.principal
        if as_json:
            common.emit_json(
                {"id": p.id, "name": p.name, "role": p.role.value, "party": p.party, "token": issued.token}
            )
            return
        common.err.print(f"created {p.describe()} as {p.id}; the token is shown only now:", markup=False)
        sys.stdout.write(issued.token + "\n")


@principals_cli.command("list")
def principals_list(as_json: AsJson = False, wide: Wide = False) -> None:
    """Every principal (never a token)."""
    with common.errors():
        rows = common.app().exchange.identity.principals()
        docs = [
            {
                "id": r.principal.id,
                "name": r.principal.name,
                "role": r.principal.role.value,
                "party": r.principal.party,
                "created_at": r.created_at.isoformat(),
                "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
            }
            for r in rows
        ]
        if as_json:
            common.emit_json(docs)
            return
        print_table(
            [
                Column("id"),
                Column("role"),
                Column("party"),
                Column("name", whole=False),
                Column("created", drop=1),
                Column("revoked"),
            ],
            [
                [
                    str(d["id"]),
                    str(d["role"]),
                    d["party"] or "-",
                    str(d["name"]),
                    str(d["created_at"]),
                    d["revoked_at"] or "-",
                ]
                for d in docs
            ],
            wide=wide,
        )


@principals_cli.command("revoke")
def principals_revoke(principal_id: Annotated[str, typer.Argument(help="Principal id (from list).")]) -> None:
    """Revoke a principal's token (takes effect within a second on running servers); a token
    revoked already is left as it is, and said to be."""
    with common.errors():
        info = common.app().exchange.identity.revoke(principal_id)
        if info.revoked_before and info.revoked_at is not None:
            # nothing changed: say so, and since when, rather than claim a revocation now
            when = info.revoked_at.isoformat()
            common.out.print(f"already revoked at {when}: {info.principal.describe()} ({principal_id})", markup=False)
        else:
            common.out.print(f"revoked {info.principal.describe()} ({principal_id})", markup=False)
