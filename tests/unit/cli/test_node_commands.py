"""``gsomia node status`` in this process: what it says of the party's key sets."""

from __future__ import annotations

import fcntl
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from argon2 import PasswordHasher
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gsomia.cli import node as node_cli_module
from gsomia.crypto import PartyKeys, write_private_keyfile
from gsomia.crypto.ledger_key import LedgerKey
from gsomia.crypto.signing import ExchangeSigner
from gsomia.errors import NotAuthenticated
from gsomia.node.keyring import KeyRing
from gsomia.node.users import UserService
from tests.unit.cli.cli_support import Gsomia, node_folder


def test_status_says_when_the_keys_are_not_registered(gsomia: Gsomia, tmp_path: Path) -> None:
    keys = PartyKeys.generate("KOR")
    node_folder(tmp_path / "kor", keys, state="pending").close()
    run = gsomia("node", "status", "--dir", str(tmp_path / "kor"))
    assert run.code == 0, run.err
    assert f"keys NOT registered with the exchange (set {keys.fingerprint()} pending)" in run.out
    json_run = gsomia("node", "status", "--dir", str(tmp_path / "kor"), "--json")
    assert json.loads(json_run.out)["keys"] | {"current": None} == {
        "current": None,
        "registered": False,
        "pending": keys.fingerprint(),
        "missing": None,
        "error": None,
    }


def test_status_names_the_exchange_s_current_key_set_the_node_does_not_hold(gsomia: Gsomia, tmp_path: Path) -> None:
    store = node_folder(tmp_path / "kor", PartyKeys.generate("KOR"), state="current")
    lost = PartyKeys.generate("KOR").fingerprint()
    store.put_json("keys.missing", {"fingerprint": lost, "registered_at": None, "node_current": None})
    store.close()
    run = gsomia("node", "status", "--dir", str(tmp_path / "kor"))
    assert run.code == 0, run.err
    line = next(line for line in run.out.splitlines() if lost in line)
    assert "cannot open new deliveries" in line and "gsomia node keys rotate" in line


def test_a_revoked_user_s_taxii_tokens_are_listed_as_dead(
    gsomia: Gsomia, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the tokens authenticate nobody once their user is revoked: "live" misled the admin
    node_folder(tmp_path / "kor", PartyKeys.generate("KOR"), state="current").close()
    where = ("--dir", str(tmp_path / "kor"))
    monkeypatch.setenv("GSOMIA_NODE_PASSWORD", "a long enough password for the feed")
    assert gsomia("node", "users", "add", "feed", "--role", "officer", *where).code == 0
    assert gsomia("node", "taxii-tokens", "add", "feed", "--name", "opencti", *where).code == 0
    assert gsomia("node", "users", "revoke", "feed", *where).code == 0
    run = gsomia("node", "taxii-tokens", "list", *where)
    assert run.code == 0, run.err
    (line,) = [line for line in run.out.splitlines() if "opencti" in line]
    assert "dead: user revoked" in line and "live" not in line
    (row,) = json.loads(gsomia("node", "taxii-tokens", "list", *where, "--json").out)["tokens"]
    assert row["revoked"] is None and row["user_revoked"]
    # and none is issued for a revoked user: it was printed as if it worked
    late = gsomia("node", "taxii-tokens", "add", "feed", "--name", "late", *where)
    assert late.code != 0 and "gtx_" not in late.out and "revoked" in late.err, late.out + late.err
    assert len(json.loads(gsomia("node", "taxii-tokens", "list", *where, "--json").out)["tokens"]) == 1


def test_a_taxii_token_is_issued_with_an_expiry_that_list_shows(
    gsomia: Gsomia, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tokens never expired: one left in a forgotten client's settings worked for ever
    node_folder(tmp_path / "kor", PartyKeys.generate("KOR"), state="current").close()
    where = ("--dir", str(tmp_path / "kor"))
    monkeypatch.setenv("GSOMIA_NODE_PASSWORD", "a long enough password for the feed")
    assert gsomia("node", "users", "add", "feed", "--role", "officer", *where).code == 0
    before = datetime.now(UTC)
    month = gsomia("node", "taxii-tokens", "add", "feed", "--name", "month", "--expires-in", "30", *where)
    assert month.code == 0 and month.out.strip().startswith("gtx_") and "expires" in month.err, month.err
    assert gsomia("node", "taxii-tokens", "add", "feed", "--name", "year", *where).code == 0
    for out_of_range in ("0", "3651"):
        refused = gsomia("node", "taxii-tokens", "add", "feed", "--expires-in", out_of_range, *where)
        assert refused.code != 0 and "gtx_" not in refused.out, refused.out
    rows = {r["name"]: r for r in json.loads(gsomia("node", "taxii-tokens", "list", *where, "--json").out)["tokens"]}
    assert set(rows) == {"month", "year"}
    for name, days in (("month", 30), ("year", 365)):
        expires = datetime.fromisoformat(rows[name]["expires"].replace("Z", "+00:00"))
        assert before + timedelta(days=days) <= expires <= datetime.now(UTC) + timedelta(days=days)
        assert rows[name]["expired"] is False
    (line,) = [line for line in gsomia("node", "taxii-tokens", "list", *where).out.splitlines() if "month" in line]
    assert f"live, expires {rows['month']['expires']}" in line


def test_node_audit_shows_a_failed_login_on_one_line_whatever_the_name_tried(gsomia: Gsomia, tmp_path: Path) -> None:
    # a failed login was not in the audit log at all; the name is the client's to choose
    store = node_folder(tmp_path / "kor", PartyKeys.generate("KOR"), state="current")
    users = UserService(store, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    forged = "mallory\n2026-01-01T00:00:00+00:00  chief        taxii_token_add          chief"
    with pytest.raises(NotAuthenticated):
        users.login(forged, "a wrong password", client="10.6.0.1")
    store.close()
    run = gsomia("node", "audit", "--dir", str(tmp_path / "kor"))
    assert run.code == 0, run.err
    (line,) = [line for line in run.out.splitlines() if "mallory" in line]
    assert "login_failed" in line and "10.6.0.1" in line and "mallory\\x0a2026" in line
    assert "taxii_token_add" not in run.out.replace(line, "")


def test_node_serve_runs_the_guarded_http_protocol(
    gsomia: Gsomia, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # uvicorn's own httptools protocol takes request headers of any size (a 40 MB Authorization
    # header was read whole and decoded) and waits for ever for headers sent a byte at a time
    node_folder(tmp_path / "kor", PartyKeys.generate("KOR"), state="current").close()
    given: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda _app, **options: given.update(options))
    run = gsomia("node", "serve", "--dir", str(tmp_path / "kor"), "--witness-interval", "3600")
    assert run.code == 0, run.err
    protocol = given.get("http")
    assert isinstance(protocol, type) and issubclass(protocol, HttpToolsProtocol), protocol
    assert (getattr(protocol, "header_timeout", None), getattr(protocol, "body_timeout", None)) == (10.0, 300.0)
    assert (
        callable(getattr(protocol, "data_received", None))
        and protocol.data_received is not HttpToolsProtocol.data_received
    )


def _init_args(tmp_path: Path, token_file: str) -> tuple[str, ...]:
    keys = write_private_keyfile(tmp_path / "kor.keys", PartyKeys.generate("KOR"))
    return ("node", "init", "--party", "KOR", "--exchange", "http://127.0.0.1:9", "--key", str(keys),
            "--token-file", token_file, "--dir", str(tmp_path / "kor"))  # fmt: skip


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_init_refuses_a_token_file_that_is_a_device(gsomia: Gsomia, tmp_path: Path, device: str) -> None:
    # /dev/zero was read until memory ran out
    run = gsomia(*_init_args(tmp_path, device))
    assert run.code == 4 and f"the token file {device} is not a regular file" in run.err, run.err
    assert not (tmp_path / "kor").exists()


def test_init_refuses_a_token_file_far_larger_than_a_token_unread(gsomia: Gsomia, tmp_path: Path) -> None:
    huge = tmp_path / "kor.token"
    with huge.open("wb") as f:
        f.truncate(64 * 1024 * 1024)  # sparse: read whole, it went to the exchange as the token
    run = gsomia(*_init_args(tmp_path, str(huge)))
    assert run.code == 4 and "is larger than 65536 bytes" in run.err, run.err
    assert not (tmp_path / "kor").exists()


def test_init_still_reads_the_token_from_a_pipe(gsomia: Gsomia, tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"gsp_from_a_secrets_manager\n")
    os.close(write_end)
    try:
        run = gsomia(*_init_args(tmp_path, f"/dev/fd/{read_end}"))
    finally:
        os.close(read_end)
    assert run.code == 10, run.err  # read, then the (absent) exchange asked who it is
    assert not (tmp_path / "kor").exists()


def test_users_add_refuses_a_password_file_that_is_a_device(gsomia: Gsomia, tmp_path: Path) -> None:
    node_folder(tmp_path / "kor", PartyKeys.generate("KOR"), state="current").close()
    run = gsomia("node", "users", "add", "chief", "--role", "admin", "--password-file", "/dev/zero",
                 "--dir", str(tmp_path / "kor"))  # fmt: skip
    assert run.code == 4 and "the password file /dev/zero is not a regular file" in run.err, run.err


def test_revoking_a_taxii_token_no_one_has_exits_5_and_is_not_audited(
    gsomia: Gsomia, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "revoked 0 token(s)" with exit 0: a mistyped id left the leaked token live, and said nothing
    node_folder(tmp_path / "kor", PartyKeys.generate("KOR"), state="current").close()
    where = ("--dir", str(tmp_path / "kor"))
    monkeypatch.setenv("GSOMIA_NODE_PASSWORD", "a long enough password for the feed")
    assert gsomia("node", "users", "add", "feed", "--role", "officer", *where).code == 0
    assert gsomia("node", "taxii-tokens", "add", "feed", "--name", "opencti", *where).code == 0
    (row,) = json.loads(gsomia("node", "taxii-tokens", "list", *where, "--json").out)["tokens"]
    unknown = gsomia("node", "taxii-tokens", "revoke", "0" * 12 if row["id"] != "0" * 12 else "1" * 12, *where)
    assert unknown.code == 5 and "no TAXII token" in unknown.err and "taxii-tokens list" in unknown.err, unknown.err
    first = gsomia("node", "taxii-tokens", "revoke", row["id"].upper(), *where)
    assert first.code == 0 and "revoked 1 token(s)" in first.out, first.err
    again = gsomia("node", "taxii-tokens", "revoke", row["id"], *where)
    assert again.code == 0 and f"token {row['id']} was already revoked" in again.out, again.err
    audit = json.loads(gsomia("node", "audit", *where, "--json").out)["items"]
    assert [r["target"] for r in audit if r["action"] == "taxii_token_revoke"] == [row["id"]]


def test_serve_and_sync_refuse_a_node_another_process_follows(
    gsomia: Gsomia, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two processes fetched, verified and cosigned the same deliveries and checkpoints at once
    node_folder(tmp_path / "kor", PartyKeys.generate("KOR"), state="current").close()
    where = ("--dir", str(tmp_path / "kor"))
    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_options: served.append(app))
    fd = os.open(tmp_path / "kor" / "node.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running 'node serve' holds it
        serve = gsomia("node", "serve", *where, "--witness-interval", "3600")
        sync = gsomia("node", "sync", "--once", *where)
    finally:
        os.close(fd)
    assert serve.code == 6 and "another 'gsomia node serve' or 'gsomia node sync' runs" in serve.err, serve.err
    assert served == []
    assert sync.code == 6 and "stop it first" in sync.err, sync.err
    # once it has stopped, each runs (and lets the lock go when it ends)
    assert gsomia("node", "serve", *where, "--witness-interval", "3600").code == 0
    assert len(served) == 1
    assert gsomia("node", "sync", "--once", *where).code == 10  # the exchange is not there


def test_a_rotation_the_exchange_does_not_answer_says_what_happens_to_the_new_set(
    gsomia: Gsomia, tmp_path: Path
) -> None:
    keys = PartyKeys.generate("KOR")
    node_folder(tmp_path / "kor", keys, state="current").close()
    run = gsomia("node", "keys", "rotate", "--dir", str(tmp_path / "kor"))
    assert run.code == 10, run.err
    assert "is kept in this node, pending" in run.err and f"the current set ({keys.fingerprint()}) stays" in run.err
    assert "gsomia node sync --once" in run.err, run.err


def test_init_pins_the_ledger_key_from_the_file_ledger_key_out_wrote(
    gsomia: Gsomia, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 'gsomia ledger key --out key.json' writes the file the docs carry out of band; node init
    # refused it ("ledger key: give the JSON ..."), taking the file's name for the key
    ledger = LedgerKey(name="gsomia/0123456789abcdef", public_key=ExchangeSigner.generate().public_key_raw())
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(ledger.to_dict(), indent=2) + "\n")
    given: list[str | None] = []

    def init(_config: object, **options: object) -> None:
        given.append(options["ledger_key"])  # type: ignore[arg-type]
        raise NotAuthenticated("stop here: the exchange is not there")

    monkeypatch.setattr(node_cli_module, "init_node", init)
    token = tmp_path / "kor.token"
    token.write_text("gsm_token\n")
    args = _init_args(tmp_path, str(token))
    run = gsomia(*args, "--ledger-key", str(key_file))
    assert run.code == 9, run.err
    assert LedgerKey.parse(given[0] or "") == ledger
    # the vkey given as text still pins it
    gsomia(*args, "--ledger-key", ledger.vkey())
    assert given[1] == ledger.vkey()


def test_status_shows_the_witness_vkey_verifiers_are_given(gsomia: Gsomia, tmp_path: Path) -> None:
    # docs/node.md: "the node's witness vkey is in gsomia node status"; the text showed its name only
    store = node_folder(tmp_path / "kor", PartyKeys.generate("KOR"), state="current")
    vkey = KeyRing(store).create_witness("kor.node.gsomia").public.vkey()
    store.close()
    run = gsomia("node", "status", "--dir", str(tmp_path / "kor"))
    assert run.code == 0, run.err
    assert f"  witness vkey (for 'gsomia ledger verify --witness'): {vkey}\n" in run.out, run.out


def test_users_list_is_a_table_like_every_other(
    gsomia: Gsomia, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # it alone drew a boxed table (┏━┳━┓) that cut its instants in a narrow terminal
    node_folder(tmp_path / "kor", PartyKeys.generate("KOR"), state="current").close()
    where = ("--dir", str(tmp_path / "kor"))
    assert "no users yet" in gsomia("node", "users", "list", *where).out
    monkeypatch.setenv("GSOMIA_NODE_PASSWORD", "a long enough password for the chief")
    assert gsomia("node", "users", "add", "chief", "--role", "admin", *where).code == 0
    run = gsomia("node", "users", "list", *where)
    assert run.code == 0, run.err
    (created,) = [u["created_at"] for u in json.loads(gsomia("node", "users", "list", *where, "--json").out)["items"]]
    header, rule, row = run.out.splitlines()
    assert header.split() == ["user", "role", "created", "revoked"] and set(rule) == {"─"}
    assert row.split() == ["chief", "admin", created, "-"]


@pytest.mark.parametrize("command", [("status",), ("audit",), ("users", "list"), ("keys", "list")])
def test_a_folder_with_no_node_is_not_found(gsomia: Gsomia, tmp_path: Path, command: tuple[str, ...]) -> None:
    # exit 4 (bad input) where docs/node.md gives 5 for not found, as for a missing database file
    run = gsomia("node", *command, "--dir", str(tmp_path / "nowhere"))
    assert run.code == 5, run.err
    assert run.err == f"error: no node in {tmp_path / 'nowhere'}: run 'gsomia node init' first (or give --dir)\n"
