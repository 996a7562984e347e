"""Party node benchmark: what a page of deliveries costs the node's store as deliveries accumulate.

Run: ``.venv/bin/python bench/node_lookups.py [--stored 100000] [--page 12]``

Builds a node store (SQLCipher, as ``gsomia node init`` makes it) holding ``--stored`` verified
deliveries, then times, median of 7, the lookup the sync makes for every page it reads: which of
the page's deliveries (half of them stored, half new) were decided before
(``Syncer._finals``). Beside it, in the same run, the anchor: the same question asked as
``delivery_id IN (…) AND state IN (…)``, which SQLite answers by walking the state index
(every verified delivery), as the sync asked it before. Also the witness's status (it counts the
accepted checkpoints) with ``--stored`` of them.

Speed is measured here, never asserted in the tests.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gsomia.node.store import NodeStore, checkpoints, deliveries
from gsomia.node.sync import Syncer
from gsomia.node.witness import LedgerWitness
from tests.unit.node.support import verified_row

CHUNK = 20_000


def _row(i: int) -> dict[str, Any]:
    return verified_row(
        i,
        delivery_id=f"d-{i:012d}",
        processed_at="2019-11-22T01:00:01Z",
        payload=secrets.token_bytes(600),
        search="r " * 100,
    )


def fill(store: NodeStore, count: int) -> float:
    start = time.perf_counter()
    for first in range(0, count, CHUNK):
        last = min(count, first + CHUNK)
        with store.write() as c:
            c.execute(insert(deliveries), [_row(i) for i in range(first, last)])
            c.execute(
                insert(checkpoints),
                [{"size": i + 1, "root": "", "note": "", "accepted_at": ""} for i in range(first, last)],
            )
    return time.perf_counter() - start


def median_ms(call: Callable[[], object], times: int = 7) -> float:
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        spent.append((time.perf_counter() - start) * 1000)
    return statistics.median(spent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stored", type=int, default=100_000, help="verified deliveries in the store")
    parser.add_argument("--page", type=int, default=12, help="deliveries in the page looked up")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gsomia-node-lookups-") as tmp:
        store = NodeStore(Path(tmp) / "node.db", secrets.token_bytes(32))
        try:
            print(f"filling the store with {args.stored:,} verified deliveries …", file=sys.stderr, flush=True)
            print(f"store filled in {fill(store, args.stored):.1f} s")
            half = args.page // 2
            ids = [f"d-{i:012d}" for i in range(args.stored - half, args.stored)]
            ids += [f"new-{i}" for i in range(args.page - len(ids))]
            syncer = Syncer(
                store,
                party="KOR",
                keyring=None,  # type: ignore[arg-type]  # not used by the lookup
                witness=None,  # type: ignore[arg-type]
                connect=None,  # type: ignore[arg-type]
                publish=lambda kind, body: None,
            )
            found = syncer._finals(ids)
            assert len(found) == half, found
            now = median_ms(lambda: syncer._finals(ids))
            syncer.close()
            former = select(deliveries.c.delivery_id).where(
                deliveries.c.delivery_id.in_(ids), deliveries.c.state.in_(("verified", "quarantined"))
            )

            def ask_former() -> None:
                with store.read() as c:
                    c.execute(former).all()

            anchor = median_ms(ask_former)
            witness = LedgerWitness(store, key=None, cosigner=None, publish=lambda k, d: None)  # type: ignore[arg-type]
            status = median_ms(witness.summary)
            print(f"| measure, {args.stored:,} stored | median of 7 |")
            print("|---|---|")
            print(f"| which of a page of {args.page} were decided (the sync, per page) | {now:.2f} ms |")
            print(f"| anchor: the same as id IN (…) AND state IN (…) (the sync before) | {anchor:.2f} ms |")
            print(f"| witness status ({args.stored:,} accepted checkpoints) | {status:.2f} ms |")
        finally:
            store.close()


if __name__ == "__main__":
    main()
