"""JSON shapes of analysis results, shared by ``--json`` in the CLI and by the API.

These are contracts users script against: keys are only ever added, never renamed.
Instants are ISO 8601 in the agreement's zone (or the scenario's, for pair-level results);
durations are ISO 8601 (``PT4H``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from gsomia.domain.agreements import AgreementEvent
from gsomia.domain.coverage import Flow, FlowSegment, Gap
from gsomia.domain.instants import format_duration, iso
from gsomia.domain.lifecycle import Status
from gsomia.domain.markings import Marking
from gsomia.domain.record import Record, SourceEntry, WhatIf
from gsomia.domain.routing import Route
from gsomia.domain.stats import ProvisionStats
from gsomia.domain.traffic import KINDS, TrafficGroup
from gsomia.domain.whatif import FlowChange
from gsomia.services.analysis.service import Comparison, ImpactReport, TrafficReplay


def event_json(e: AgreementEvent, zone: str) -> dict[str, Any]:
    """An agreement event."""
    return {
        "id": e.id,
        "agreement": e.agreement,
        "kind": str(e.kind),
        "at": iso(e.at, zone),
        "by": e.by,
        "effective": iso(e.effective, zone),
        "note": e.note,
        "source": e.source,
        "hypothetical": e.hypothetical,
    }


def status_json(s: Status) -> dict[str, Any]:
    """``{"agreement", "state", "in_force", "term_end", "notice_deadline", "ends_at", "events", …}``."""
    a = s.agreement
    z = a.timezone
    return {
        "agreement": a.id,
        "name": a.name,
        "parties": list(a.parties),
        "state": str(s.state),
        "in_force": s.in_force,
        "since": iso(s.since, z),
        "term_end": iso(s.term[1], z) if s.term else None,
        "notice_deadline": s.notice_deadline.isoformat() if s.notice_deadline else None,
        "ends_at": iso(s.ends_at, z),
        "notice": s.notice,
        "post_termination_protection": a.post_termination_protection,
        "legally_binding": a.legally_binding,
        "at": iso(s.at, z),
        "events": [event_json(e, z) for e in s.events],
        "unknown": s.unknown,
    }


def marking_json(m: Marking | None, *, originator: str, originator_level: str, recipient: str) -> dict[str, Any]:
    """The one JSON shape of a marking (Art. 4.2), wherever one is shown:
    ``{"originator", "originator_level", "recipient", "recipient_level", "common_level", "banner"}``.

    For a release that is denied there is no translation: the recipient's and the common level
    and the banner are null.
    """
    return {
        "originator": originator,
        "originator_level": originator_level,
        "recipient": recipient,
        "recipient_level": m.recipient_level if m else None,
        "common_level": m.common_level if m else None,
        "banner": m.banner() if m else None,
    }


def route_json(r: Route, zone: str) -> dict[str, Any]:
    """``{"decision", "path", "agreements", "consent_required", "marking", "delay", "assumptions", "reasons", …}``."""
    req = r.request
    m = r.marking
    return {
        "decision": str(r.decision),
        "originator": req.originator,
        "recipient": req.recipient,
        "topic": req.topic,
        "at": iso(req.at, zone) if req.at and req.at.tzinfo else None,
        "path": list(r.path),
        "agreements": list(r.agreements),
        "arrangement": r.arrangement,
        "via": r.via,
        "consent_required": r.consent_required,
        "per_report_consent": r.per_report_consent,
        "marking": marking_json(m, originator=req.originator, originator_level=req.level, recipient=req.recipient),
        "delay": format_duration(r.delay),
        "assumptions": list(r.assumptions),
        "legs": [
            {
                "from": leg.sender,
                "to": leg.receiver,
                "agreement": leg.agreement,
                "at": iso(leg.at, zone),
                "marking": marking_json(
                    leg.marking,
                    originator=leg.marking.originator,
                    originator_level=leg.marking.level,
                    recipient=leg.receiver,
                ),
            }
            for leg in r.legs
        ],
        "reasons": [x.as_dict() for x in r.reasons],
    }


def flow_json(f: Flow) -> dict[str, Any]:
    """``{"from", "to", "topic", "route", "via", "delay", "agreement"}``."""
    return {
        "from": f.originator,
        "to": f.recipient,
        "topic": f.topic,
        "route": f.route,
        "via": f.via,
        "delay": format_duration(f.delay) if f.route == "relay" else None,
        "agreement": f.agreement,
    }


def gap_json(g: Gap, zone: str) -> dict[str, Any]:
    """``{"from", "to", "topic", "start", "end"}``."""
    return {
        "from": g.originator,
        "to": g.recipient,
        "topic": g.topic,
        "start": iso(g.start, zone),
        "end": iso(g.end, zone),
    }


def unknown_json(u: FlowSegment, zone: str) -> dict[str, Any]:
    """``{"from", "to", "topic", "start", "end", "agreement"}``: an interval whose coverage is
    unknown (``agreement``'s entry into force is not recorded), which is not a gap."""
    return {
        "from": u.originator,
        "to": u.recipient,
        "topic": u.topic,
        "start": iso(u.start, zone),
        "end": iso(u.end, zone),
        "agreement": u.agreement,
    }


def source_json(s: SourceEntry) -> dict[str, Any]:
    """``{"id", "title", "date", "links", "note"}``: an entry of the sources list, as recorded."""
    return {"id": s.id, "title": s.title, "date": s.date or None, "links": list(s.links), "note": s.note or None}


def stats_json(s: ProvisionStats, zone: str) -> dict[str, Any]:
    """``{"agreement", "at", "by_year", "total", "trend": {"method", "statistic", "p_value", "direction"}, …}``."""
    t = s.trend
    return {
        "agreement": s.agreement,
        "at": iso(s.at, zone),
        "by_year": dict(s.by_year),
        "by_month": dict(s.by_month),
        "total": s.total,
        "partial_years": list(s.partial_years),
        "missing_years": list(s.missing_years),
        "trend": {
            "method": t.method,
            "statistic": t.statistic,
            "p_value": t.p_value,
            "direction": t.direction,
            "n": t.n,
            "min_p_value": t.min_p_value,
            "note": t.note,
        },
    }


def change_json(c: FlowChange, zone: str) -> dict[str, Any]:
    """One interval where a flow differs under a what-if."""
    return {
        "from": c.originator,
        "to": c.recipient,
        "topic": c.topic,
        "start": iso(c.start, zone),
        "end": iso(c.end, zone),
        "kind": c.kind,
        "before": {
            "route": c.before,
            "via": c.before_via,
            "delay": format_duration(c.before_delay) if c.before == "relay" else None,
        },
        "after": {
            "route": c.after,
            "via": c.after_via,
            "delay": format_duration(c.after_delay) if c.after == "relay" else None,
        },
    }


def comparison_json(c: Comparison, record: Record) -> dict[str, Any]:
    """A what-if comparison."""
    z = record.timezone
    return {
        "whatif": {
            "name": c.whatif.name,
            "description": c.whatif.describe(record),
            "add": [event_json(e, record.agreements[e.agreement].timezone) for e in c.whatif.add],
            "drop": list(c.whatif.drop),
        },
        "start": iso(c.start, z),
        "end": iso(c.end, z),
        "pairs": [list(p) for p in c.pairs],
        "topics": list(c.topics),
        "changes": [change_json(x, z) for x in c.changes],
        "gaps_before": [gap_json(g, z) for g in c.gaps_before],
        "gaps_after": [gap_json(g, z) for g in c.gaps_after],
        "reports_changed": [
            {
                "report": r.report.id,
                "title": r.report.title,
                "created": iso(r.report.created, z),
                "originator": r.report.originator,
                "recipient": r.recipient,
                "topic": r.report.topic,
                "before": route_json(r.before, z),
                "after": route_json(r.after, z),
            }
            for r in c.changed_reports
        ],
        "reports_replayed": len(c.reports),
        "no_longer_apply": [{"event": e, "why": why} for e, why in c.no_longer_apply],
        "assumptions": _delay_assumptions(
            [(x.before_via, x.before_delay) for x in c.changes if x.before == "relay"]
            + [(x.after_via, x.after_delay) for x in c.changes if x.after == "relay"]
        ),
    }


def _delay_assumptions(relays: Iterable[tuple[str | None, timedelta]]) -> list[str]:
    """One line for each relay delay shown (by hub, then delay): a modelling assumption."""
    return [
        f"relay delay {format_duration(d)} through {via} is a modelling assumption: no source quantifies it"
        for via, d in sorted(set(relays), key=lambda r: (r[0] or "", r[1]))
    ]


def report_json(r: ImpactReport) -> dict[str, Any]:
    """The impact report."""
    rec = r.record
    a = rec.agreements[r.question.agreement]
    return {
        "scenario": {"name": rec.name, "title": rec.title, "database": r.database},
        "generated_at": iso(r.generated_at, rec.timezone),
        "question": {"title": r.question.title, "agreement": a.id, "parties": list(r.question.parties)},
        "timeline": [status_json(s) | {"events": [e.id for e in s.events]} for s in r.timeline],
        "deadlines": [
            {"term_end": iso(end, a.timezone), "notice_deadline": d.isoformat() if d else None}
            for end, d in r.deadlines
        ],
        "stats_then": stats_json(r.stats_then, a.timezone) if r.stats_then else None,
        "stats_now": stats_json(r.stats_now, a.timezone),
        "whatif": comparison_json(r.whatif, rec),
        "recorded_gaps": [gap_json(g, rec.timezone) for g in r.recorded_gaps],
        "assumptions": list(r.assumptions),
    }


def whatif_json(w: WhatIf, record: Record) -> dict[str, Any]:
    """``{"name", "description", "add", "drop"}``: a what-if as the comparisons show it."""
    return {
        "name": w.name,
        "description": w.describe(record),
        "add": [event_json(e, record.agreements[e.agreement].timezone) for e in w.add],
        "drop": list(w.drop),
    }


def traffic_group_json(g: TrafficGroup, zone: str) -> dict[str, Any]:
    """Recorded decisions of one pair and topic that change the same way under a what-if."""
    return {
        "from": g.originator,
        "to": g.recipient,
        "topic": g.topic,
        "change": g.kind,
        "recorded": {"decision": g.before, "via": g.before_via},
        "whatif": {
            "decision": g.after,
            "via": g.after_via,
            "delay": format_duration(g.after_delay) if g.after == "relay" else None,
            "recipient_level": g.after_level,
        },
        "decisions": g.count,
        "first": iso(g.first, zone),
        "last": iso(g.last, zone),
        "outcomes": dict(sorted(g.outcomes.items())),
        "without_whatif": g.without_whatif,
        "reports": [{"report": key, "decided_at": iso(at, zone)} for key, at in g.reports],
    }


def traffic_json(t: TrafficReplay, record: Record) -> dict[str, Any]:
    """The exchange's recorded decisions replayed under a what-if: ``{"whatif", "selection",
    "decisions", "changed": {kind: n}, "unchanged", "drift", "groups": [...], "assumptions"}``."""
    z = record.timezone
    i = t.impact
    sel = t.selection
    relays = [(g.after_via, g.after_delay) for g in i.groups if g.after == "relay"]
    return {
        "whatif": whatif_json(t.whatif, record),
        "selection": {
            "parties": list(sel.parties) if sel.parties is not None else None,
            "topic": sel.topic,
            "from": iso(sel.start, z),
            "to": iso(sel.end, z),
        },
        "decisions": i.decisions,
        "first": iso(i.first, z),
        "last": iso(i.last, z),
        "changed": {k: i.count(k) for k in KINDS},
        "unchanged": i.unchanged,
        "drift": i.drift,
        "batches": i.distinct,
        "reports_per_group": t.keep,
        "groups": [traffic_group_json(g, z) for g in i.groups],
        "assumptions": _delay_assumptions(relays),
    }
