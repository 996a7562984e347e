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
    gen = _Generator(parties=parties, years=years, topics=topics, seed=seed)
    bilateral = agreements - hubs
    pairs = [(a, b) for i, a in enumerate(gen.ids) for b in gen.ids[i + 1 :]]
    if bilateral > len(pairs):
        raise ValueError(f"{bilateral} bilateral agreements need more than {parties} parties")
    chosen = gen.rng.sample(pairs, bilateral)
    doc_agreements = [gen.bilateral(f"B{n:04d}", a, b) for n, (a, b) in enumerate(chosen)]
    doc_agreements += [gen.hub_arrangement(n) for n in range(hubs)]
    doc = {
        "scenario": {
            "name": f"synthetic-{parties}-{agreements}",
            "title": f"Synthetic network: {parties} parties, {agreements} agreements, {years} years (seed {seed})",
            "timezone": "UTC",
            "window": {"from": gen.start.isoformat(), "to": gen.end.isoformat()},
            "assumptions": ["Synthetic data for benchmarks: no fact in it is real."],
        },
        "topics": [{"id": t} for t in gen.topic_ids],
        "parties": [
            {
                "id": p,
                "name": f"Party {p}",
                "ladder": [{"name": lv, "rank": i + 1} for i, lv in enumerate(LEVELS)],
                "authority": {"name": f"{p} authority", "cleared_to": "TOP SECRET"},
            }
            for p in gen.ids
        ],
        "agreements": doc_agreements,
        "events": gen.events,
    }
    return _without_anomalies(doc)


class _Generator:
    """The random choices of one synthetic network, drawn in a fixed order from one seed."""

    def __init__(self, *, parties: int, years: int, topics: int, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
        self.start = date(2015, 1, 1)
        self.end = date(2015 + years, 1, 1)
        self.span = (self.end - self.start).days
        self.ids = [_party_id(i) for i in range(parties)]
        self.topics = topics
        self.topic_ids = [f"{TOPIC_ROOTS[i % len(TOPIC_ROOTS)]}.t{i}" for i in range(topics)]
        self.events: list[dict[str, Any]] = []

    def day(self, offset: int) -> str:
        return (self.start + timedelta(days=offset)).isoformat()

    @staticmethod
    def table(members: list[str]) -> dict[str, dict[str, list[str]]]:
        return {lv: {p: [lv] for p in members} for lv in LEVELS}

    def scope(self) -> list[str]:
        rng = self.rng
        if rng.random() < 0.5:
            return ["*"]
        picked = rng.sample(self.topic_ids, rng.randint(1, max(1, self.topics // 2)))
        return sorted({t.split(".")[0] for t in picked})

    def bilateral(self, aid: str, a: str, b: str) -> dict[str, Any]:
        annual = self.rng.random() < 0.4
        doc: dict[str, Any] = {
            "id": aid,
            "name": f"{a}–{b} agreement",
            "parties": [a, b],
            "scope": self.scope(),
            "common_levels": LEVELS,
            "max_level": self.rng.choice(["TOP SECRET", "SECRET"]),
            "equivalence": self.table([a, b]),
            "timezone": "UTC",
        }
        if annual:
            doc["term"] = {"years": 1, "renewal_years": 1}
            doc["notice"] = {"days": 90}
        self.lifecycle(aid, [a, b], annual)
        return doc

    def hub_arrangement(self, n: int) -> dict[str, Any]:
        rng = self.rng
        members = rng.sample(self.ids, rng.randint(3, 8))
        aid = f"H{n:03d}"
        doc = {
            "id": aid,
            "name": f"hub arrangement {n}",
            "parties": members,
            "kind": "arrangement",
            "direct": False,
            "hub": members[0],
            "scope": self.scope(),
            "common_levels": LEVELS,
            "max_level": "SECRET",
            "equivalence": self.table(members),
            "relay_delay": f"PT{rng.randint(1, 12)}H",
            "timezone": "UTC",
            "relay_delay_source": "synthetic",
        }
        self.lifecycle(aid, members, annual=False)
        return doc

    def event(self, aid: str, suffix: str, kind: str, offset: int, **extra: Any) -> None:
        self.events.append(
            {"id": f"{aid.lower()}-{suffix}", "agreement": aid, "kind": kind, "at": self.day(offset)} | extra
        )

    def lifecycle(self, aid: str, members: list[str], annual: bool) -> None:
        rng, span = self.rng, self.span
        eif = rng.randrange(0, span - 400)
        self.event(aid, "sig", "signature", eif)
        self.event(aid, "eif", "entry_into_force", eif)
        r = rng.random()
        by = rng.choice(members)
        if annual and r < 0.35:
            n = rng.randrange(eif + 30, span)
            self.event(aid, "notice", "notice", n, by=by)
            if rng.random() < 0.5:
                self.event(aid, "susp", "suspension", n + rng.randint(10, 80), by=by)
                if rng.random() < 0.5:
                    self.event(aid, "wd", "withdrawal", n + rng.randint(90, 900), by=by)
        elif r < 0.5:
            self.event(aid, "end", "termination", rng.randrange(eif + 1, span + 365))
        elif r < 0.6:
            self.event(aid, "amend", "amendment", rng.randrange(eif + 1, span), changes={"max_level": "SECRET"})


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
