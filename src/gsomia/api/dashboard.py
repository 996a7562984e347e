"""Compact read endpoints for the dashboard (network slider, lifecycles, coverage matrix).

They return what the browser draws, in the smallest shape that serves it, and compute
nothing themselves: states come from ``AnalysisService.status``, lifecycles are the
timelines the service compiled (with the what-if applied), coverage comes from
``AnalysisService.coverage``. Filtering by party is the only thing done here.
What-ifs are query parameters as everywhere else (``drop``, ``add``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from gsomia.api.analysis import BOUNDED, Add, At, Drop, within_flows
from gsomia.api.analysis_schemas import QUERY, LifecycleOut, MatrixOut, NetworkOut, answers
from gsomia.api.deps import app_of
from gsomia.bootstrap import App
from gsomia.domain.instants import iso
from gsomia.domain.lifecycle import BEGINNING
from gsomia.domain.record import WhatIf
from gsomia.services.analysis import presenters as views
from gsomia.services.analysis.service import WhatIfSpec

router = APIRouter(prefix="/api/v1", tags=["dashboard"])

Parties = Annotated[
    str | None, Query(description="Only these parties, comma-separated (default: every party with a ladder).")
]


def _whatif(app: App, drop: list[str] | None, add: list[str] | None) -> WhatIf:
    return app.analysis.whatif(WhatIfSpec(add=tuple(add or ()), drop=tuple(drop or ())))


def _start(at: datetime, zone: str) -> str | None:
    """An instant, or None for the beginning of time (before any event)."""
    return None if at == BEGINNING else iso(at, zone)


@router.get(
    "/network",
    summary="Every agreement's state at an instant, compactly (the network view's time slider)",
    response_model=NetworkOut,
    responses=answers(*QUERY),
    dependencies=BOUNDED,
)
def network(request: Request, at: At = None, drop: Drop = None, add: Add = None) -> dict[str, Any]:
    """``{"at", "states": [{"agreement", "state"}], "unknown": [agreement]}``: the states of ``/status``
    without their details, so that moving the slider over 2,000 agreements costs a few kilobytes;
    ``unknown`` lists the agreements whose state is not known then (no entry into force recorded)."""
    app = app_of(request)
    when = app.analysis.instant(at)
    rows = app.analysis.status(when, _whatif(app, drop, add))
    zone = app.analysis.compiled().record.timezone
    return {
        "at": iso(when, zone),
        "states": [{"agreement": s.agreement.id, "state": str(s.state)} for s in rows],
        "unknown": [s.agreement.id for s in rows if s.unknown],
    }


@router.get(
    "/lifecycles",
    summary="Each agreement's derived lifecycle: its states over time, and the events behind them",
    response_model=list[LifecycleOut],
    responses=answers(*QUERY),
    dependencies=BOUNDED,
)
def lifecycles(
    request: Request,
    agreement: str | None = None,
    parties: Parties = None,
    drop: Drop = None,
    add: Add = None,
) -> list[dict[str, Any]]:
    """One entry per agreement: ``segments`` (``start``, ``state``, ``ends_at``, ``cause``, ``notice``;
    the first starts at ``null``, i.e. before any event; a segment with no ``cause`` is a derived end,
    such as a termination when a notice runs out) and the ``events`` replayed (hypothetical ones marked);
    ``unknown`` is ``{"from"}`` when no entry into force is recorded (the state is not known from then).
    ``parties`` keeps the agreements that involve any of them."""
    app = app_of(request)
    compiled = app.analysis.with_whatif(_whatif(app, drop, add))
    rec = compiled.record
    ids = [rec.agreement(agreement).id] if agreement else sorted(rec.agreements)
    if parties:
        chosen = {rec.party(p.strip().upper()).id for p in parties.split(",") if p.strip()}
        ids = [a for a in ids if chosen.intersection(rec.agreements[a].parties)]
    out = []
    for aid in ids:
        tl = compiled.network.timelines[aid]
        zone = tl.agreement.timezone
        out.append(
            {
                "agreement": aid,
                "entry": iso(tl.entry, zone),
                # no entry into force recorded: the state is not known from "from" (null: from the start)
                "unknown": None if tl.unknown_from is None else {"from": _start(tl.unknown_from, zone)},
                "segments": [
                    {
                        "start": _start(s.start, zone),
                        "state": str(s.state),
                        "ends_at": iso(s.ends_at, zone),
                        "cause": s.cause,
                        "notice": s.notice,
                    }
                    for s in tl.segments
                ],
                "events": [views.event_json(e, zone) for e in tl.events],
                "anomalies": [{"event": a.event, "message": a.message} for a in tl.anomalies],
            }
        )
    return out


@router.get(
    "/matrix",
    summary="Coverage among some parties for one topic at an instant (the coverage matrix)",
    response_model=MatrixOut,
    responses=answers(*QUERY),
    dependencies=BOUNDED,
)
def matrix(
    request: Request,
    topic: Annotated[str, Query(description="Topic of the matrix, e.g. dprk.missile.launch (any case).")],
    at: At = None,
    parties: Parties = None,
    drop: Drop = None,
    add: Add = None,
) -> dict[str, Any]:
    """``{"at", "topic", "parties", "flows"}``: the flows of ``/coverage`` among ``parties`` (rows are
    originators, columns recipients); ``topic`` as the catalogue spells it, whatever the case it was
    asked in. A relay's ``delay`` is the arrangement's modelled relay delay, a scenario assumption
    (see ``/scenario``'s ``assumptions``), not a sourced figure."""
    app = app_of(request)
    rec = app.analysis.compiled().record
    topic = app.analysis.resolve("topic", topic)
    chosen = [rec.party(p.strip().upper()).id for p in parties.split(",") if p.strip()] if parties else []
    when = app.analysis.instant(at)
    # only the pairs among the chosen parties are computed (those with a ladder, as every pair is)
    among = [p for p in dict.fromkeys(chosen) if rec.parties[p].ladder] or None
    within_flows(app, parties=among, topic=topic)
    flows = app.analysis.coverage(when, topic=topic, whatif=_whatif(app, drop, add), parties=among)
    if chosen:
        keep = set(chosen)
        flows = [f for f in flows if f.originator in keep and f.recipient in keep]
    shown = list(dict.fromkeys(chosen)) or sorted({f.originator for f in flows} | {f.recipient for f in flows})
    return {
        "at": iso(when, rec.timezone),
        "topic": topic,
        "parties": shown,
        "flows": [views.flow_json(f) for f in flows],
    }
