"""The what-if over the exchange's own traffic, at a million stored reports.

Run: ``.venv/bin/python bench/traffic.py [--reports 1000000] [--runs 3] [--db URL] [--keep] [--sample N]``

Generates ``--reports`` reports into a fresh database (a temporary SQLite file unless ``--db``
names one; ``--keep`` leaves the temporary file in place and prints its URL, and a ``--db`` that
already holds that many reports is reused as it is), each with one to three recipient decisions
made by the engine on the bundled japan-korea-2019 record at the report's instant, spread from
the agreement's entry into force (2016-11-23) to 2024, and stored as the exchange stores them:
report rows with a signed object, a payload ciphertext and a sealed key of realistic sizes, and
decision rows with the full route JSON. Then it replays the whole traffic ``--runs`` times under
the scenario's question (drop the 2019 suspension of Korea's notice), through the product's own
path (``AnalysisService.traffic``: streamed from the store, decided again in exact batches), and
prints each run's wall time against the goal (1,000,000 reports in at most 20 s) and against two
anchors measured in the same run, on the same rows and the same load: streaming the rows with
nothing decided (the store's floor) and deciding a sample one by one (the naive way).

The data are synthetic: originators JPN, KOR and USA; recipients mostly among them; every
topic of the catalogue; levels from each originator's ladder; a few reports with REL TO or
ORCON caveats. Speed is measured here, never asserted in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from gsomia.bootstrap import Settings, build
from gsomia.domain.record import Caveats, WhatIf
from gsomia.domain.routing import Decision, ReleaseRequest, explain
from gsomia.services.analysis import presenters as views
from gsomia.storage.exchange import DecisionRow, SubmittedReportRow
from gsomia.storage.traffic import TrafficReader

GOAL_SECONDS = 20.0
GOAL_REPORTS = 1_000_000
START = datetime(2016, 11, 23, tzinfo=UTC)
END = datetime(2024, 1, 1, tzinfo=UTC)
CHUNK = 5_000

# who sends to whom, as weights: the crisis' own traffic dominates
ORIGINATORS = {"JPN": 5, "KOR": 4, "USA": 2}
RECIPIENTS = {
    "JPN": {"KOR": 8, "USA": 6, "AUS": 1, "GBR": 1, "NATO": 1},
    "KOR": {"JPN": 8, "USA": 6, "AUS": 1},
    "USA": {"JPN": 5, "KOR": 5},
}


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def generate(url: str, n: int, data_dir: Path, seed: int = 7) -> int:
    """Load the scenario and store ``n`` reports with their decisions; the number of decisions."""
    app = build(Settings(db=url, data_dir=data_dir))
    try:
        app.scenarios.load("japan-korea-2019")
        compiled = app.analysis.compiled()
        rec, net = compiled.record, compiled.network
        topics = sorted(rec.topics)
        ladders = {p: rec.parties[p].ladder.names() for p in ORIGINATORS}
        rng = random.Random(seed)
        span = (END - START).total_seconds()
        instants = sorted(START + timedelta(seconds=rng.random() * span) for _ in range(n))
        payload = os.urandom(512)
        sealed = os.urandom(60)
        signature = "A" * 88
        decisions = 0
        route_text: dict[tuple[Any, ...], dict[str, Any]] = {}
        t0 = time.perf_counter()
        with app.store.engine.begin() as conn:
            rows_r: list[dict[str, Any]] = []
            rows_d: list[dict[str, Any]] = []
            for i, at in enumerate(instants):
                o = _pick(rng, ORIGINATORS)
                k = rng.choice((1, 1, 2, 2, 3))
                recipients = sorted({_pick(rng, RECIPIENTS[o]) for _ in range(k)})
                topic = rng.choice(topics)
                level = rng.choice(ladders[o])
                roll = rng.random()
                caveats = (
                    Caveats(orcon=True)
                    if roll < 0.02
                    else Caveats(rel_to=frozenset(recipients))
                    if roll < 0.08
                    else Caveats()
                )
                key = f"{o}/R-{i:07d}"
                created = at.isoformat().replace("+00:00", "Z")
                rows_r.append(
                    {
                        "id": key,
                        "originator": o,
                        "topic": topic,
                        "level": level,
                        "caveats": caveats.to_json(),
                        "created": created,
                        "recipients": recipients,
                        "content_type": "application/json",
                        "digest": f"{i:064x}",
                        "signature": signature,
                        "key": "f" * 64,
                        "payload": payload,
                        "sealed_key": sealed,
                        "payload_size": len(payload),
                        "received_at": at,
                        "leaf_index": decisions + i,
                        "signed_report": json.dumps(
                            {
                                "id": key.split("/", 1)[1],
                                "originator": o,
                                "topic": topic,
                                "level": level,
                                "caveats": caveats.to_json(),
                                "created": created,
                                "recipients": recipients,
                                "content_type": "application/json",
                                "payload_sha256": f"{i:064x}",
                            },
                            ensure_ascii=False,
                        ),
                        "salt": sealed[:32],
                    }
                )
                for r in recipients:
                    route = explain(
                        net, ReleaseRequest(originator=o, recipient=r, topic=topic, level=level, at=at, caveats=caveats)
                    )
                    shape = (o, r, topic, level, caveats, route.decision, route.via, route.marking)
                    doc = route_text.get(shape)
                    if doc is None:
                        doc = views.route_json(route, "UTC")
                        route_text[shape] = doc
                    outcome = {
                        Decision.DIRECT: "delivered",
                        Decision.RELAY: "relayed" if rng.random() < 0.7 else "pending_consent",
                        Decision.DENY: "denied",
                    }[route.decision]
                    rows_d.append(
                        {
                            "report_id": key,
                            "recipient": r,
                            "decision": str(route.decision),
                            "outcome": outcome,
                            "route": doc | {"at": created},
                            "decided_at": at,
                            "leaf_index": decisions + i,
                        }
                    )
                    decisions += 1
                if len(rows_r) >= CHUNK:
                    conn.execute(insert(SubmittedReportRow), rows_r)
                    conn.execute(insert(DecisionRow), rows_d)
                    rows_r.clear()
                    rows_d.clear()
                    if (i + 1) % 100_000 == 0:
                        sys.stdout.write(f"  generated {i + 1:,} reports ({time.perf_counter() - t0:.0f} s)\n")
                        sys.stdout.flush()
            if rows_r:
                conn.execute(insert(SubmittedReportRow), rows_r)
                conn.execute(insert(DecisionRow), rows_d)
        return decisions
    finally:
        app.close()


def stored(url: str, data_dir: Path) -> tuple[int, int]:
    """Reports and decisions already in the database."""
    app = build(Settings(db=url, data_dir=data_dir))
    try:
        with app.store.reading() as s:
            n = int(s.scalar(select(func.count()).select_from(SubmittedReportRow)) or 0)
            d = int(s.scalar(select(func.count()).select_from(DecisionRow)) or 0)
        return n, d
    finally:
        app.close()


def replay(url: str, data_dir: Path) -> tuple[float, float, Any]:
    """One replay of the whole traffic under the scenario's question: wall and CPU seconds."""
    app = build(Settings(db=url, data_dir=data_dir))
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        rec = app.analysis.compiled().record
        question = rec.question
        whatif = question.whatif if question is not None else WhatIf("")
        impact = app.analysis.traffic(whatif).impact
        return time.perf_counter() - t0, time.process_time() - c0, impact
    finally:
        app.close()


def anchor_stream(url: str, data_dir: Path) -> tuple[float, int]:
    """The floor, measured in the same run: the same rows streamed from the store through the
    same reader, with nothing decided. Wall seconds and rows read."""
    app = build(Settings(db=url, data_dir=data_dir))
    try:
        reader = TrafficReader(app.store)
        t0 = time.perf_counter()
        rows = sum(len(page) for page in reader.pages())
        return time.perf_counter() - t0, rows
    finally:
        app.close()


def anchor_each(url: str, data_dir: Path, sample: int) -> tuple[float, int]:
    """The naive way, measured in the same run: the first ``sample`` decisions each decided on
    their own (``explain`` on the record and on the what-if, per row). Wall seconds and rows."""
    app = build(Settings(db=url, data_dir=data_dir))
    try:
        rec = app.analysis.compiled().record
        whatif = rec.question.whatif if rec.question is not None else WhatIf("")
        base, alt = app.analysis.compiled().network, app.analysis.with_whatif(whatif).network
        reader = TrafficReader(app.store)
        rows: list[Any] = []
        for page in reader.pages(page_size=min(sample, 20_000)):
            rows.extend(page[: sample - len(rows)])
            if len(rows) >= sample:
                break
        t0 = time.perf_counter()
        for _report, o, r, topic, level, cav, at, _decision, _outcome in rows:
            req = ReleaseRequest(
                originator=o, recipient=r, topic=topic, level=level, at=reader.instant(at), caveats=reader.caveats(cav)
            )
            explain(base, req)
            explain(alt, req)
        return time.perf_counter() - t0, len(rows)
    finally:
        app.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reports", type=int, default=GOAL_REPORTS)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary database and print its URL")
    ap.add_argument("--sample", type=int, default=20_000, help="decisions decided one by one for the naive anchor")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gsomia-traffic-"))
    url = args.db or f"sqlite:///{tmp / 'traffic.db'}"
    print(f"gsomia traffic what-if benchmark · {platform.python_implementation()} {platform.python_version()}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores · database {url.split('@')[-1]}")
    try:
        have, decisions = stored(url, tmp)
        if have == args.reports:
            print(f"reusing {have:,} stored reports ({decisions:,} decisions)")
        elif have:
            print(f"error: the database holds {have:,} reports, not {args.reports:,}: give an empty one")
            return 2
        else:
            t0 = time.perf_counter()
            decisions = generate(url, args.reports, tmp)
            print(f"generated {args.reports:,} reports, {decisions:,} decisions in {time.perf_counter() - t0:.0f} s")
        goal = GOAL_SECONDS * args.reports / GOAL_REPORTS
        # the anchors, in this run and on this machine's load: the store's floor and the naive way
        floor, read = anchor_stream(url, tmp)
        print(f"anchor, streaming only: {read:,} decisions read with nothing decided in {floor:.1f} s")
        each, sampled = anchor_each(url, tmp, args.sample)
        naive = floor + each / max(sampled, 1) * decisions
        print(
            f"anchor, one by one: {sampled:,} decisions decided each on its own in {each:.2f} s, "
            f"so {naive:,.1f} s for all {decisions:,} with the streaming"
        )
        for run in range(1, args.runs + 1):
            load = os.getloadavg()[0]
            seconds, cpu, impact = replay(url, tmp)
            verdict = "meets" if seconds <= goal else "MISSES"
            print(
                f"run {run}: replayed {impact.decisions:,} decisions of {args.reports:,} reports in {seconds:.1f} s "
                f"wall, {cpu:.1f} s CPU ({impact.decisions / seconds:,.0f} decisions/s; {impact.distinct:,} distinct "
                f"batches; load average {load:.1f} at the start) — goal ≤ {goal:.1f} s: {verdict}; "
                f"{seconds / floor:.2f}× streaming only, {naive / seconds:,.1f}× faster than one by one"
            )
        print(
            "under the what-if: "
            + ", ".join(f"{impact.count(k):,} {k}" for k in ("stopped", "rerouted", "changed", "released"))
            + f", {impact.unchanged:,} unchanged"
        )
        return 0
    finally:
        if args.keep and not args.db:
            print(f"kept: {url}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
