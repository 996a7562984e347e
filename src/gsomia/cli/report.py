"""``gsomia report``: the impact report, and its text rendering (``demo`` prints it too).

Errors and exit codes come from :mod:`gsomia.cli` (one table for the whole command line).
"""

from __future__ import annotations

import textwrap
from datetime import datetime
from typing import Any

from rich.markup import escape

from gsomia.cli import common
from gsomia.cli.analysis import PROVISION, read_whatif
from gsomia.cli.options import AddEvent, AsJson, DropEvent, WhatIfFile
from gsomia.domain.agreements import AgreementEvent, EventKind
from gsomia.domain.instants import format_duration, iso
from gsomia.domain.lifecycle import Status
from gsomia.domain.whatif import FlowChange
from gsomia.services.analysis import presenters as views
from gsomia.services.analysis.service import ImpactReport


def report_cmd(
    as_json: AsJson = False,
    whatif: WhatIfFile = None,
    add_event: AddEvent = None,
    drop_event: DropEvent = None,
) -> None:
    """The impact report: the agreement's derived timeline and deadlines, exchange statistics with
    their trend test, and what the scenario's question (or your what-if) changes: flows rerouted,
    flows stopped, gap intervals and past reports affected.

    \b
    e.g. gsomia report
         gsomia report --drop-event jpn-kor-2019-suspension --json
    """
    with common.errors():
        app = common.app()
        w = read_whatif(app, whatif, add_event, drop_event)
        r = app.analysis.report(w if not w.empty else None)
        if as_json:
            common.emit_json(views.report_json(r))
        else:
            render_report(r)


def _grouped(changes: list[FlowChange]) -> dict[tuple[Any, ...], list[str]]:
    """Changes that differ only by topic, grouped: one line per pair, route and interval."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    for x in changes:
        key = (x.originator, x.recipient, x.after_via, x.after_delay, x.after_agreement, x.start, x.end)
        groups.setdefault(key, []).append(x.topic)
    return groups


def _width() -> int:
    """The width to write for: the terminal's, or 80 in a pipe or a log (Rich's default),
    and never wider than reads well."""
    return max(40, min(common.out.width, 100))


def _say(text: str, indent: int = 0, hang: int = 0) -> None:
    """Print ``text`` wrapped between words at the report's width: ``indent`` spaces before its
    first line, ``indent + hang`` before the others. Ids, instants and topics hold no space,
    so they are never broken."""
    lines = textwrap.wrap(
        text,
        width=_width(),
        initial_indent=" " * indent,
        subsequent_indent=" " * (indent + hang),
        break_long_words=False,
        break_on_hyphens=False,
    )
    for line in lines or [""]:
        common.out.print(line, markup=False, overflow="ignore", crop=False)


def _heading(text: str) -> None:
    common.out.print()
    for line in textwrap.wrap(text, width=_width(), break_long_words=False, break_on_hyphens=False):
        common.out.print(f"[bold]{escape(line)}[/bold]", overflow="ignore", crop=False)


def render_report(r: ImpactReport) -> None:
    """Print the impact report: the agreement's derived timeline, the provisions under it, the
    what-if's rerouted and stopped flows, the recorded gaps and every assumption. It is written
    for the terminal's width, or 80 columns in a pipe or a log: lines wrap between words, and
    no id, instant or topic is ever cut."""
    rec = r.record
    _heading(f"gsomia impact report: {rec.title or rec.name}")
    _say(f"scenario {rec.name} · database {r.database} · generated {iso(r.generated_at, rec.timezone)}")
    _timeline_section(r)
    _provisions_section(r)
    _whatif_section(r)
    _recorded_section(r)
    _heading("Assumptions")
    for text in r.assumptions:
        _say(f"- {text}", 2, 2)


def _cause(s: Status) -> AgreementEvent | None:
    """The event that made the state at ``s.at``: of events at one instant, the one that
    changes the state (an entry into force, not the signature the same day)."""
    here = [e for e in s.events if e.at == s.at]
    acting = [e for e in here if e.kind is not EventKind.SIGNATURE]
    chosen = acting or here
    return chosen[-1] if chosen else None


def _timeline_section(r: ImpactReport) -> None:
    a = r.record.agreements[r.question.agreement]
    z = a.timezone
    _heading(f"1. {a.id}: derived timeline")
    _say(a.name, 3)
    for s in r.timeline:
        common.out.print()
        cause = _cause(s)
        if cause is None:
            label = "(derived end: the notice ran out)"
        else:
            label = f"{str(cause.kind).replace('_', ' ')}{' by ' + cause.by if cause.by else ''} ({cause.id})"
            same_day = [e for e in s.events if e.at == s.at and e is not cause]
            if same_day:
                label += "; the same instant: " + ", ".join(f"{e.kind} ({e.id})" for e in same_day)
        _say(f"{iso(s.at, z)}  {label}", 3, 4)
        facts = [f"state {s.state}"]
        if s.ends_at:
            facts.append(f"ends {iso(s.ends_at, z)}")
        if s.term:
            facts.append(f"term ends {iso(s.term[1], z)}")
        if s.notice_deadline:
            facts.append(f"notice deadline {s.notice_deadline.isoformat()}")
        _say(" · ".join(facts), 7)
        if cause is not None and cause.kind is EventKind.NOTICE and cause.note:
            # why the notice has the date it has (it counts from its delivery, Art. 21.3)
            _say(cause.note + (f" (event source: {cause.source})" if cause.source else ""), 7)
    if r.deadlines:
        common.out.print()
        _say(
            "Term ends ← notice deadlines (a notice must be received by the deadline to end the agreement "
            "at that term end):",
            3,
        )
        _say("  ".join(f"{(iso(end, z) or '')[:10]} ← {d}" for end, d in r.deadlines), 5)


def _provisions_section(r: ImpactReport) -> None:
    z = r.record.agreements[r.question.agreement].timezone
    _heading("2. Provisions under the agreement, by year")
    _say(PROVISION, 3)
    for label, st in (
        ("as known at " + (iso(r.question.stats_at, z) or ""), r.stats_then),
        ("as known now", r.stats_now),
    ):
        if st is None:
            continue
        common.out.print()
        years = ", ".join(f"{y}: {n}" for y, n in st.by_year.items())
        _say(f"{label}: {years}; total {st.total}", 3, 4)
        tr = st.trend
        p = f"p = {tr.p_value:.3f}" if tr.p_value is not None else "no p-value"
        _say(f"{tr.method}: S = {tr.statistic}, {p}, direction {tr.direction}. {tr.note}.", 5, 2)
        if st.partial_years:
            _say(
                f"partial years: {', '.join(st.partial_years)}; years with no record (unknown, not zero): "
                f"{', '.join(st.missing_years) or 'none'}",
                5,
                2,
            )


def _whatif_section(r: ImpactReport) -> None:
    rec = r.record
    c = r.whatif
    z0 = rec.timezone
    _heading(f"3. {r.question.title}")
    _say(f"what-if: {c.whatif.describe(rec)}", 3, 2)
    pairs = " and ".join(f"{o}→{d}" for o, d in c.pairs)
    _say(f"flows {pairs}, {iso(c.start, z0)} to {iso(c.end, z0)}", 3, 2)

    def until(end: datetime) -> str:
        return "the end of the analysis window" if end == c.end else (iso(end, z0) or "")

    if c.rerouted:
        common.out.print()
        _say("Rerouted (direct → relay; each relay needs the originator's prior written consent):", 3)
        for (o, d, via, delay, arr_id, start, end), topics in _grouped(c.rerouted).items():
            arr = rec.agreements.get(arr_id or "")
            consent = "consent required" if arr is None or arr.consent_required else "no consent needed"
            _say(
                f"{o}→{d} via {via} under {arr_id} (+{format_duration(delay)}, a modelling assumption), {consent}, "
                f"from {iso(start, z0)} to {until(end)}: {', '.join(topics)}",
                5,
                2,
            )
    if c.stopped:
        common.out.print()
        _say("No route at all (gaps opened by the what-if):", 3)
        for (o, d, _via, _delay, _arr, start, end), topics in _grouped(c.stopped).items():
            _say(f"{o}→{d} from {iso(start, z0)} to {until(end)}: {', '.join(topics)}", 5, 2)
    if not c.changes:
        _say("No flow between these parties changes.", 3)
    changed = c.changed_reports
    common.out.print()
    _say(f"Past reports of the record replayed: {len(c.reports)}; route changed for {len(changed)}:", 3)
    for rr in changed:
        _say(
            f"{rr.report.id} ({rr.report.originator}→{rr.recipient}, {rr.report.topic} {rr.report.level}): "
            f"{rr.before.decision} {'→'.join(rr.before.path)} ⇒ {rr.after.decision} {'→'.join(rr.after.path)}",
            5,
            2,
        )
    for ev, why in c.no_longer_apply:
        _say(f"Recorded event {ev} no longer applies under this what-if: {why}", 3, 2)


def _recorded_section(r: ImpactReport) -> None:
    z = r.record.timezone
    _heading("4. The recorded history: gaps between these parties")
    if not r.recorded_gaps:
        _say("none", 3)
    for g in r.recorded_gaps:
        _say(f"{g.originator}→{g.recipient} {g.topic}: {iso(g.start, z)} → {iso(g.end, z)}", 3, 2)
