"""``gsomia node``: run a party's own node inside its network (docs/node.md).

gsomia node init --party KOR --exchange URL --key kor.keys --token-file T [--dir D]
gsomia node users add NAME --role officer|approver|admin
gsomia node serve [--port 8100]
gsomia node status            # exit 8 if the ledger alarm stands (fork, rollback or key)
gsomia node sync --once       # catch up with the exchange and stop (scripts, cron, tests)
gsomia node keys rotate       # new keys; the old are kept to open older deliveries
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import platformdirs
import typer
from rich.console import Console

from gsomia import collector
from gsomia.cli import common
from gsomia.cli.options import AsJson, LogLevel, LogLevelName
from gsomia.cli.tables import Column, print_table
from gsomia.errors import InvalidInput, LedgerInvalid, UnknownEntity
from gsomia.node.config import KEY_ENV, NodeConfig, following
from gsomia.node.service import NodeService, init_node

HELP = """A party's own node: keeps the party's keys and what it receives, encrypted, inside the
party's network; signs what the party sends; decrypts and verifies every delivery (the
originator's signature with the key valid at submission, ledger inclusion against a checkpoint
it checked for consistency itself); witnesses the exchange's ledger and raises an alarm on a
fork, a rollback or a checkpoint not signed by the pinned key; serves the party's officers a
console and a JSON API.

Start: 'gsomia keys generate KOR --out kor.keys', get a party token from the exchange's operator
into a file, then 'gsomia node init --party KOR --exchange https://exchange.example --key kor.keys
--token-file kor.token', 'gsomia node users add alice --role admin', 'gsomia node serve'.
See docs/node.md."""

node_cli = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode=None)
users_cli = typer.Typer(
    help="Officers' accounts: add, list, revoke (revoking ends sessions at once).", no_args_is_help=True
)
keys_cli = typer.Typer(help="The party's keys in this node: list, rotate.", no_args_is_help=True)
alarm_cli = typer.Typer(
    help="The ledger alarm (fork, rollback or key): show, clear after investigation.", no_args_is_help=True
)
node_cli.add_typer(users_cli, name="users")
node_cli.add_typer(keys_cli, name="keys")
node_cli.add_typer(alarm_cli, name="alarm")

DEFAULT_DIR = platformdirs.user_data_path("gsomia") / "node"
Dir = Annotated[
    Path,
    typer.Option("--dir", envvar="GSOMIA_NODE_DIR", help="The node's folder (node.json, node.key, node.db)."),
]
ADMIN = "cli"  # how the audit log names an action taken on the node's own machine
# The status's lines are facts a script greps for (the exchange's last error, a missing key
# set): each is written whole, never wrapped at the width of an output that is not a terminal.
_LINES = Console(highlight=False, soft_wrap=True)


def _open(directory: Path) -> NodeService:
    return NodeService.open(directory)


@node_cli.command("init")
def init_cmd(
    party: Annotated[str, typer.Option("--party", help="Your party id, e.g. KOR.")],
    exchange: Annotated[str, typer.Option("--exchange", help="The exchange's address, e.g. https://exchange.example.")],
    key: Annotated[Path, typer.Option("--key", help="Your private key file (from 'gsomia keys generate'); imported.")],
    token_file: Annotated[
        Path, typer.Option("--token-file", help="A file holding your party's exchange token; imported.")
    ],
    directory: Dir = DEFAULT_DIR,
    host: Annotated[str, typer.Option("--host", help="Address 'node serve' listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port 'node serve' listens on.")] = 8100,
    witness: Annotated[
        str | None, typer.Option("--witness", help="Your witness name (default: PARTY.node.gsomia, lower case).")
    ] = None,
    ledger_key: Annotated[
        str | None,
        typer.Option(
            "--ledger-key",
            help="Pin the exchange's ledger key, obtained out of band: a file 'gsomia ledger key --out FILE' wrote, "
            "or its JSON or vkey given as text; default: the key the exchange serves now (trust on first use).",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Create a node: a random 256-bit store key (node.key, 0600, unless GSOMIA_NODE_KEY is set),
    the encrypted store, your keys and token imported into it, a fresh witness key; then register
    your keys and witness with the exchange. Afterwards the plain key and token files may be
    removed (keep a backup of node.key: without it the store cannot be opened)."""
    with common.errors():
        token = common.read_secret_text(token_file, "token")
        if ledger_key is not None and Path(ledger_key).is_file():
            ledger_key = common.read_secret_text(Path(ledger_key), "ledger key")
        config = NodeConfig(
            party=party.upper(),
            exchange=exchange.rstrip("/"),
            dir=directory,
            host=host,
            port=port,
            witness=witness or "",
        )
        result = init_node(config, keys_file=key, token=token, ledger_key=ledger_key)
        data = {
            "dir": str(directory),
            "party": result.config.party,
            "exchange": result.config.exchange,
            "fingerprint": result.fingerprint,
            "witness": result.witness_vkey,
            "ledger_origin": result.config.ledger_origin,
            "key_file": str(result.key_file) if result.key_file else None,
            "registered": result.registered,
        }
        if as_json:
            common.emit_json(data)
            return
        out = common.out
        out.print(f"node for {data['party']} in {directory}", markup=False)
        out.print(f"  keys {result.fingerprint} imported from {key}", markup=False)
        out.print(f"  witness {result.witness_vkey}", markup=False)
        out.print(f"  ledger of {result.config.ledger_origin} pinned", markup=False)
        if result.key_file:
            out.print(
                f"  store key {result.key_file}: back it up now; without it node.db cannot be opened", markup=False
            )
        else:
            out.print(f"  store key taken from {KEY_ENV}", markup=False)
        if not result.registered:
            out.print(
                "  the exchange could not be reached: keys and witness are registered at the first sync", markup=False
            )
        out.print(f"You may now remove {key} and {token_file}: the node holds them, encrypted.", markup=False)
        out.print("Next: 'gsomia node users add NAME --role admin', then 'gsomia node serve'.", markup=False)


@node_cli.command("serve")
def serve_cmd(
    directory: Dir = DEFAULT_DIR,
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on (default: node.json's).")] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=1, max=65535, help="Port (default: node.json's, 8100).")
    ] = None,
    witness_interval: Annotated[
        float, typer.Option("--witness-interval", min=0.5, help="Seconds between checks of the exchange's checkpoint.")
    ] = 10.0,
    trusted_proxy: Annotated[
        str | None,
        typer.Option(
            "--trusted-proxy",
            help="Addresses of reverse proxies whose X-Forwarded-For names the client (comma-separated). "
            "Default: none; every client is its connection's address (the login throttle and the audit log "
            "use it), whatever headers it sends.",
        ),
    ] = None,
    log_level: LogLevel = LogLevelName.info,
) -> None:
    """Serve the console and the JSON API, and follow the exchange in the background (inbox,
    ledger, witness), until interrupted."""
    import uvicorn  # noqa: PLC0415 - only the server needs it

    from gsomia.api.middleware import guarded_http_protocol  # noqa: PLC0415
    from gsomia.node.app import create_node_app  # noqa: PLC0415
    from gsomia.node.interop import build_interop  # noqa: PLC0415

    with common.errors(), contextlib.ExitStack() as held:
        service = _open(directory)
        try:
            held.enter_context(following(directory, "a second 'node serve'"))
        except BaseException:
            service.close()
            raise
        held.callback(service.close)  # closed before the lock is let go
        bind_host, bind_port = host or service.config.host, port or service.config.port
        common.check_listen(bind_host, bind_port)
        common.err.print(
            f"gsomia node {service.config.party} on http://{bind_host}:{bind_port} following {service.config.exchange}",
            markup=False,
        )
        interop = build_interop(service)
        service.start(witness_interval=witness_interval)
        interop.start()
        for proto, lhost, lport in interop.bound:
            common.err.print(f"CoT in on {proto}://{lhost}:{lport}", markup=False)
        try:
            with collector.serving(), common.server_exit(bind_host, bind_port):
                uvicorn.run(
                    create_node_app(service, mounts=interop.mounts),
                    host=bind_host,
                    port=bind_port,
                    log_level=log_level.value,
                    access_log=False,
                    # uvicorn believes X-Forwarded-For from 127.0.0.1 by default: any process on
                    # the host could then name itself any address, past the throttle and in the log
                    proxy_headers=trusted_proxy is not None,
                    forwarded_allow_ips=trusted_proxy or "",
                    # httptools with the exchange's guards (uvicorn has none): deadlines for a
                    # request's headers (10 s) and body (300 s: a 10 MiB TAXII envelope on a
                    # slow link), and its headers at most 64 KiB
                    http=guarded_http_protocol(header_timeout=10.0, body_timeout=300.0),
                )
        finally:
            interop.stop()


@node_cli.command("status")
def status_cmd(directory: Dir = DEFAULT_DIR, as_json: AsJson = False) -> None:
    """The node's status as last seen: the exchange, deliveries, the ledger, the witness.
    Exits 8 if the ledger alarm stands (a fork, a rollback, or a checkpoint not signed by the pinned
    ledger key), naming both checkpoints."""
    with common.errors():
        service = _open(directory)
        try:
            data = service.status()
        finally:
            service.close()
        if as_json:
            common.emit_json(data)
        else:
            _render_status(data)
        alarm = data["alarm"]
        if alarm is not None:
            first, second = _one_line(alarm["first"]), _one_line(alarm["second"])
            raise LedgerInvalid(
                f"LEDGER ALARM ({alarm['kind']}) since {alarm['at']}: {alarm['detail']}; "
                f"accepted checkpoint [{first}] vs served checkpoint [{second}]"
            )


def _one_line(note: str) -> str:
    if not note:
        return "none"  # a key alarm before any checkpoint was accepted
    lines = note.split("\n")
    return " ".join(lines[:3])


def _render_status(data: dict[str, Any]) -> None:
    out = _LINES
    ex, dl, lg, wt = data["exchange"], data["deliveries"], data["ledger"], data["witness"]
    reach = {True: "reachable", False: "UNREACHABLE", None: "not contacted yet"}[ex["reachable"]]
    out.print(f"node {data['party']} — exchange {ex['url']} {reach}", markup=False)
    if ex.get("error") and ex["reachable"] is False:
        out.print(f"  last error: {ex['error']}", markup=False)
    out.print(f"  inbox cursor {ex['cursor'] or '-'}, last event {ex['last_event_at'] or '-'}", markup=False)
    if ex.get("rewound"):
        r = ex["rewound"]
        out.print(f"  inbox read again from the start at {r['at']} (cursor was {r['from']}): {r['why']}", markup=False)
    out.print(
        f"  deliveries: {dl['verified']} verified, {dl['quarantined']} quarantined, {dl['pending']} pending",
        markup=False,
    )
    out.print(f"  ledger: size {lg['size']} root {lg['root']} (checked {lg['checked_at'] or '-'})", markup=False)
    out.print(
        f"  witness {wt['name']}: {'registered' if wt['registered'] else 'NOT registered'}, "
        f"cosigned size {wt['cosigned_size']} at {wt['cosigned_at'] or '-'}",
        markup=False,
    )
    if wt.get("vkey"):  # what verifiers demanding a quorum of witnesses are given
        _LINES.print(f"  witness vkey (for 'gsomia ledger verify --witness'): {wt['vkey']}", markup=False)
    _render_keys(data["keys"])
    if data["exercise"]:
        out.print(
            f"  EXERCISE: exchange clock {data['exercise']['at']}, what-if {data['exercise']['whatif'] or 'none'}",
            markup=False,
        )
    cot = data.get("cot")
    if cot:
        cin, cout = cot["in"], cot["out"]
        out.print(
            f"  CoT in: {cin['received']} received, {cin['sent']} sent, {cin['unmapped']} unmapped, "
            f"{cin['malformed']} malformed, {cin['refused']} refused, {cin['dropped']} dropped, "
            f"{cin.get('stale', 0)} stale; "
            f"CoT out: {cout['sent']} sent, {cout['failed']} failed, {cout['dropped']} dropped, "
            f"{cout.get('stale', 0)} stale, {cout.get('withheld', 0)} withheld (the marking does not allow the "
            f"endpoint), {cout.get('refused', 0)} refused (no track); "
            f"CoT TCP connections: {cin.get('connections_refused', 0)} refused (too many open), "
            f"{cin.get('idle_closed', 0)} closed idle "
            "(since 'node serve' started)",
            markup=False,
        )


def _render_keys(keys: dict[str, Any]) -> None:
    out = _LINES
    if keys["missing"]:
        out.print(
            f"  KEYS MISSING: the exchange's current key set {keys['missing']['fingerprint']} is not in this node: "
            "it cannot open new deliveries; restore the node.db that holds it, or run 'gsomia node keys rotate'",
            markup=False,
        )
    if keys["registered"]:
        out.print(f"  keys {keys['current']} current", markup=False)
    else:
        pending = f" (set {keys['pending']} pending)" if keys["pending"] else ""
        out.print(
            f"  keys NOT registered with the exchange{pending}: the next sync registers them, "
            "or run 'gsomia node keys rotate'",
            markup=False,
        )
    if keys["error"]:
        out.print(f"  keys: {keys['error']}", markup=False)


@node_cli.command("sync")
def sync_cmd(
    once: Annotated[bool, typer.Option("--once", help="Catch up with the exchange and stop (required).")] = False,
    directory: Dir = DEFAULT_DIR,
    as_json: AsJson = False,
) -> None:
    """Catch up with the exchange once: register the witness, check and cosign the ledger's
    checkpoint, and fetch, decrypt and verify every new delivery. 'node serve' does this
    continuously; this is for scripts. Exits 10 if the exchange cannot be reached."""
    with common.errors():
        if not once:
            raise InvalidInput("give --once (continuous sync runs inside 'gsomia node serve')")
        service = _open(directory)
        try:
            with following(directory, "'node sync --once'"):
                result = service.syncer.once()
            alarm = service.witness.alarm()
        finally:
            service.close()
        if as_json:
            common.emit_json(result.as_dict() | {"alarm": alarm})
        else:
            common.out.print(
                f"{result.items} item(s): {result.verified} verified, {result.quarantined} quarantined; cursor {result.cursor or '-'}",
                markup=False,
            )
        if alarm is not None:
            raise LedgerInvalid(f"LEDGER ALARM ({alarm['kind']}): {alarm['detail']}")


# --- users ----------------------------------------------------------------------------------------------


@users_cli.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="Login name (lower case).")],
    role: Annotated[str, typer.Option("--role", help="officer, approver or admin.")],
    password_file: Annotated[
        Path | None,
        typer.Option(
            "--password-file", help="Read the password from this file (default: GSOMIA_NODE_PASSWORD, else ask)."
        ),
    ] = None,
    directory: Dir = DEFAULT_DIR,
    as_json: AsJson = False,
) -> None:
    """Add an officer's account (at least 12 characters of password, hashed with Argon2id)."""
    with common.errors():
        password = _password(password_file)
        service = _open(directory)
        try:
            user = service.add_user(username, password, role, ADMIN)
        finally:
            service.close()
        if as_json:
            common.emit_json(user)
        else:
            common.out.print(f"added {user['username']} ({user['role']})", markup=False)


def _password(path: Path | None) -> str:
    if path is not None:
        return common.read_secret_text(path, "password").rstrip("\n")
    env = os.environ.get("GSOMIA_NODE_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        raise InvalidInput("give --password-file or GSOMIA_NODE_PASSWORD (no terminal to ask on)")
    first = typer.prompt("password", hide_input=True)
    if typer.prompt("again", hide_input=True) != first:
        raise InvalidInput("the two passwords differ")
    return str(first)


@users_cli.command("list")
def users_list(directory: Dir = DEFAULT_DIR, as_json: AsJson = False) -> None:
    """Every account, revoked ones included."""
    with common.errors():
        service = _open(directory)
        try:
            items = service.users.all()
        finally:
            service.close()
        if as_json:
            common.emit_json({"items": items})
            return
        # the CLI's one table form: no value cut, every column in a pipe
        print_table(
            [Column("user"), Column("role"), Column("created"), Column("revoked")],
            [[u["username"], u["role"], u["created_at"], u["revoked_at"] or "-"] for u in items],
            empty="no users yet: 'gsomia node users add NAME --role admin'",
        )


@users_cli.command("revoke")
def users_revoke(username: Annotated[str, typer.Argument(help="Login name.")], directory: Dir = DEFAULT_DIR) -> None:
    """Revoke an account: its sessions end at once."""
    with common.errors():
        service = _open(directory)
        try:
            service.revoke_user(username, ADMIN)
        finally:
            service.close()
        common.out.print(f"revoked {username}; its sessions have ended", markup=False)


# --- keys, alarm, audit ------------------------------------------------------------------------------------


@keys_cli.command("list")
def keys_list(directory: Dir = DEFAULT_DIR, as_json: AsJson = False) -> None:
    """The party's key sets in this node (public halves): current, retired, pending."""
    with common.errors():
        service = _open(directory)
        try:
            data = service.keys()
        finally:
            service.close()
        if as_json:
            common.emit_json(data)
            return
        for k in data["history"]:
            common.out.print(f"{k['state']:8} {k['fingerprint']} registered {k['registered_at'] or '-'}", markup=False)


@keys_cli.command("rotate")
def keys_rotate(directory: Dir = DEFAULT_DIR, as_json: AsJson = False) -> None:
    """Generate new keys in the node, register them with the exchange and make them current;
    the old keys are kept (retired) to open deliveries made before."""
    with common.errors():
        service = _open(directory)
        try:
            current = service.rotate_keys(ADMIN)
        finally:
            service.close()
        if as_json:
            common.emit_json(current)
        else:
            common.out.print(
                f"current keys {current['fingerprint']}; earlier keys kept for older deliveries", markup=False
            )


@alarm_cli.command("clear")
def alarm_clear(directory: Dir = DEFAULT_DIR) -> None:
    """Clear the ledger alarm after investigation: the exchange's next checkpoint becomes the
    node's new base (audited). Do this only once the cause is known (docs/node.md)."""
    with common.errors():
        service = _open(directory)
        try:
            cleared = service.clear_alarm(ADMIN)
        finally:
            service.close()
        common.out.print("no alarm" if cleared is None else f"cleared the {cleared['kind']} alarm", markup=False)
        if cleared is not None:
            common.out.print(
                "deliveries quarantined meanwhile stay so: 'gsomia node recheck' verifies them again", markup=False
            )


@node_cli.command("recheck")
def recheck_cmd(directory: Dir = DEFAULT_DIR, as_json: AsJson = False) -> None:
    """Verify every quarantined delivery again, fetched now and against the checkpoint the node
    accepts now (audited): after 'gsomia node alarm clear', or once the exchange serves what
    it was missing. Those that verify are verified (and handed on to TAXII and CoT); the others
    stay quarantined, with the reason found now. Refused while the ledger alarm stands."""
    with common.errors():
        service = _open(directory)
        try:
            result = service.recheck(ADMIN)
        finally:
            service.close()
        if as_json:
            common.emit_json(result)
            return
        common.out.print(
            f"rechecked {result['rechecked']} quarantined deliveries: {len(result['verified'])} verified, "
            f"{len(result['quarantined'])} still quarantined",
            markup=False,
        )


@node_cli.command("audit")
def audit_cmd(
    directory: Dir = DEFAULT_DIR,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=500, help="Most rows shown, newest first (1 to 500).")
    ] = 50,
    verify: Annotated[bool, typer.Option("--verify", help="Check the log's hash chain (exit 8 if broken).")] = False,
    as_json: AsJson = False,
) -> None:
    """The node's audit log, newest first: which officer did what."""
    with common.errors():
        service = _open(directory)
        try:
            service.users.settle()  # the summary of every window of throttled logins that has ended
            rows = service.audit.verify() if verify else None
            page = service.audit.page(limit=limit)
        finally:
            service.close()
        if as_json:
            common.emit_json(page | ({"verified_rows": rows} if verify else {}))
            return
        if verify:
            common.err.print(f"audit log chain verified ({rows} rows)", markup=False)
        for r in page["items"]:
            common.out.print(f"{r['at']}  {r['user']:12} {r['action']:24} {r['target']}", markup=False)


taxii_cli = typer.Typer(
    help="TAXII 2.1 bearer tokens for the node's users (HTTP Basic with the user's password works too).",
    no_args_is_help=True,
)
node_cli.add_typer(taxii_cli, name="taxii-tokens")


@taxii_cli.command("add")
def taxii_token_add(
    username: Annotated[str, typer.Argument(help="The node user the token acts as (its role applies).")],
    name: Annotated[str, typer.Option("--name", help="What the token is for, e.g. opencti.")] = "",
    expires_in: Annotated[
        int,
        typer.Option(
            "--expires-in",
            metavar="DAYS",
            min=1,
            max=3650,
            help="Days until the token is refused (401, as a revoked one); issue a new one before then.",
        ),
    ] = 365,
    directory: Dir = DEFAULT_DIR,
) -> None:
    """Issue a bearer token for a TAXII client; printed once (only its SHA-256 is kept), its
    expiry on standard error."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from gsomia.node.taxii.service import issue_token  # noqa: PLC0415
    from gsomia.node.taxii.store import TaxiiStore, from_us, to_us  # noqa: PLC0415

    with common.errors():
        service = _open(directory)
        try:
            if not service.users.get(username)["active"]:
                raise InvalidInput(f"user {username!r} is revoked: a token of theirs would authenticate nobody")
            token, expires = issue_token(
                TaxiiStore(service.store),
                username=username,
                name=name or username,
                now=datetime.now(UTC),
                days=expires_in,
            )
            until = from_us(to_us(expires))
            service.audit.record(ADMIN, "taxii_token_add", username, {"name": name or username, "expires": until})
        finally:
            service.close()
        common.out.print(token, markup=False)
        common.err.print(f"expires {until}", markup=False)


@taxii_cli.command("list")
def taxii_token_list(directory: Dir = DEFAULT_DIR, as_json: AsJson = False) -> None:
    """Every TAXII token: its id, user, name, when issued, revoked and when it expires (never the
    token)."""
    from gsomia.node.taxii.store import TaxiiStore  # noqa: PLC0415

    with common.errors():
        service = _open(directory)
        try:
            rows = TaxiiStore(service.store).list_tokens()
            # a revoked account's tokens authenticate nobody, whatever their own state
            gone = {u["username"]: u["revoked_at"] for u in service.users.all() if u.get("revoked_at")}
        finally:
            service.close()
        for r in rows:
            r["user_revoked"] = gone.get(r["user"])
        if as_json:
            common.emit_json({"tokens": rows})
            return
        for r in rows:
            common.out.print(
                f"{r['id']}  {r['user']:12} {r['name']:20} {r['created']}  {_token_state(r)}", markup=False
            )


def _token_state(r: dict[str, Any]) -> str:
    """What ``taxii-tokens list`` says of a token: revoked, dead, expired or live, and until when."""
    if r["revoked"]:
        return f"revoked {r['revoked']}"
    if r["user_revoked"]:
        return f"dead: user revoked {r['user_revoked']}"
    if r["expired"]:
        return f"expired {r['expires']}"
    return f"live, expires {r['expires']}" if r["expires"] else "live, never expires (issued before tokens expired)"


@taxii_cli.command("revoke")
def taxii_token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id, as 'list' shows it.")],
    directory: Dir = DEFAULT_DIR,
) -> None:
    """Revoke a TAXII token at once."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from gsomia.node.taxii.store import TaxiiStore  # noqa: PLC0415

    with common.errors():
        token_id = token_id.strip().lower()
        if len(token_id) < 12:
            raise InvalidInput("give the token's 12-character id, as 'gsomia node taxii-tokens list' shows it")
        service = _open(directory)
        try:
            taxii = TaxiiStore(service.store)
            n = taxii.revoke_tokens(token_id=token_id, now=datetime.now(UTC))
            if n:
                service.audit.record(ADMIN, "taxii_token_revoke", token_id, {"revoked": n})
            else:
                _no_live_token(taxii.list_tokens(), token_id)
        finally:
            service.close()
        if n:
            common.out.print(f"revoked {n} token(s)", markup=False)


def _no_live_token(rows: list[dict[str, Any]], token_id: str) -> None:
    """Say why no token was revoked: it was already (exit 0), or there is no such token (exit 5).

    Raises:
        UnknownEntity: no token has that id.
    """
    gone = [r for r in rows if token_id.startswith(r["id"]) and r["revoked"]]
    if not gone:
        raise UnknownEntity(f"no TAXII token {token_id!r}: 'gsomia node taxii-tokens list' shows the ids")
    common.out.print(f"token {gone[0]['id']} was already revoked at {gone[0]['revoked']}", markup=False)
