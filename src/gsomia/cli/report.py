"""``gsomia report``: the impact report, and its text rendering (``demo`` prints it too).

Errors and exit codes come from :mod:`gsomia.cli` (one table for the whole command line).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.table import Table

from gsomia.cli import common
from gsomia.cli.analysis import read_whatif
from gsomia.cli.options import AddEvent, AsJson, DropEvent, WhatIfFile
from gsomia.domain.instants import format_duration, iso
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
    flows stopped, gap intervals and past reports affected."""
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


def render_report(r: ImpactReport) -> None:
    """Print the impact report: the agreement's derived timeline, the provisions under it, the
    what-if's rerouted and stopped flows, the recorded gaps and every assumption."""
    rec = r.record
    common.out.rule(f"gsomia impact report: {rec.title or rec.name}")
    common.out.print(
        f"scenario {rec.name} · database {r.database} · generated {iso(r.generated_at, rec.timezone)}", markup=False
    )
    common.out.print()
    _timeline_section(r)
    common.out.print()
    _provisions_section(r)
    common.out.print()
    _whatif_section(r)
    common.out.print()
    _recorded_section(r)
    common.out.print()
    common.out.print("[bold]Assumptions[/bold]")
    for text in r.assumptions:
        common.out.print(f"  - {text}", markup=False)


def _timeline_section(r: ImpactReport) -> None:
    a = r.record.agreements[r.question.agreement]
    z = a.timezone
    common.out.print(f"[bold]1. {a.id}: derived timeline[/bold] ({a.name})")
    t = Table(show_lines=False)
    for col in ("instant", "event", "state", "ends at", "term end", "notice deadline"):
        t.add_column(col)
    for s in r.timeline:
        cause = next((e for e in s.events if e.at == s.at), None)
        label = f"{cause.id} ({cause.kind}{' by ' + cause.by if cause.by else ''})" if cause else "(derived end)"
        t.add_row(
            iso(s.at, z) or "",
            label,
            str(s.state),
            iso(s.ends_at, z) or "—",
            iso(s.term[1], z) if s.term else "—",
            s.notice_deadline.isoformat() if s.notice_deadline else "—",
        )
    common.out.print(t)
    if r.deadlines:
        common.out.print(
            "Term ends and notice deadlines (notice must be received by the deadline to end the agreement at that term end):"
        )
        common.out.print("  " + "; ".join(f"{(iso(end, z) or '')[:10]} ← {d}" for end, d in r.deadlines), markup=False)


def _provisions_section(r: ImpactReport) -> None:
    z = r.record.agreements[r.question.agreement].timezone
    common.out.print("[bold]2. Provisions under the agreement, by year[/bold]")
    for label, st in (
        ("as known at " + (iso(r.question.stats_at, z) or ""), r.stats_then),
        ("as known now", r.stats_now),
    ):
        if st is None:
            continue
        years = ", ".join(f"{y}: {n}" for y, n in st.by_year.items())
        common.out.print(f"  {label}: {years}; total {st.total}", markup=False)
        tr = st.trend
        p = f"p = {tr.p_value:.3f}" if tr.p_value is not None else "no p-value"
        common.out.print(
            f"    {tr.method}: S = {tr.statistic}, {p}, direction {tr.direction}. {tr.note}.", markup=False
        )
        if st.partial_years:
            common.out.print(
                f"    partial years: {', '.join(st.partial_years)}; years with no record (unknown, not zero): {', '.join(st.missing_years) or 'none'}",
                markup=False,
            )


def _whatif_section(r: ImpactReport) -> None:
    rec = r.record
    c = r.whatif
    common.out.print(f"[bold]3. {r.question.title}[/bold] — what-if: {c.whatif.describe()}", markup=True)
    pairs = " and ".join(f"{o}→{d}" for o, d in c.pairs)
    common.out.print(f"  flows {pairs}, {iso(c.start, rec.timezone)} to {iso(c.end, rec.timezone)}", markup=False)
    z0 = rec.timezone

    def until(end: datetime) -> str:
        return "the end of the analysis window" if end == c.end else (iso(end, z0) or "")

    if c.rerouted:
        common.out.print(
            "  [bold]Rerouted[/bold] (direct → relay; each relay needs the originator's prior written consent):"
        )
        for (o, d, via, delay, arr_id, start, end), topics in _grouped(c.rerouted).items():
            arr = rec.agreements.get(arr_id or "")
            consent = "consent required" if arr is None or arr.consent_required else "no consent needed"
            common.out.print(
                f"    {o}→{d} via {via} under {arr_id} (+{format_duration(delay)}, a modelling assumption), {consent}, "
                f"from {iso(start, z0)} to {until(end)}: {', '.join(topics)}",
                markup=False,
            )
    if c.stopped:
        common.out.print("  [bold]No route at all[/bold] (gaps opened by the what-if):")
        for (o, d, _via, _delay, _arr, start, end), topics in _grouped(c.stopped).items():
            common.out.print(f"    {o}→{d} from {iso(start, z0)} to {until(end)}: {', '.join(topics)}", markup=False)
    if not c.changes:
        common.out.print("  No flow between these parties changes.")
    changed = c.changed_reports
    common.out.print(f"  Past reports replayed: {len(c.reports)}; route changed for {len(changed)}:")
    for rr in changed:
        common.out.print(
            f"    {rr.report.id} ({rr.report.originator}→{rr.recipient}, {rr.report.topic} {rr.report.level}): "
            f"{rr.before.decision} {'→'.join(rr.before.path)} ⇒ {rr.after.decision} {'→'.join(rr.after.path)}",
            markup=False,
        )
    for ev, why in c.no_longer_apply:
        common.out.print(f"  Recorded event {ev} no longer applies under this what-if: {why}", markup=False)


def _recorded_section(r: ImpactReport) -> None:
    z = r.record.timezone
    common.out.print("[bold]4. The recorded history[/bold]: gaps between these parties")
    if r.recorded_gaps:
        for g in r.recorded_gaps:
            common.out.print(
                f"    {g.originator}→{g.recipient} {g.topic}: {iso(g.start, z)} → {iso(g.end, z)}", markup=False
            )
    else:
        common.out.print("    none")
