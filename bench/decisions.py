"""Engine benchmark: release decisions, coverage and gaps on a 200-party synthetic network,
with the same release check expressed as a Cedar policy and compared in the same run.

Run: ``.venv/bin/python bench/decisions.py`` (about a minute on 2 cores).

What is measured
- decisions/s in-process: ``routing.explain`` (rules 1–7 + route search + marking) on random
  requests (80% between parties that share an agreement, 20% between any two parties;
  random instant over 10 years, random topic and level). Reported cold (rule outcomes not
  yet memoised: first pass on a fresh network) and warm (second pass, after ``gc.freeze()``,
  as a long-running exchange is after warm-up).
- Cedar (cedarpy): the direct-release rules (agreement in force at the instant, topic in
  scope, level at or below the maximum, recipient cleared) as ONE static Cedar policy over
  entities (parties, topic hierarchy, one entity per agreement window); policy set and
  entities parsed once, handles reused, requests batched per decision. For each request
  the application enumerates the windows of the pair's agreements (as it would enumerate
  resources); Cedar decides. Relays are compositions of direct checks and are outside the
  Cedar comparison: our "direct" must equal Cedar's "allow" on every sampled request.
- coverage for all 200×199 ordered pairs × 10 topics at one instant, and gaps for all of
  them over 10 years (exact intervals).
"""

from __future__ import annotations

import gc
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import cedarpy

from gsomia.domain.coverage import FOREVER, CoverageIndex, coverage_at, gaps, pairs_of
from gsomia.domain.record import Network, compile_network
from gsomia.domain.routing import Decision, ReleaseRequest, explain
from gsomia.scenario.loader import parse_scenario_document
from gsomia.scenario.synthetic import LEVELS, synthetic_document

GOAL_DECISIONS = 250_000
GOAL_RATIO = 10.0
GOAL_COVERAGE_S = 1.0
GOAL_GAPS_S = 5.0
N_DECISIONS = 200_000
N_CEDAR = 6_000

POLICY = """
permit(principal, action == Action::"release", resource)
when {
  resource.parties.contains(principal) &&
  resource.parties.contains(context.recipient) &&
  context.at >= resource.start && context.at < resource.end &&
  context.topic in resource.scope &&
  context.rank >= resource.maxRank &&
  context.rank >= context.recipient.clearedRank
};
"""


def _dt(t: datetime) -> dict[str, Any]:
    return {"__extn": {"fn": "datetime", "arg": t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}}


def _ent(kind: str, ident: str) -> dict[str, Any]:
    return {"__entity": {"type": kind, "id": ident}}


def cedar_model(net: Network, index: CoverageIndex) -> tuple[Any, Any, dict[str, list[str]]]:
    """Entities and policy for the direct-release check; windows by agreement."""
    rec = net.record
    entities: list[dict[str, Any]] = []
    for p in rec.parties.values():
        cleared = p.ladder.get(p.authority.cleared_to) if p.authority else None
        entities.append(
            {
                "uid": {"type": "Party", "id": p.id},
                "attrs": {"clearedRank": (cleared.rank - 1) if cleared else 99},
                "parents": [],
            }
        )
    prefixes = {"*"}
    for t in rec.topics:
        parts = t.split(".")
        prefixes.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    for pre in sorted(prefixes):
        parent = [] if pre == "*" else [{"type": "Topic", "id": pre.rsplit(".", 1)[0] if "." in pre else "*"}]
        entities.append({"uid": {"type": "Topic", "id": pre}, "attrs": {}, "parents": parent})
    windows: dict[str, list[str]] = {}
    for aid in sorted(rec.agreements):
        a = rec.agreements[aid]
        if not a.direct or a.equivalence is None:
            continue
        for n, (start, stop, scope_of, max_level) in enumerate(index.pieces(aid)):
            if max_level is None:
                continue
            wid = f"{aid}#{n}"
            windows.setdefault(aid, []).append(wid)
            scope = sorted(scope_of.prefixes)
            end = stop if stop != FOREVER else datetime(2200, 1, 1, tzinfo=UTC)
            entities.append(
                {
                    "uid": {"type": "Window", "id": wid},
                    "attrs": {
                        "parties": [_ent("Party", p) for p in a.parties],
                        "start": _dt(start),
                        "end": _dt(end),
                        "scope": [_ent("Topic", s) for s in scope],
                        "maxRank": a.equivalence.rank(max_level) or 0,
                    },
                    "parents": [],
                }
            )
    return cedarpy.PolicySet.from_str(POLICY), cedarpy.Entities.from_json_str(json.dumps(entities)), windows


def random_requests(net: Network, n: int, seed: int) -> list[ReleaseRequest]:
    rng = random.Random(seed)
    rec = net.record
    parties = sorted(rec.parties)
    topics = sorted(rec.topics)
    linked = sorted(net.direct) + sorted(net.relays)
    lo, hi = rec.window or (datetime(2015, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))
    span = int((hi - lo).total_seconds())
    out = []
    for _ in range(n):
        o, r = rng.choice(linked) if rng.random() < 0.8 else tuple(rng.sample(parties, 2))
        out.append(
            ReleaseRequest(
                originator=o,
                recipient=r,
                topic=rng.choice(topics),
                level=rng.choice(LEVELS),
                at=lo + timedelta(seconds=rng.randrange(span)),
            )
        )
    return out


def main() -> int:
    t0 = time.perf_counter()
    doc = synthetic_document(parties=200, agreements=2000, years=10, topics=10, seed=1)
    rec = parse_scenario_document(doc).record
    net = compile_network(rec)
    index = CoverageIndex(net)
    print(
        f"network: {len(rec.parties)} parties, {len(rec.agreements)} agreements, {len(rec.events)} events, "
        f"{len(rec.topics)} topics (built in {time.perf_counter() - t0:.1f} s)"
    )
    reqs = random_requests(net, N_DECISIONS, seed=7)

    # --- ours ------------------------------------------------------------------------------
    t = time.perf_counter()
    results = [explain(net, q) for q in reqs]
    cold = len(reqs) / (time.perf_counter() - t)
    gc.collect()
    gc.freeze()
    t = time.perf_counter()
    results = [explain(net, q) for q in reqs]
    warm = len(reqs) / (time.perf_counter() - t)
    mix = {d: sum(1 for r in results if r.decision is d) for d in Decision}

    # --- Cedar -----------------------------------------------------------------------------
    policies, entities, windows = cedar_model(net, index)
    sample = reqs[:N_CEDAR]
    rank = {lv: i for i, lv in enumerate(LEVELS)}
    batches = []
    for q in sample:
        assert q.at is not None
        ctx = {
            "recipient": _ent("Party", q.recipient),
            "at": _dt(q.at),
            "topic": _ent("Topic", q.topic),
            "rank": rank[q.level],
        }
        wins = [w for aid in net.direct.get((q.originator, q.recipient), ()) for w in windows.get(aid, [])]
        batches.append(
            [
                {
                    "principal": {"type": "Party", "id": q.originator},
                    "action": {"type": "Action", "id": "release"},
                    "resource": {"type": "Window", "id": w},
                    "context": ctx,
                }
                for w in wins
            ]
        )
    t = time.perf_counter()
    cedar_answers = []
    for batch in batches:
        allowed = False
        if batch:
            answers = cedarpy.is_authorized_batch(batch, policies, entities)
            errors = [e for a in answers for e in a.diagnostics.errors]
            if errors:
                print("cedar error:", errors[0], file=sys.stderr)
                return 2
            allowed = any(a.allowed for a in answers)
        cedar_answers.append(allowed)
    cedar_rate = len(batches) / (time.perf_counter() - t)
    ours = [r.decision is Decision.DIRECT for r in results[:N_CEDAR]]
    disagree = [i for i, (a, b) in enumerate(zip(ours, cedar_answers, strict=True)) if a != b]
    if disagree:
        i = disagree[0]
        print(
            f"DISAGREEMENT on {len(disagree)} of {N_CEDAR}: first {sample[i]} ours={results[i].decision} cedar={cedar_answers[i]}",
            file=sys.stderr,
        )
        return 1

    # --- coverage and gaps -----------------------------------------------------------------
    pairs = pairs_of(rec.parties)
    topics = sorted(rec.topics)
    at = datetime(2020, 6, 1, tzinfo=UTC)
    t = time.perf_counter()
    cov = coverage_at(CoverageIndex(net), at, pairs, topics)
    coverage_s = time.perf_counter() - t
    lo, hi = rec.window or (datetime(2015, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))
    t = time.perf_counter()
    found = gaps(CoverageIndex(net), lo, hi, pairs, topics)
    gaps_s = time.perf_counter() - t

    ratio = warm / cedar_rate

    def verdict(ok: bool) -> str:
        return "MET" if ok else "NOT MET"

    print()
    print(f"{'measure':<48} {'value':>14}  {'goal':>12}  verdict")
    print(
        f"{'decisions/s, warm (memoised rule outcomes)':<48} {warm:>14,.0f}  {'>= 250,000':>12}  {verdict(warm >= GOAL_DECISIONS)}"
    )
    print(f"{'decisions/s, cold (fresh network)':<48} {cold:>14,.0f}  {'':>12}")
    print(f"{'Cedar decisions/s (same direct check)':<48} {cedar_rate:>14,.0f}")
    print(f"{'ratio warm / Cedar':<48} {ratio:>14.1f}x  {'>= 10x':>12}  {verdict(ratio >= GOAL_RATIO)}")
    print(f"{'answers compared with Cedar (all equal)':<48} {N_CEDAR:>14,}")
    print(
        f"{'coverage 200x199 pairs x 10 topics (s)':<48} {coverage_s:>14.2f}  {'<= 1 s':>12}  {verdict(coverage_s <= GOAL_COVERAGE_S)}"
        f"   ({len(cov):,} cells)"
    )
    print(
        f"{'gaps, all pairs x topics over 10 years (s)':<48} {gaps_s:>14.2f}  {'<= 5 s':>12}  {verdict(gaps_s <= GOAL_GAPS_S)}"
        f"   ({len(found):,} gap intervals)"
    )
    print(f"decision mix: {', '.join(f'{k}: {v:,}' for k, v in mix.items())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
