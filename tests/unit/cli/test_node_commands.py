"""``gsomia node status`` in this process: what it says of the party's key sets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from argon2 import PasswordHasher
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gsomia.crypto import PartyKeys
from gsomia.errors import NotAuthenticated
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
