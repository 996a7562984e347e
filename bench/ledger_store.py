"""The ledger service through the store (SQLite, the embedded default), beside the machine's limits.

Run: ``.venv/bin/python bench/ledger_store.py [--leaves 1000000] [--proofs 20000] [--commits 2000]``

Measures, in one run and on one database folder (a temporary one, removed afterwards):

* the machine's single-row durable commits/s on SQLite in WAL mode, ``synchronous=FULL``
  (fsync at every commit) and ``NORMAL`` (the product's default: fsync at checkpoints);
* ledger appends/s through ``LedgerService.append`` in ``Store.writing()``, one append per
  transaction and a batch of appends per transaction (how group commit uses it), at both
  settings;
* the start-up rebuild of the tree from ``--leaves`` stored leaf hashes;
* inclusion proofs/s at ``--leaves`` leaves from the in-memory tree (``LedgerService.inclusion``,
  base64 and all), alone and with the client's verification;
* full re-verification from the store (``LedgerService.verify``: read every row, re-hash
  every entry, compare with the stored leaf hash, rebuild the tree, check the signed
  checkpoint) at ``--leaves`` entries.

and prints them with the goals (>= 300,000 entries/s re-verified, >= 10,000 proofs/s).
The pure-core numbers are in ``bench/ledger.py``. Speed is measured here, never asserted in
the test suite.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from gsomia.ledger.entries import entry_bytes
from gsomia.ledger.merkle import verify_inclusion
from gsomia.services.ledger.service import LedgerService
from gsomia.storage.store import Store

GOAL_REVERIFY = 300_000  # entries/s
GOAL_PROOFS = 10_000  # inclusion proofs/s
NOW = datetime(2026, 11, 28, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def entry(i: int) -> dict[str, object]:
    """A delivery entry of about 200 bytes, as the exchange writes them."""
    return {
        "type": "delivery",
        "report": f"jpn-{i:012d}",
        "recipient": "KOR",
        "marking": "군사II급비밀",
        "digest": hashlib.sha256(b"%d" % i).hexdigest(),
        "n": i,
    }


def body(i: int) -> bytes:
    """``entry(i)``'s RFC 8785 bytes, formatted directly (rfc8785 is pure Python; 1 M calls are slow)."""
    digest = hashlib.sha256(b"%d" % i).hexdigest()
    return (
        f'{{"digest":"{digest}","marking":"군사II급비밀","n":{i},"recipient":"KOR",'
        f'"report":"jpn-{i:012d}","type":"delivery"}}'
    ).encode()


def sqlite_commits(folder: Path, synchronous: str, n: int) -> float:
    """Single-row commits/s of the raw driver (the machine's limit for one writer)."""
    path = folder / f"commits-{synchronous}.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"PRAGMA synchronous={synchronous}")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    row = os.urandom(200)
    start = time.perf_counter()
    for i in range(n):
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO t VALUES (?, ?)", (i, row))
        con.execute("COMMIT")
    elapsed = time.perf_counter() - start
    con.close()
    return n / elapsed


def appends(folder: Path, synchronous: str, transactions: int, per_transaction: int) -> float:
    """Ledger appends/s through the service, ``per_transaction`` appends in each transaction."""
    store = Store(f"sqlite:///{folder / f'appends-{synchronous}-{per_transaction}.db'}", sqlite_synchronous=synchronous)
    ledger = LedgerService(store, key_file=folder / "exchange-ledger.key", clock=clock)
    ledger.open()
    entries = [entry(i) for i in range(transactions * per_transaction)]
    start = time.perf_counter()
    k = 0
    for _ in range(transactions):
        with store.writing() as s:
            for _ in range(per_transaction):
                ledger.append(s, entries[k])
                k += 1
    elapsed = time.perf_counter() - start
    assert ledger.size() == k
    store.close()
    return k / elapsed


def bulk_load(folder: Path, n: int) -> str:
    """A database with ``n`` ledger rows, inserted in bulk (the load itself is not measured)."""
    url = f"sqlite:///{folder / 'ledger-1m.db'}"
    Store(url).close()  # migrations
    con = sqlite3.connect(folder / "ledger-1m.db", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("BEGIN")
    sha = hashlib.sha256
    at = NOW.replace(tzinfo=None).isoformat(sep=" ")
    step = 100_000
    for lo in range(0, n, step):
        rows = []
        for i in range(lo, min(n, lo + step)):
            b = body(i)
            rows.append((i, sha(b"\x00" + b).digest(), b, at))
        con.executemany("INSERT INTO ledger_entries (idx, leaf_hash, body, recorded_at) VALUES (?, ?, ?, ?)", rows)
    con.execute("COMMIT")
    con.close()
    return url


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000, help="entries in the big ledger (>= 100,000)")
    parser.add_argument("--proofs", type=int, default=20_000)
    parser.add_argument("--commits", type=int, default=2_000, help="single-row commits per setting")
    parser.add_argument("--seed", type=int, default=20191122)
    args = parser.parse_args()
    n: int = args.leaves
    k: int = args.proofs
    rng = random.Random(args.seed)
    assert body(12345) == entry_bytes(entry(12345)), "the bulk loader must write RFC 8785 bytes"
    folder = Path(tempfile.mkdtemp(prefix="gsomia-bench-ledger-"))
    print(
        f"gsomia ledger-through-the-store bench: {n:,} entries, {k:,} proofs, SQLite {sqlite3.sqlite_version}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPU(s), folder {folder}"
    )
    rows: list[tuple[str, float, str, str]] = []
    try:
        # The machine's limits, measured now, on this disk.
        for sync in ("FULL", "NORMAL"):
            rows.append(
                (
                    f"machine: single-row commits, synchronous={sync}",
                    sqlite_commits(folder, sync, args.commits),
                    "commits/s",
                    "",
                )
            )
        # Appends through the service.
        for sync in ("FULL", "NORMAL"):
            per_tx = appends(folder, sync, max(200, args.commits // 2), 1)
            rows.append((f"ledger append, 1 per transaction, synchronous={sync}", per_tx, "appends/s", ""))
            batched = appends(folder, sync, 100, 100)
            rows.append((f"ledger append, 100 per transaction, synchronous={sync}", batched, "appends/s", ""))

        # A big ledger: rebuild, proofs, full re-verification.
        print(f"loading {n:,} ledger rows...", file=sys.stderr)
        url = bulk_load(folder, n)
        store = Store(url)
        ledger = LedgerService(store, key_file=folder / "exchange-ledger.key", clock=clock)
        t, _ = timed(ledger.open)
        rows.append((f"start-up: rebuild the tree from {n:,} stored leaf hashes", n / t, "leaves/s", f"({t:.2f} s)"))

        indices = [rng.randrange(n) for _ in range(k)]
        t, _ = timed(lambda: [ledger.inclusion(i, n) for i in indices])
        proofs_rate = k / t
        rows.append(
            (
                f"inclusion proof at {n:,} leaves (service, base64)",
                proofs_rate,
                "proofs/s",
                _goal(proofs_rate, GOAL_PROOFS),
            )
        )
        root = ledger.key().open(ledger.checkpoint()).root_hash

        def generate_and_verify() -> None:
            for i in indices:
                p = ledger.inclusion(i, n)
                verify_inclusion(
                    base64.b64decode(p["leaf_hash"]), i, n, [base64.b64decode(h) for h in p["proof"]], root
                )

        t, _ = timed(generate_and_verify)
        rows.append(("inclusion proof, service + client verification", k / t, "proofs/s", ""))

        t, report = timed(ledger.verify)
        assert getattr(report, "ok", False), report
        reverify_rate = n / t
        rows.append(
            (
                f"full re-verification from the store, {n:,} entries",
                reverify_rate,
                "entries/s",
                _goal(reverify_rate, GOAL_REVERIFY),
            )
        )
        store.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'measurement'.ljust(width)}  {'rate':>12}  unit        goal")
    print(f"{'-' * width}  {'-' * 12}  ----------  ----")
    for label, rate, unit, goal in rows:
        print(f"{label.ljust(width)}  {rate:>12,.0f}  {unit:<10}  {goal}")
    print()
    met = reverify_rate >= GOAL_REVERIFY and proofs_rate >= GOAL_PROOFS
    print(
        f"goals: >= {GOAL_REVERIFY:,} entries/s re-verified, >= {GOAL_PROOFS:,} proofs/s: {'MET' if met else 'NOT MET'}"
    )
    return 0


def _goal(rate: float, goal: int) -> str:
    return f"{'MET' if rate >= goal else 'NOT MET'} (>= {goal:,})"


if __name__ == "__main__":
    sys.exit(main())
