"""The analysis commands: ``status``, ``route``, ``coverage``, ``gaps``, ``stats`` and ``whatif``.

Each parses its options, asks the analysis service one question (under a what-if, if one is
given) and renders the answer as text or ``--json``. Errors and exit codes come from
:mod:`gsomia.cli` (one table for the whole command line).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from gsomia.bootstrap import App
from gsomia.cli import common
from gsomia.cli.options import AddEvent, AsJson, At, DropEvent, Pair, PeriodEnd, PeriodStart, Topic, WhatIfFile
from gsomia.cli.tables import Column, Wide, print_table
from gsomia.domain.coverage import Flow
from gsomia.domain.instants import format_duration, iso
from gsomia.domain.lifecycle import Status
from gsomia.domain.record import Caveats, Record, WhatIf
from gsomia.domain.traffic import TrafficImpact
from gsomia.errors import InvalidInput
from gsomia.services.analysis import presenters as views
from gsomia.services.analysis.service import Comparison, WhatIfSpec


def read_whatif(app: App, file: Path | None, add: list[str] | None, drop: list[str] | None) -> WhatIf:
    """The what-if of ``--whatif``, ``--add-event`` and ``--drop-event`` (empty if none is given).

    Raises:
        InvalidInput: the file cannot be read, or an event spec is malformed.
        ValidationFailed: the what-if file has problems.
        UnknownEntity: an event names an unknown agreement or party.
    """
    text = None
    if file is not None:
        from gsomia.scenario.loader import read_file  # noqa: PLC0415 - only when a file is given

        text = read_file(file)
    return app.analysis.whatif(WhatIfSpec(text, str(file or ""), tuple(add or ()), tuple(drop or ())))


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr for long pair-level work (only on a terminal)."""
    if total < 2000 or not common.err.is_terminal:
        yield None
        return
    from rich.progress import Progress  # noqa: PLC0415

    with Progress(console=common.err, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


# What provision counts count, wherever they are shown (the dashboard says the same).
PROVISION = (
    "A provision is one occasion on which classified information was provided under the agreement, "
    "as the sources count them (e.g. 29 exchanges from November 2016 to 22 August 2019 [R S32]; in 2017 "
    "the 19 went each way [R S32, S34]); they are the record's counts, not the exchange's own reports. "
    "A year with no record is unknown, not zero."
)


STATUS_COLUMNS = (
    Column("agreement"),
    Column("state"),
    Column("in force", drop=2),
    Column("since", drop=1),
    Column("term end"),
    Column("notice deadline"),
    Column("ends at"),
)


def _notice_notes(rows: list[Status]) -> None:
    """Under the table, each pending or suspended notice with its note: why it is dated as it
    is (a notice counts from its delivery through the diplomatic channel, Art. 21.3)."""
    for s in rows:
        notice = next((e for e in s.events if e.id == s.notice), None)
        if notice is None:
            continue
        z = s.agreement.timezone
        by = f" by {notice.by}" if notice.by else ""
        common.out.print(
            f"{s.agreement.id}: notice {notice.id}{by}, received {iso(notice.at, z)}."
            + (f" {notice.note}" if notice.note else "")
            + (f" (event source: {notice.source})" if notice.source else ""),
            markup=False,
        )


def resolve(app: App, kind: str, typed: str | None, *, party: str | None = None) -> str | None:
    """The id a user means by ``typed`` (None stays None); an alias or another spelling is
    accepted and echoed on stderr (``ROK`` is read as ``KOR``), so the answer names what was asked.

    Raises:
        UnknownEntity: if nothing is known by that name: exit 5, with the closest names.
    """
    if typed is None:
        return None
    found = app.analysis.resolve(kind, typed, party=party)
    if found != typed:
        common.err.print(f"{kind} {typed!r} read as {found}", markup=False)
    return found


def resolve_pair(app: App, pair: str | None) -> str | None:
    """``--pair ORIGINATOR,RECIPIENT`` with each party resolved (aliases echoed).

    Raises:
        InvalidInput: if it is not two parties.
        UnknownEntity: for an unknown party.
    """
    if pair is None:
        return None
    parts = [p.strip() for p in pair.replace("->", ",").replace(">", ",").split(",")]
    if len(parts) != 2 or not all(parts):
        raise InvalidInput(f"--pair {pair!r}: use ORIGINATOR,RECIPIENT such as JPN,KOR")
    return ",".join(resolve(app, "party", p) or "" for p in parts)


def _record(app: App) -> Record:
    return app.analysis.compiled().record


def _zone(app: App) -> str:
    return _record(app).timezone


def status(
    at: At = None,
    agreement: Annotated[str | None, typer.Option("--agreement", "-a", help="Only this agreement.")] = None,
    as_json: AsJson = False,
    whatif: WhatIfFile = None,
    add_event: AddEvent = None,
    drop_event: DropEvent = None,
    wide: Wide = False,
) -> None:
    """Each agreement's derived state at an instant: in force, notice pending (and when it ends),
    notice suspended, terminated or expired, with the current term's end and notice deadline.

    \b
    e.g. gsomia status --at 2019-11-22T17:00+09:00
         gsomia status --at 2019-08-01 --agreement JPN-KOR-GSOMIA --json
    """
    with common.errors():
        app = common.app()
        agreement = resolve(app, "agreement", agreement)
        w = read_whatif(app, whatif, add_event, drop_event)
        when = app.analysis.instant(at, agreement=agreement)
        rows = app.analysis.status(when, w, agreement)
        if as_json:
            common.emit_json([views.status_json(s) for s in rows])
            return
        title = f"Agreements at {iso(when, _zone(app))}" + (
            f" — what-if: {w.describe(_record(app))}" if not w.empty else ""
        )
        rows_out = []
        for s in rows:
            z = s.agreement.timezone
            rows_out.append(
                [
                    s.agreement.id,
                    str(s.state),
                    "yes" if s.in_force else "no",
                    iso(s.since, z) or "—",
                    (iso(s.term[1], z) or "—") if s.term else "—",
                    s.notice_deadline.isoformat() if s.notice_deadline else "—",
                    iso(s.ends_at, z) or "—",
                ]
            )
        print_table(STATUS_COLUMNS, rows_out, title=title, wide=wide)
        _notice_notes(rows)


def _caveats(rel_to: str | None, noforn: bool, orcon: bool) -> Caveats:
    rel = frozenset(p.strip().upper() for p in rel_to.split(",") if p.strip()) if rel_to else None
    return Caveats(rel_to=rel, noforn=noforn, orcon=orcon)


def route(
    originator: Annotated[str, typer.Argument(help="Originating party, e.g. JPN.")],
    recipient: Annotated[str, typer.Argument(help="Recipient party, e.g. KOR.")],
    topic: Annotated[str, typer.Option("--topic", help="Topic, e.g. dprk.missile.launch.")],
    level: Annotated[str, typer.Option("--level", help="The originator's national level, e.g. 極秘.")],
    at: At = None,
    rel_to: Annotated[
        str | None, typer.Option("--rel-to", help="Caveat: releasable only to these parties (comma-separated).")
    ] = None,
    noforn: Annotated[bool, typer.Option("--noforn", help="Caveat: no foreign release.")] = False,
    orcon: Annotated[
        bool, typer.Option("--orcon", help="Caveat: originator-controlled (every relay needs consent for this report).")
    ] = False,
    as_json: AsJson = False,
    whatif: WhatIfFile = None,
    add_event: AddEvent = None,
    drop_event: DropEvent = None,
) -> None:
    """Decide one release: direct, relayed through a hub (with consent and modelled delay), or
    denied, with every reason citing the rule and the agreement article behind it.

    \b
    e.g. gsomia route JPN KOR --topic dprk.missile.launch --level 極秘 --at 2019-11-22T10:00+09:00
         gsomia route JPN KOR --topic dprk.missile.launch --level 極秘 --at 2019-12-01 --drop-event jpn-kor-2019-suspension
    """
    with common.errors():
        app = common.app()
        originator = resolve(app, "party", originator) or ""
        recipient = resolve(app, "party", recipient) or ""
        topic = resolve(app, "topic", topic) or ""
        level = resolve(app, "level", level, party=originator) or ""
        if rel_to is not None:
            rel_to = ",".join(resolve(app, "party", p.strip()) or "" for p in rel_to.split(",") if p.strip())
        w = read_whatif(app, whatif, add_event, drop_event)
        when = app.analysis.instant(at)
        r = app.analysis.route(
            originator,
            recipient,
            topic=topic,
            level=level,
            at=when,
            caveats=_caveats(rel_to, noforn, orcon),
            whatif=w,
        )
        z = _zone(app)
        if as_json:
            common.emit_json(views.route_json(r, z))
            return
        head = {"direct": "[green]DIRECT[/green]", "relay": "[yellow]RELAY[/yellow]", "deny": "[red]DENY[/red]"}[
            str(r.decision)
        ]
        common.out.print(
            f"{head} {originator} → {recipient} · {topic} · {level} · {iso(when, z)}"
            + (f" · what-if: {w.describe(_record(app))}" if not w.empty else "")
        )
        if r.allowed:
            common.out.print(f"  path: {' → '.join(r.path)} under {', '.join(r.agreements)}", markup=False)
            if r.marking:
                common.out.print(
                    f"  recipient marks it: {r.marking.banner()} (common level {r.marking.common_level})", markup=False
                )
            for leg in r.legs:
                common.out.print(
                    f"  leg {leg.sender}→{leg.receiver} under {leg.agreement} at {iso(leg.at, z)}: {leg.marking.level} → {leg.marking.recipient_level}",
                    markup=False,
                )
            if r.consent_required:
                kind = "for this very report (ORCON)" if r.per_report_consent else "standing or for this report"
                common.out.print(
                    f"  consent: the originator's prior written consent is required ({kind})", markup=False
                )
            if r.delay:
                common.out.print(f"  delay: +{format_duration(r.delay)}", markup=False)
            for a in r.assumptions:
                common.out.print(f"  assumption: {a}", markup=False)
        label = "why not a better route" if r.allowed else "reasons"
        if r.reasons:
            common.out.print(f"  {label}:")
            for reason in r.reasons:
                common.out.print(f"    - {reason}", markup=False)


def _coverage_table(rows: list[Flow], topic: str, wide: bool) -> None:
    parties = sorted({f.originator for f in rows} | {f.recipient for f in rows})
    cell = {(f.originator, f.recipient): f for f in rows if f.topic == topic}
    body = []
    for o in parties:
        values = [o]
        for r in parties:
            f = cell.get((o, r))
            if o == r or f is None:
                values.append("·")
            elif f.route == "direct":
                values.append("[green]direct[/green]")
            elif f.route == "relay":
                values.append(f"[yellow]via {f.via} +{format_duration(f.delay)}*[/yellow]")
            else:
                values.append("[red]none[/red]")
        body.append(values)
    columns = [Column("from \\ to"), *(Column(p, whole=False, markup=True) for p in parties)]
    print_table(columns, body, title=f"{topic}: rows originate, columns receive", wide=wide)


def coverage(
    at: At = None,
    topic: Annotated[
        str | None, typer.Option("--topic", help="One topic (default: every topic of the catalogue).")
    ] = None,
    pair: Pair = None,
    as_json: AsJson = False,
    whatif: WhatIfFile = None,
    add_event: AddEvent = None,
    drop_event: DropEvent = None,
    wide: Wide = False,
) -> None:
    """For every ordered pair of parties and topic at an instant: direct, relay via a hub
    (+ modelled delay, marked *), or none.

    \b
    e.g. gsomia coverage --at 2019-12-01 --pair JPN,KOR --drop-event jpn-kor-2019-suspension
    """
    with common.errors():
        app = common.app()
        pair = resolve_pair(app, pair)
        topic = resolve(app, "topic", topic)
        w = read_whatif(app, whatif, add_event, drop_event)
        when = app.analysis.instant(at)
        with _progress(app.analysis.pair_count(pair), "coverage") as progress:
            rows = app.analysis.coverage(when, topic=topic, pair=pair, whatif=w, progress=progress)
        if as_json:
            common.emit_json([views.flow_json(f) for f in rows])
            return
        common.out.print(
            f"Coverage at {iso(when, _zone(app))}" + (f" — what-if: {w.describe(_record(app))}" if not w.empty else ""),
            markup=False,
        )
        for t in sorted({f.topic for f in rows}):
            _coverage_table(rows, t, wide)
        common.out.print("* relay delays are modelling assumptions (sources give no figure).", markup=False)


def gaps(
    start: PeriodStart = None,
    end: PeriodEnd = None,
    pair: Pair = None,
    topic: Topic = None,
    as_json: AsJson = False,
    whatif: WhatIfFile = None,
    add_event: AddEvent = None,
    drop_event: DropEvent = None,
    wide: Wide = False,
) -> None:
    """Every interval with no route at all, per pair and topic, computed exactly from the
    instants at which agreements change (never by sampling days).

    \b
    e.g. gsomia gaps --pair JPN,KOR --drop-event jpn-kor-2019-suspension
         gsomia gaps --from 2019-01-01 --to 2020-01-01 --topic dprk.sigint --json
    """
    with common.errors():
        app = common.app()
        pair = resolve_pair(app, pair)
        topic = resolve(app, "topic", topic)
        w = read_whatif(app, whatif, add_event, drop_event)
        if (start is None) != (end is None):
            raise InvalidInput("give both --from and --to, or neither (the scenario's window)")
        lo, hi = (app.analysis.instant(start), app.analysis.instant(end)) if start and end else app.analysis.window()
        with _progress(app.analysis.pair_count(pair), "gaps") as progress:
            rows = app.analysis.gaps(lo, hi, topic=topic, pair=pair, whatif=w, progress=progress)
        z = _zone(app)
        if as_json:
            common.emit_json([views.gap_json(g, z) for g in rows])
            return
        title = f"Gaps {iso(lo, z)} → {iso(hi, z)}" + (f" — what-if: {w.describe(_record(app))}" if not w.empty else "")
        print_table(
            [Column("from"), Column("to"), Column("topic"), Column("start"), Column("end")],
            [[g.originator, g.recipient, g.topic, iso(g.start, z) or "", iso(g.end, z) or ""] for g in rows],
            title=title,
            wide=wide,
            key=3,
        )
        common.out.print(f"{len(rows)} gap interval(s).", markup=False)


def stats(
    agreement: Annotated[
        str | None,
        typer.Option("--agreement", "-a", help="One agreement (default: every agreement with recorded provisions)."),
    ] = None,
    at: Annotated[str | None, typer.Option("--at", help="The record as known at this instant (default: now).")] = None,
    as_json: AsJson = False,
    wide: Wide = False,
) -> None:
    """Information provided under an agreement, by year (and month where dated), with a
    Mann–Kendall trend test whose p-value is exact for few years.

    \b
    e.g. gsomia stats --agreement JPN-KOR-GSOMIA --at 2019-08-22T18:20+09:00
    """
    with common.errors():
        app = common.app()
        agreement = resolve(app, "agreement", agreement)
        when = app.analysis.instant(at, agreement=agreement)
        rows = app.analysis.stats(agreement, when)
        rec = app.analysis.compiled().record
        if as_json:
            data = [views.stats_json(s, rec.agreements[s.agreement].timezone) for s in rows]
            common.emit_json(data[0] if agreement else data)
            return
        for s in rows:
            z = rec.agreements[s.agreement].timezone
            body = [[y + (" (partial year)" if y in s.partial_years else ""), str(n)] for y, n in s.by_year.items()]
            body.append(["total", str(s.total)])
            print_table(
                [Column("year"), Column("provisions", justify="right")],
                body,
                title=f"Provisions under {s.agreement} as known at {iso(s.at, z)}",
                wide=wide,
            )
            tr = s.trend
            p = f"p = {tr.p_value:.3f}" if tr.p_value is not None else "no p-value"
            common.out.print(f"Trend: {tr.method}; S = {tr.statistic}, {p}, {tr.direction}. {tr.note}.", markup=False)
            if s.missing_years:
                common.out.print(
                    f"Years with no record (unknown, not zero): {', '.join(s.missing_years)}", markup=False
                )
        common.out.print(PROVISION, markup=False)


def whatif_cmd(
    whatif: WhatIfFile = None,
    add_event: AddEvent = None,
    drop_event: DropEvent = None,
    start: PeriodStart = None,
    end: PeriodEnd = None,
    parties: Annotated[
        str | None, typer.Option("--parties", help="Only flows among these parties, comma-separated (e.g. JPN,KOR).")
    ] = None,
    topic: Topic = None,
    traffic: Annotated[
        bool,
        typer.Option(
            "--traffic",
            help="Replay every decision the exchange recorded (its own traffic, in this database) under the "
            "what-if, at the instant it was made: per pair and topic, how many would have stopped, been "
            "rerouted or released otherwise, and when. --from/--to then bound the decision instants.",
        ),
    ] = False,
    reports: Annotated[
        int,
        typer.Option("--reports", min=0, max=10_000, help="With --traffic: report ids listed per group (drill-down)."),
    ] = 10,
    as_json: AsJson = False,
    wide: Wide = False,
) -> None:
    """Compare the record with and without a what-if: flows rerouted or stopped (with their
    intervals), gaps before and after, and past reports whose route would have changed; with
    --traffic, the exchange's own recorded decisions replayed under it.

    \b
    e.g. gsomia whatif --drop-event jpn-kor-2019-suspension --parties JPN,KOR
         gsomia whatif --drop-event jpn-kor-2019-suspension --traffic --from 2019-11-01 --to 2020-01-01
    """
    with common.errors():
        app = common.app()
        w = read_whatif(app, whatif, add_event, drop_event)
        if w.empty:
            raise InvalidInput("give --whatif FILE, --add-event or --drop-event")
        lo = app.analysis.instant(start) if start else None
        hi = app.analysis.instant(end) if end else None
        chosen = _party_list(app, parties)
        topic = resolve(app, "topic", topic)
        if traffic:
            _traffic(app, w, chosen, topic, lo, hi, reports, as_json=as_json, wide=wide)
            return
        c = app.analysis.compare(w, start=lo, end=hi, parties=chosen, topic=topic)
        rec = app.analysis.compiled().record
        if as_json:
            common.emit_json(views.comparison_json(c, rec))
            return
        _print_comparison(c, w, rec, wide=wide)


def _print_comparison(c: Comparison, w: WhatIf, rec: Record, *, wide: bool) -> None:
    """``whatif`` as text: the flows that change, the gaps and the past reports rerouted."""
    z = rec.timezone
    common.out.print(f"{_whatif_title(w, rec)}  ({iso(c.start, z)} → {iso(c.end, z)})", markup=False)
    body = []
    for x in c.changes:
        after = x.after + (f" via {x.after_via} +{format_duration(x.after_delay)}*" if x.after == "relay" else "")
        before = x.before + (f" via {x.before_via} +{format_duration(x.before_delay)}*" if x.before == "relay" else "")
        body.append(
            [x.originator, x.recipient, x.topic, x.kind, before, after, iso(x.start, z) or "", iso(x.end, z) or ""]
        )
    print_table(
        [
            Column("from"),
            Column("to"),
            Column("topic"),
            Column("change"),
            Column("before", whole=False, drop=1),
            Column("after", whole=False),
            Column("start"),
            Column("end"),
        ],
        body,
        wide=wide,
        empty="No flow among these parties changes.",
        key=3,
    )
    common.out.print(
        f"Gaps: {len(c.gaps_before)} before, {len(c.gaps_after)} after. Past reports replayed: {len(c.reports)}, "
        f"route changed: {len(c.changed_reports)}.",
        markup=False,
    )
    for rr in c.changed_reports:
        common.out.print(
            f"  {rr.report.id} → {rr.recipient}: {rr.before.decision} ⇒ {rr.after.decision} {'→'.join(rr.after.path)}",
            markup=False,
        )
    for ev, why in c.no_longer_apply:
        common.out.print(f"  recorded event {ev} no longer applies: {why}", markup=False)
    common.out.print("* relay delays are modelling assumptions.", markup=False)


def _whatif_title(w: WhatIf, rec: Record) -> str:
    named = f" {w.name}" if w.name and w.name != "what-if" else ""
    return f"What-if{named}: {w.describe(rec)}"


def _party_list(app: App, parties: str | None) -> list[str] | None:
    """The parties of a ``--parties`` list (None if not given).

    Raises:
        UnknownEntity: for an unknown party.
    """
    if not parties:
        return None
    return [resolve(app, "party", p.strip()) or "" for p in parties.split(",") if p.strip()]


_CHANGE_LABEL = {
    "stopped": "stopped (no route)",
    "rerouted": "rerouted through a hub",
    "changed": "released otherwise",
    "released": "released (was refused)",
}


def _traffic(
    app: App,
    w: WhatIf,
    parties: list[str] | None,
    topic: str | None,
    lo: datetime | None,
    hi: datetime | None,
    keep: int,
    *,
    as_json: bool,
    wide: bool,
) -> None:
    """``whatif --traffic``: the exchange's recorded decisions replayed under ``w``."""
    selection = app.analysis.traffic_selection(parties=parties, topic=topic, start=lo, end=hi)
    total = app.analysis.traffic_count(selection)
    started = time.perf_counter()
    with _progress(total, "replaying the exchange's decisions") as progress:
        t = app.analysis.traffic(w, selection, keep=keep, progress=progress)
    seconds = time.perf_counter() - started
    rec = app.analysis.compiled().record
    if as_json:
        common.emit_json(views.traffic_json(t, rec))
        return
    z = rec.timezone
    i = t.impact
    span = f", decided {iso(i.first, z)} → {iso(i.last, z)}" if i.first and i.last else ""
    common.out.print(f"{_whatif_title(w, rec)} — over the exchange's own traffic", markup=False)
    common.out.print(
        f"Replayed {i.decisions:,} recorded decisions{span} in {seconds:.1f} s: "
        + ", ".join(f"{i.count(k):,} {k}" for k in ("stopped", "rerouted", "changed", "released"))
        + f"; {i.unchanged:,} unchanged.",
        markup=False,
    )
    if not i.decisions:
        common.out.print("The exchange has recorded no decision here yet.", markup=False)
        return
    _print_traffic_groups(i, z, wide=wide)
    if any(g.after == "relay" for g in i.groups):
        common.out.print("* relay delays are modelling assumptions (sources give no figure).", markup=False)
    if i.drift:
        common.out.print(
            f"Note: {i.drift:,} recorded decisions are already decided otherwise by today's record without the "
            "what-if (an event recorded since, or an exercise's what-if): their change is not the what-if's alone.",
            markup=False,
        )
    if keep and i.groups:
        _print_traffic_reports(i, z, keep, wide=wide)


def _print_traffic_groups(i: TrafficImpact, z: str, *, wide: bool) -> None:
    """The replay's groups: per pair, topic and change, how many decisions and when."""

    def route(decision: str, via: str | None, delay: str | None = None) -> str:
        if decision == "relay":
            return f"relay via {via}" + (f" +{delay}*" if delay else "")
        return decision

    body = [
        [
            g.originator,
            g.recipient,
            g.topic,
            g.kind,
            route(g.before, g.before_via),
            route(g.after, g.after_via, format_duration(g.after_delay) if g.after == "relay" else None)
            + (f" ({g.after_level})" if g.kind == "changed" and g.after_level else ""),
            f"{g.count:,}",
            iso(g.first, z) or "",
            iso(g.last, z) or "",
        ]
        for g in i.groups
    ]
    print_table(
        [
            Column("from"),
            Column("to"),
            Column("topic"),
            Column("change"),
            Column("recorded", whole=False, drop=1),
            Column("with the what-if", whole=False),
            Column("decisions", justify="right"),
            Column("first"),
            Column("last"),
        ],
        body,
        wide=wide,
        empty="No recorded decision would have gone otherwise.",
        key=3,
    )


def _print_traffic_reports(i: TrafficImpact, z: str, keep: int, *, wide: bool) -> None:
    """The reports of each group, whole ids for drill-down."""
    common.out.print(
        f"Reports (the first {keep} of each group, as stored: ORIGINATOR/ID; --reports N lists more):",
        markup=False,
    )
    rows = [
        [key, iso(at, z) or "", f"{g.originator}→{g.recipient}", g.topic, g.kind]
        for g in i.groups
        for key, at in g.reports
    ]
    print_table(
        [Column("report"), Column("decided at"), Column("pair"), Column("topic"), Column("change")],
        rows,
        wide=wide,
    )
