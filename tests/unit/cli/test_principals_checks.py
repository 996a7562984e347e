"""``gsomia principals add --party`` names a party the loaded scenario knows: with no scenario
loaded there is nothing to check it against, and a typo or an alias (ROK for KOR) would make a
token that can never act for the party meant, so nothing is added."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.cli.cli_support import Gsomia


def test_a_party_principal_needs_a_loaded_scenario(gsomia: Gsomia, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'empty.db'}"
    for party in ("ROK", "XXX"):
        run = gsomia("--db", db, "principals", "add", "--role", "party", "--party", party, "--name", "desk")
        assert run.code == 5, run.err
        assert run.out == ""  # no token
        assert f"party {party!r} cannot be checked: no scenario is loaded" in run.err
        assert "gsomia scenario load" in run.err
    assert json.loads(gsomia("--db", db, "principals", "list", "--json").out) == []
    auditor = gsomia("--db", db, "principals", "add", "--role", "auditor", "--name", "inspector")
    assert auditor.code == 0, auditor.err  # a principal of no party needs no scenario


def test_revoking_twice_says_the_token_was_revoked_already(gsomia: Gsomia) -> None:
    added = gsomia("principals", "add", "--role", "auditor", "--name", "inspector", "--json")
    principal_id = json.loads(added.out)["id"]
    first = gsomia("principals", "revoke", principal_id)
    assert (first.code, first.out) == (0, f"revoked auditor (inspector) ({principal_id})\n")
    (listed,) = [p for p in json.loads(gsomia("principals", "list", "--json").out) if p["id"] == principal_id]
    again = gsomia("principals", "revoke", principal_id)
    assert again.code == 0
    assert again.out == f"already revoked at {listed['revoked_at']}: auditor (inspector) ({principal_id})\n"
