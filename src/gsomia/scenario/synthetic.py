"""A synthetic agreement network for benchmarks and load tests (not facts: a generator).

``synthetic_document(parties=200, agreements=2000, years=10, seed=1)`` returns a scenario
document (the same shape as a YAML scenario file) with bilateral agreements between random
pairs, some hub arrangements, annual terms with notices, suspensions, withdrawals,
terminations and amendments over ``years`` years, and ``topics`` topics.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from gsomia.errors import Problem, ValidationFailed

LEVELS = ["TOP SECRET", "SECRET", "CONFIDENTIAL"]
TOPIC_ROOTS = ["missile", "nuclear", "naval", "air", "cyber", "space", "ground", "sigint", "humint", "logistics"]


def _party_id(i: int) -> str:
    return f"P{i:03d}"


def synthetic_document(
    *, parties: int = 200, agreements: int = 2000, years: int = 10, topics: int = 10, hubs: int = 40, seed: int = 1
) -> dict[str, Any]:
    """A reproducible synthetic scenario document.

    Raises:
        ValueError: if more bilateral agreements are asked for than there are pairs.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    start = date(2015, 1, 1)
    end = date(2015 + years, 1, 1)
    span = (end - start).days
    ids = [_party_id(i) for i in range(parties)]
    topic_ids = [f"{TOPIC_ROOTS[i % len(TOPIC_ROOTS)]}.t{i}" for i in range(topics)]
    bilateral = agreements - hubs
    pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]]
    if bilateral > len(pairs):
        raise ValueError(f"{bilateral} bilateral agreements need more than {parties} parties")
    chosen = rng.sample(pairs, bilateral)

    def day(offset: int) -> str:
        return (start + timedelta(days=offset)).isoformat()

    doc_agreements: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []

    def table(members: list[str]) -> dict[str, dict[str, list[str]]]:
        return {lv: {p: [lv] for p in members} for lv in LEVELS}

    def scope() -> list[str]:
        if rng.random() < 0.5:
            return ["*"]
        return sorted({t.split(".")[0] for t in rng.sample(topic_ids, rng.randint(1, max(1, topics // 2)))})

    def lifecycle(aid: str, members: list[str], annual: bool) -> None:
        eif = rng.randrange(0, span - 400)
        events.append({"id": f"{aid.lower()}-sig", "agreement": aid, "kind": "signature", "at": day(eif)})
        events.append({"id": f"{aid.lower()}-eif", "agreement": aid, "kind": "entry_into_force", "at": day(eif)})
        r = rng.random()
        by = rng.choice(members)
        if annual and r < 0.35:
            n = rng.randrange(eif + 30, span)
            events.append({"id": f"{aid.lower()}-notice", "agreement": aid, "kind": "notice", "at": day(n), "by": by})
            if rng.random() < 0.5:
                events.append(
                    {
                        "id": f"{aid.lower()}-susp",
                        "agreement": aid,
                        "kind": "suspension",
                        "at": day(n + rng.randint(10, 80)),
                        "by": by,
                    }
                )
                if rng.random() < 0.5:
                    events.append(
                        {
                            "id": f"{aid.lower()}-wd",
                            "agreement": aid,
                            "kind": "withdrawal",
                            "at": day(n + rng.randint(90, 900)),
                            "by": by,
                        }
                    )
        elif r < 0.5:
            events.append(
                {
                    "id": f"{aid.lower()}-end",
                    "agreement": aid,
                    "kind": "termination",
                    "at": day(rng.randrange(eif + 1, span + 365)),
                }
            )
        elif r < 0.6:
            events.append(
                {
                    "id": f"{aid.lower()}-amend",
                    "agreement": aid,
                    "kind": "amendment",
                    "at": day(rng.randrange(eif + 1, span)),
                    "changes": {"max_level": "SECRET"},
                }
            )

    for n, (a, b) in enumerate(chosen):
        aid = f"B{n:04d}"
        annual = rng.random() < 0.4
        doc: dict[str, Any] = {
            "id": aid,
            "name": f"{a}–{b} agreement",
            "parties": [a, b],
            "scope": scope(),
            "common_levels": LEVELS,
            "max_level": rng.choice(["TOP SECRET", "SECRET"]),
            "equivalence": table([a, b]),
            "timezone": "UTC",
        }
        if annual:
            doc["term"] = {"years": 1, "renewal_years": 1}
            doc["notice"] = {"days": 90}
        doc_agreements.append(doc)
        lifecycle(aid, [a, b], annual)
    for n in range(hubs):
        members = rng.sample(ids, rng.randint(3, 8))
        aid = f"H{n:03d}"
        doc_agreements.append(
            {
                "id": aid,
                "name": f"hub arrangement {n}",
                "parties": members,
                "kind": "arrangement",
                "direct": False,
                "hub": members[0],
                "scope": scope(),
                "common_levels": LEVELS,
                "max_level": "SECRET",
                "equivalence": table(members),
                "relay_delay": f"PT{rng.randint(1, 12)}H",
                "timezone": "UTC",
                "relay_delay_source": "synthetic",
            }
        )
        lifecycle(aid, members, annual=False)
    doc = {
        "scenario": {
            "name": f"synthetic-{parties}-{agreements}",
            "title": f"Synthetic network: {parties} parties, {agreements} agreements, {years} years (seed {seed})",
            "timezone": "UTC",
            "window": {"from": start.isoformat(), "to": end.isoformat()},
            "assumptions": ["Synthetic data for benchmarks: no fact in it is real."],
        },
        "topics": [{"id": t} for t in topic_ids],
        "parties": [
            {
                "id": p,
                "name": f"Party {p}",
                "ladder": [{"name": lv, "rank": i + 1} for i, lv in enumerate(LEVELS)],
                "authority": {"name": f"{p} authority", "cleared_to": "TOP SECRET"},
            }
            for p in ids
        ],
        "agreements": doc_agreements,
        "events": events,
    }
    return _without_anomalies(doc)


def _without_anomalies(doc: dict[str, Any]) -> dict[str, Any]:
    """Drop random events that cannot apply (e.g. a suspension after the notice took effect)."""
    from gsomia.scenario.loader import parse_scenario_document  # noqa: PLC0415 - avoids an import cycle

    for _ in range(10):
        try:
            parse_scenario_document(doc)
        except ValidationFailed as e:
            bad = {int(p.path.split(".")[1]) for p in e.problems if p.path.startswith("events.")}
            if not bad or len(bad) != len(e.problems):
                raise
            doc["events"] = [ev for i, ev in enumerate(doc["events"]) if i not in bad]
        else:
            return doc
    raise ValidationFailed([Problem("the synthetic generator could not produce a consistent record")])
