"""A party node killed (SIGKILL) while a TAXII envelope it answered ``pending`` waits for the
exchange: started again, it sends the envelope's report once and completes the status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gsomia.interop.stix import NationalMarking, national_marking_definition
from tests.integration.conftest import TLS
from tests.integration.exchange_support import Exchange, start_exchange, wait_for
from tests.integration.node_support import PASSWORD, Node, start_node
from tests.integration.test_interop_live import TAXII, indicator

JPN_SECRET = national_marking_definition(NationalMarking(party="JPN", level="極秘"))


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Exchange, Node]]:
    ex = start_exchange(tmp_path / "ex")
    nodes: list[Node] = []
    try:
        nodes.append(start_node(ex, "JPN", tmp_path, {"taxii": {"recipients": ["KOR"]}}))
        yield ex, nodes[0]
    finally:
        if ex.server.proc.poll() is None:
            os.kill(ex.server.proc.pid, signal.SIGCONT)
        for n in nodes:
            n.stop()
        ex.stop()


def _serve_again(node: Node) -> None:
    with node.log.open("ab") as fh:
        node.proc = subprocess.Popen(
            [sys.executable, "-m", "gsomia", "node", "serve", "--dir", str(node.dir), "--log-level", "warning"],
            env=node.env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


def test_a_pending_envelope_is_sent_once_after_the_node_is_killed(pair: tuple[Exchange, Node]) -> None:
    ex, jpn = pair
    auth = ("analyst", PASSWORD)
    obj = indicator("launch track", JPN_SECRET)
    with httpx.Client(auth=auth, timeout=30, verify=TLS) as c:
        root = jpn.taxii + "api/"
        cols = c.get(root + "collections/", headers={"Accept": TAXII}).json()["collections"]
        outbox = next(col["id"] for col in cols if col["alias"] == "outbox")
        os.kill(ex.server.proc.pid, signal.SIGSTOP)  # the exchange does not answer for now
        posted = c.post(
            f"{root}collections/{outbox}/objects/",
            headers={"Accept": TAXII, "Content-Type": TAXII, "Prefer": "respond-async"},
            json={"objects": [JPN_SECRET, obj]},
        )
        assert posted.status_code == 202 and posted.json()["status"] == "pending", posted.text
        jpn.proc.kill()  # SIGKILL: nothing of the process's memory survives
        jpn.proc.wait(timeout=20)
        os.kill(ex.server.proc.pid, signal.SIGCONT)
        _serve_again(jpn)
        status_url = f"{root}status/{posted.json()['id']}/"

        def complete() -> dict[str, Any] | None:
            try:
                body: dict[str, Any] = c.get(status_url, headers={"Accept": TAXII}).json()
            except httpx.TransportError:
                return None  # the node is still starting
            return body if body["status"] == "complete" else None

        status = wait_for(complete, timeout=25, what="the pending status completed after the restart")
        assert status["failure_count"] == 0 and {s["id"] for s in status["successes"]} == {JPN_SECRET["id"], obj["id"]}
        # one report, delivered once to KOR
        assert len([d for d in ex.inbox("KOR") if d.get("originator") == "JPN"]) == 1
