"""Read-only analysis endpoints (status, routes, coverage, gaps, statistics, what-if, report).

Each handler parses its query, calls one service, and renders with the shared views: the
same JSON the CLI prints with ``--json``. What-ifs are given in the query string
(``drop=EVENT_ID`` and ``add='AGREEMENT KIND INSTANT [by PARTY] [effective INSTANT]'``,
both repeatable), so a what-if view is shareable as a URL.

Every route that takes a query reads it through :func:`bounded_query`: a value that names
something (a party, topic, level, agreement, event, instant or what-if event) is at most
:data:`NAME_MAX` characters, a list of parties :data:`LIST_MAX`; a longer one is a 422 before
anything is looked up (an unknown name is compared with every known one for the closest).
A query over flows (coverage, gaps, unknowns, what-if, matrix) visits at most
:data:`FLOWS_MAX` ordered pairs × topics; a wider one is a 422 naming the limit before any is
computed (these routes take no token: one request must not cost seconds of CPU).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from gsomia.api.analysis_schemas import (
    QUERY,
    RECORD,
    ComparisonOut,
    EventOut,
    FlowOut,
    GapOut,
    ImpactReportOut,
    ProvisionOut,
    RecordReportOut,
    RouteOut,
    ScenarioOut,
    SourceOut,
    StatsOut,
    StatusOut,
    TrafficOut,
    UnknownOut,
    answers,
)
from gsomia.api.deps import Caller, app_of
from gsomia.api.schemas import AUTHENTICATED
from gsomia.bootstrap import App
from gsomia.domain.instants import format_duration, iso
from gsomia.domain.record import Caveats, WhatIf
from gsomia.errors import InvalidInput
from gsomia.services.analysis import presenters as views
from gsomia.services.analysis.service import WhatIfSpec
from gsomia.services.exchange.access import Action, authorize

router = APIRouter(prefix="/api/v1", tags=["analysis"])

NAME_MAX = 256
"""The longest query value that names one thing (far above any id, instant or event spec)."""
LIST_MAX = 4096
"""The longest query value that lists parties, comma-separated."""
_LISTS = frozenset({"parties", "rel_to"})
FLOWS_MAX = 5_000
"""The most flows (ordered pairs × topics) one coverage, gaps, unknowns, what-if or matrix
request visits: every pair among 71 parties for one topic, or among 22 parties for ten topics
(the bundled scenario has 770 in all); a what-if over that many answers in well under a second."""


def bounded_query(request: Request) -> None:
    """Refuse a query value longer than :data:`NAME_MAX` characters (:data:`LIST_MAX` for a list
    of parties), before anything is looked up. Checked here rather than declared in the schema,
    so that the documented parameters stay as they are and a request line stays within what the
    HTTP server reads.

    Raises:
        InvalidInput: for the first value too long, naming its parameter.
    """
    for key, value in request.query_params.multi_items():
        limit = LIST_MAX if key in _LISTS else NAME_MAX
        if len(value) > limit:
            raise InvalidInput(f"query parameter {key[:40]!r} is {len(value):,} characters long: at most {limit}")


BOUNDED = [Depends(bounded_query)]
"""The dependencies of every route that takes a query."""

Drop = Annotated[list[str] | None, Query(description="Id of a recorded agreement event to leave out (repeatable).")]
Add = Annotated[
    list[str] | None,
    Query(description="Hypothetical event 'AGREEMENT KIND INSTANT [by PARTY] [effective INSTANT]' (repeatable)."),
]
At = Annotated[str | None, Query(description="ISO 8601 instant with offset, or a date; default: now.")]


def _whatif(app: App, drop: list[str] | None, add: list[str] | None) -> WhatIf:
    return app.analysis.whatif(WhatIfSpec(add=tuple(add or ()), drop=tuple(drop or ())))


def within_flows(
    app: App, *, pair: str | None = None, parties: list[str] | None = None, topic: str | None = None
) -> None:
    """Refuse a query over more than :data:`FLOWS_MAX` flows, before any is computed.

    Raises:
        InvalidInput: naming the count, the limit and how to narrow the query.
        UnknownEntity: for an unknown party or topic.
    """
    n = app.analysis.flow_count(pair=pair, parties=parties, topic=topic)
    if n > FLOWS_MAX:
        raise InvalidInput(
            f"this query covers {n:,} flows (ordered pairs × topics): at most {FLOWS_MAX:,} in one request; "
            "narrow it with pair, parties or topic (the command line has no such limit)"
        )


def _period(app: App, start: str | None, end: str | None) -> tuple[datetime, datetime]:
    """``[from, to)``, or the scenario's window when neither is given.

    Raises:
        InvalidInput: only one of them is given, or ``to`` is not after ``from``.
    """
    lo = app.analysis.instant(start) if start is not None else None  # each checked as given first
    hi = app.analysis.instant(end) if end is not None else None
    if lo is None and hi is None:
        return app.analysis.window()
    if lo is None or hi is None:
        raise InvalidInput("give both from and to, or neither (the scenario's window)")
    if hi <= lo:
        raise InvalidInput("to must be after from")
    return lo, hi


@router.get(
    "/scenario",
    summary="The loaded scenario: parties, agreements, topics, window, assumptions",
    response_model=ScenarioOut,
    responses=answers(*RECORD),
)
def scenario(request: Request) -> dict[str, Any]:
    """Definitions of the loaded scenario, for clients that draw the network."""
    app = app_of(request)
    rec = app.analysis.compiled().record
    z = rec.timezone
    return {
        "name": rec.name,
        "title": rec.title,
        "timezone": z,
        "database": app.store.describe(),
        "window": {"from": iso(rec.window[0], z), "to": iso(rec.window[1], z)} if rec.window else None,
        "assumptions": list(rec.assumptions),
        "question": {
            "title": rec.question.title,
            "agreement": rec.question.agreement,
            "parties": list(rec.question.parties),
            "drop": list(rec.question.whatif.drop),
            "stats_at": iso(rec.question.stats_at, z),
        }
        if rec.question
        else None,
        "topics": [{"id": t, "description": d} for t, d in sorted(rec.topics.items())],
        "parties": [
            {
                "id": p.id,
                "name": p.name,
                "aliases": list(p.aliases),
                "kind": p.kind,
                "ladder": [{"name": lv.name, "rank": lv.rank, "english": lv.english} for lv in p.ladder.levels],
                "authority": {"name": p.authority.name, "cleared_to": p.authority.cleared_to} if p.authority else None,
            }
            for p in sorted(rec.parties.values(), key=lambda x: x.id)
        ],
        "agreements": [
            {
                "id": a.id,
                "name": a.name,
                "parties": list(a.parties),
                "kind": a.kind,
                "legally_binding": a.legally_binding,
                "timezone": a.timezone,
                "direct": a.direct,
                "hub": a.hub,
                "scope": a.scope.describe(),
                "max_level": a.max_level,
                "relay_delay": format_duration(a.relay_delay) if a.relay_delay else None,
                "consent_required": a.consent_required,
                "term_years": a.term.years if a.term else None,
                "notice_days": a.notice.days if a.notice else None,
                "articles": dict(a.articles),
                "source": a.source,
                # the Art. 4.2-style table: common level → party → national levels (first is stamped)
                "common_levels": list(a.equivalence.common) if a.equivalence else [],
                "equivalence": {c: {p: list(lv) for p, lv in row.items()} for c, row in a.equivalence.rows.items()}
                if a.equivalence
                else {},
            }
            for a in sorted(rec.agreements.values(), key=lambda x: x.id)
        ],
    }


@router.get(
    "/events",
    summary="Every recorded agreement event",
    response_model=list[EventOut],
    responses=answers(*RECORD),
)
def events(request: Request) -> list[dict[str, Any]]:
    """Agreement events in time order."""
    rec = app_of(request).analysis.compiled().record
    return [
        views.event_json(e, rec.agreements[e.agreement].timezone)
        for e in sorted(rec.events, key=lambda e: e.sort_key())
    ]


@router.get(
    "/record/reports",
    summary="The record's past reports (e.g. DPRK launch tracks)",
    response_model=list[RecordReportOut],
    responses=answers(*RECORD),
)
def record_reports(request: Request) -> list[dict[str, Any]]:
    """Past reports of the scenario's record, in time order (not the exchange's submissions)."""
    rec = app_of(request).analysis.compiled().record
    return [
        {
            "id": r.id,
            "originator": r.originator,
            "topic": r.topic,
            "level": r.level,
            "created": iso(r.created, rec.timezone),
            "title": r.title,
            "source": r.source,
        }
        for r in sorted(rec.reports, key=lambda r: r.created)
    ]


@router.get(
    "/sources",
    summary="The sources the record's tags cite ([V S11] cites S11), as recorded",
    response_model=list[SourceOut],
    responses=answers(*RECORD),
)
def sources(request: Request) -> list[dict[str, Any]]:
    """The scenario's sources list in its order: id, title, date as given, links as recorded."""
    rec = app_of(request).analysis.compiled().record
    return [views.source_json(s) for s in rec.sources]


@router.get(
    "/provisions",
    summary="Information provided under each agreement, as recorded",
    response_model=list[ProvisionOut],
    responses=answers(*RECORD),
)
def provisions(request: Request) -> list[dict[str, Any]]:
    """Provisions (exchange counts) in time order."""
    rec = app_of(request).analysis.compiled().record
    return [
        {
            "id": p.id,
            "agreement": p.agreement,
            "count": p.count,
            "start": iso(p.start, rec.timezone),
            "end": iso(p.end, rec.timezone),
            "dated": p.dated,
            "by": p.by,
            "note": p.note,
            "source": p.source,
        }
        for p in sorted(rec.provisions, key=lambda p: p.start)
    ]


@router.get(
    "/status",
    summary="Each agreement's derived state at an instant",
    response_model=list[StatusOut],
    responses=answers(*QUERY),
    dependencies=BOUNDED,
)
def status(
    request: Request, at: At = None, agreement: str | None = None, drop: Drop = None, add: Add = None
) -> list[dict[str, Any]]:
    """Same as ``gsomia status --json``."""
    app = app_of(request)
    when = app.analysis.instant(at, agreement=agreement)
    return [views.status_json(s) for s in app.analysis.status(when, _whatif(app, drop, add), agreement)]


@router.get(
    "/route",
    summary="Decide one release: direct, relay or deny, with reasons",
    response_model=RouteOut,
    responses=answers(*QUERY),
    dependencies=BOUNDED,
    # a reason names its agreement only when there is one (as ``--json`` does): not null otherwise
    response_model_exclude_unset=True,
)
def route(
    request: Request,
    originator: str,
    recipient: str,
    topic: str,
    level: str,
    at: At = None,
    rel_to: Annotated[str | None, Query(description="REL TO parties, comma-separated")] = None,
    noforn: bool = False,
    orcon: bool = False,
    drop: Drop = None,
    add: Add = None,
    as_exchange: Annotated[
        bool,
        Query(
            description="Decide as a submission now would be: at the exchange clock (unless `at` is given) and under "
            "its exercise what-if, if any (a party's node previews a release so); takes no `drop` or `add`."
        ),
    ] = False,
) -> dict[str, Any]:
    """Same as ``gsomia route --json``."""
    app = app_of(request)
    if as_exchange:
        # decided as a submission would be: ids as signed, nothing read for the caller
        originator, recipient = originator.upper(), recipient.upper()
        rel = frozenset(p.strip().upper() for p in rel_to.split(",") if p.strip()) if rel_to else None
    else:
        # read as an analyst types them, as ``gsomia route`` does (an alias, any case, a level's
        # English name); an unknown name is a 404 naming the closest, not a denial
        originator, recipient, topic, level, rel = _typed(app, originator, recipient, topic, level, rel_to)
    if as_exchange:
        if drop or add:
            raise InvalidInput("as_exchange decides under the exchange's own what-if: give no drop or add")
        context = app.exchange.context
        spec = context.records.exercise_whatif()
        whatif = app.analysis.whatif(spec) if spec is not None else _whatif(app, None, None)
        when = app.analysis.instant(at) if at else context.shared_clock().now()
    else:
        whatif, when = _whatif(app, drop, add), app.analysis.instant(at)
    r = app.analysis.route(
        originator,
        recipient,
        topic=topic,
        level=level,
        at=when,
        caveats=Caveats(rel_to=rel, noforn=noforn, orcon=orcon),
        whatif=whatif,
    )
    return views.route_json(r, app.analysis.compiled().record.timezone)


def _typed(
    app: App, originator: str, recipient: str, topic: str, level: str, rel_to: str | None
) -> tuple[str, str, str, str, frozenset[str] | None]:
    """The ids an analyst means: parties by id or alias, the topic in any case, the level by its
    national or English name; ``UnknownEntity`` (404) for a name nothing is known by."""
    a = app.analysis
    o = a.resolve("party", originator)
    rel = frozenset(a.resolve("party", p.strip()) for p in rel_to.split(",") if p.strip()) if rel_to else None
    return o, a.resolve("party", recipient), a.resolve("topic", topic), a.resolve("level", level, party=o), rel


@router.get(
    "/coverage",
    summary="Coverage of every ordered pair and topic at an instant",
    response_model=list[FlowOut],
    responses=answers(*QUERY),
    dependencies=BOUNDED,
)
def coverage(
    request: Request,
    at: At = None,
    topic: str | None = None,
    pair: str | None = None,
    drop: Drop = None,
    add: Add = None,
) -> list[dict[str, Any]]:
    """Same as ``gsomia coverage --json``."""
    app = app_of(request)
    within_flows(app, pair=pair, topic=topic)
    rows = app.analysis.coverage(app.analysis.instant(at), topic=topic, pair=pair, whatif=_whatif(app, drop, add))
    return [views.flow_json(f) for f in rows]


@router.get(
    "/gaps",
    summary="Intervals with no route, per pair and topic",
    response_model=list[GapOut],
    responses=answers(*QUERY),
    dependencies=BOUNDED,
)
def gaps(
    request: Request,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    pair: str | None = None,
    topic: str | None = None,
    drop: Drop = None,
    add: Add = None,
) -> list[dict[str, Any]]:
    """Same as ``gsomia gaps --json``."""
    app = app_of(request)
    lo, hi = _period(app, start, end)
    within_flows(app, pair=pair, topic=topic)
    rows = app.analysis.gaps(lo, hi, topic=topic, pair=pair, whatif=_whatif(app, drop, add))
    z = app.analysis.compiled().record.timezone
    return [views.gap_json(g, z) for g in rows]


@router.get(
    "/unknowns",
    summary="Intervals whose coverage is unknown (an entry into force not recorded): not gaps",
    response_model=list[UnknownOut],
    responses=answers(*QUERY),
    dependencies=BOUNDED,
)
def unknowns(
    request: Request,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    pair: str | None = None,
    parties: Annotated[str | None, Query(description="only pairs among these parties, comma-separated")] = None,
    topic: str | None = None,
    drop: Drop = None,
    add: Add = None,
) -> list[dict[str, Any]]:
    """``[{"from", "to", "topic", "start", "end", "agreement"}]``: where a pair has no route in the
    record only because ``agreement``'s entry into force is not recorded (default period: the window)."""
    app = app_of(request)
    lo, hi = _period(app, start, end)
    chosen = [p.strip().upper() for p in parties.split(",") if p.strip()] if parties else None
    within_flows(app, pair=pair, parties=chosen, topic=topic)
    rows = app.analysis.unknowns(lo, hi, topic=topic, pair=pair, parties=chosen, whatif=_whatif(app, drop, add))
    z = app.analysis.compiled().record.timezone
    return [views.unknown_json(u, z) for u in rows]


@router.get(
    "/stats",
    summary="Provisions by year with a trend test",
    response_model=list[StatsOut],
    responses=answers(*QUERY),
    dependencies=BOUNDED,
)
def stats(request: Request, agreement: str | None = None, at: At = None) -> list[dict[str, Any]]:
    """Same as ``gsomia stats --json`` (always a list here)."""
    app = app_of(request)
    rec = app.analysis.compiled().record
    rows = app.analysis.stats(agreement, app.analysis.instant(at, agreement=agreement))
    return [views.stats_json(s, rec.agreements[s.agreement].timezone) for s in rows]


@router.get(
    "/whatif",
    summary="Compare the record with and without a what-if",
    response_model=ComparisonOut,
    responses=answers(*QUERY),
    dependencies=BOUNDED,
    # a reason names its agreement only when there is one (as ``--json`` does): not null otherwise
    response_model_exclude_unset=True,
)
def whatif(
    request: Request,
    drop: Drop = None,
    add: Add = None,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    parties: Annotated[str | None, Query(description="only flows among these parties, comma-separated")] = None,
    topic: str | None = None,
) -> dict[str, Any]:
    """Same as ``gsomia whatif --json``, except that no what-if is not an error here: with no
    ``drop`` and no ``add`` it answers 200 with ``description`` "no change", no changes and the
    recorded gaps (``gaps_before`` = ``gaps_after``), which is how the dashboard reads the recorded
    gaps of its focus parties (``gsomia whatif`` without a what-if exits 4: a command line asks
    for a comparison, the dashboard for a view that may or may not carry a what-if)."""
    app = app_of(request)
    w = _whatif(app, drop, add)
    chosen = [p.strip().upper() for p in parties.split(",") if p.strip()] if parties else None
    lo, hi = _period(app, start, end)
    within_flows(app, parties=chosen, topic=topic)
    c = app.analysis.compare(w, start=lo, end=hi, parties=chosen, topic=topic)
    return views.comparison_json(c, app.analysis.compiled().record)


@router.get(
    "/whatif/traffic",
    summary="The exchange's recorded decisions replayed under a what-if (auditor, operator)",
    response_model=TrafficOut,
    responses=answers(*sorted({*AUTHENTICATED, *QUERY})),
    dependencies=BOUNDED,
)
def whatif_traffic(
    request: Request,
    caller: Caller,
    drop: Drop = None,
    add: Add = None,
    start: Annotated[
        str | None, Query(alias="from", description="only decisions made at or after this instant")
    ] = None,
    end: Annotated[str | None, Query(alias="to", description="only decisions made before this instant")] = None,
    parties: Annotated[str | None, Query(description="only decisions among these parties, comma-separated")] = None,
    topic: str | None = None,
    reports: Annotated[int, Query(ge=0, le=1000, description="report ids listed per group (drill-down)")] = 20,
) -> dict[str, Any]:
    """Same as ``gsomia whatif --traffic --json``: every decision the exchange recorded, decided
    again at its instant under the what-if and compared with what was recorded, per pair, topic
    and change (``stopped``, ``rerouted``, ``changed``, ``released``), with the earliest report
    ids of each group. It reads who sent what topic to whom, so it needs an auditor's or an
    operator's token (the exchange statistics' permission). With no ``drop`` and no ``add`` there is
    nothing to replay: 422 "give a what-if", as ``gsomia whatif --traffic`` exits 4 (the dashboard
    offers the replay only under a what-if)."""
    authorize(caller, Action.READ_STATS)
    app = app_of(request)
    w = _whatif(app, drop, add)
    if w.empty:
        raise InvalidInput(
            "give a what-if to replay the traffic under: drop=EVENT_ID or "
            "add='AGREEMENT KIND INSTANT [by PARTY] [effective INSTANT]' (repeatable), "
            "as 'gsomia whatif --traffic' needs --whatif FILE, --add-event or --drop-event"
        )
    chosen = [p.strip() for p in parties.split(",") if p.strip()] if parties else None
    selection = app.analysis.traffic_selection(
        parties=chosen,
        topic=topic,
        start=app.analysis.instant(start) if start else None,
        end=app.analysis.instant(end) if end else None,
    )
    replay = app.analysis.traffic(w, selection, keep=reports)
    return views.traffic_json(replay, app.analysis.compiled().record)


@router.get(
    "/report",
    summary="The impact report of the scenario's question (or of a what-if)",
    response_model=ImpactReportOut,
    responses=answers(*QUERY),
    dependencies=BOUNDED,
    # a reason names its agreement only when there is one (as ``--json`` does): not null otherwise
    response_model_exclude_unset=True,
)
def report(request: Request, drop: Drop = None, add: Add = None) -> dict[str, Any]:
    """Same as ``gsomia report --json``."""
    app = app_of(request)
    w = _whatif(app, drop, add)
    return views.report_json(app.analysis.report(w if not w.empty else None))
