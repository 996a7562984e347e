"""Party node benchmark: how fast one node verifies what it receives.

Run: ``.venv/bin/python bench/node_sync.py [--backlog 2000] [--live 200] [--rate 20]``

Starts ``gsomia serve`` (SQLite, the bundled scenario, exercise clock 2019-11-22 so that JPN →
KOR is direct) and a KOR node in this process, then measures:

1. **catch-up**: ``--backlog`` reports from JPN to KOR are submitted while the node is stopped;
   the node is started and the time until every delivery is stored *verified* gives the
   deliveries verified per second by one node (each: fetch, HPKE unwrap, AES-GCM decrypt,
   Ed25519 signature, two ledger entries with their inclusion proofs, checkpoint consistency
   and cosignature when the ledger grew);
2. **live delay**: with the node caught up, ``--live`` reports sent one by one at ``--rate``
   per second; for each delivery, the delay from the exchange's commit (the ``recorded_at`` of
   the delivery's ledger entry, written inside the committing transaction) to the node storing
   it verified (the node's event), p50 and p99.

Speed is measured here, never asserted in the tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gsomia.node.config import NodeConfig
from gsomia.node.service import NodeService, init_node
from tests.integration.exchange_support import Exchange, start_exchange


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def submit_backlog(ex: Exchange, count: int) -> None:
    bodies = [
        ex.signed("JPN", report_id=f"backlog-{i:05d}", recipients=["KOR"], payload=os.urandom(512))
        for i in range(count)
    ]
    with ex.client("JPN") as c:
        for start in range(0, count, 500):
            r = c.post("/api/v1/report-batches", json={"reports": bodies[start : start + 500]}, timeout=120)
            assert r.status_code == 200, r.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=2000)
    parser.add_argument("--live", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ex = start_exchange(work / "exchange", exercise_clock="2019-11-22T10:00+09:00")
        service: NodeService | None = None
        try:
            config = NodeConfig(party="KOR", exchange=ex.url, dir=work / "kor")
            init_node(config, keys_file=ex.client_dir / "KOR.keys", token=ex.tokens["KOR"])
            submit_backlog(ex, args.backlog)
            service = NodeService.open(work / "kor")
            verified: dict[str, datetime] = {}
            done = threading.Event()
            target = [args.backlog]

            def on_event(kind: str, data: dict[str, Any]) -> None:
                if kind == "delivery" and data.get("state") == "verified":
                    verified[str(data["delivery_id"])] = datetime.now(UTC)
                    if len(verified) >= target[0]:
                        done.set()
                elif kind == "delivery":
                    print(f"unexpected: {data}", file=sys.stderr)

            service.bus.subscribe(on_event)
            t0 = time.perf_counter()
            service.start(witness_interval=10.0)
            if not done.wait(timeout=1800):
                raise SystemExit(f"only {len(verified)} of {args.backlog} deliveries verified")
            elapsed = time.perf_counter() - t0
            rate = args.backlog / elapsed
            print(
                f"catch-up: {args.backlog} deliveries verified in {elapsed:.1f} s = {rate:.0f} deliveries/s (one node)"
            )

            done.clear()
            target[0] = args.backlog + args.live
            sent: list[tuple[str, int]] = []
            with ex.client("JPN") as c:
                start = time.perf_counter()
                for i in range(args.live):
                    due = start + i / args.rate
                    pause = due - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)  # open loop: send at the scheduled rate
                    body = ex.signed("JPN", report_id=f"live-{i:05d}", recipients=["KOR"], payload=os.urandom(512))
                    r = c.post("/api/v1/reports", json=body)
                    assert r.status_code == 201, r.text
                    d = r.json()["recipients"][0]["deliveries"][0]
                    sent.append((d["id"], d["leaf_index"]))
            if not done.wait(timeout=600):
                raise SystemExit("the live deliveries were not all verified")
            delays = []
            with ex.client("auditor") as c:
                for delivery_id, leaf in sent:
                    recorded = c.get(f"/api/v1/ledger/entries/{leaf}").json()["recorded_at"]
                    committed = datetime.fromisoformat(recorded.replace("Z", "+00:00"))
                    delays.append((verified[delivery_id] - committed).total_seconds() * 1000)
            print(
                f"live at {args.rate:.0f}/s: commit → verified p50 {percentile(delays, 0.5):.1f} ms, "
                f"p99 {percentile(delays, 0.99):.1f} ms, max {max(delays):.1f} ms, mean {statistics.fmean(delays):.1f} ms "
                f"({len(delays)} deliveries)"
            )
        finally:
            if service is not None:
                service.close()
            ex.stop()


if __name__ == "__main__":
    main()
