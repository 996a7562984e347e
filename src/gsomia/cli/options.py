"""Command-line options that several commands share, declared once so they read the same everywhere."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (a stable contract) instead of text.")]

At = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="Instant: ISO 8601 with offset, or a date read in the agreement's (else the scenario's) zone. Default: now.",
    ),
]

WhatIfFile = Annotated[
    Path | None,
    typer.Option(
        "--whatif", help="YAML file of hypothetical events (add:) and recorded events to drop (drop:).", exists=False
    ),
]
AddEvent = Annotated[
    list[str] | None,
    typer.Option(
        "--add-event",
        help="Hypothetical event 'AGREEMENT KIND INSTANT [by PARTY] [effective INSTANT]', e.g. 'JPN-KOR-GSOMIA notice 2019-08-25T12:00+09:00 by KOR'. Repeatable.",
    ),
]
DropEvent = Annotated[
    list[str] | None,
    typer.Option("--drop-event", help="Id of a recorded event to leave out, e.g. jpn-kor-2019-suspension. Repeatable."),
]

PeriodStart = Annotated[
    str | None, typer.Option("--from", help="Start of the period (default: the scenario's window).")
]
PeriodEnd = Annotated[str | None, typer.Option("--to", help="End of the period (default: the scenario's window).")]
Pair = Annotated[str | None, typer.Option("--pair", help="One ordered pair, e.g. JPN,KOR.")]
Topic = Annotated[str | None, typer.Option("--topic", help="One topic (default: every topic).")]

Host = Annotated[str, typer.Option("--host", envvar="GSOMIA_HOST", help="Address to listen on.")]
Port = Annotated[int, typer.Option("--port", envvar="GSOMIA_PORT", min=1, max=65535, help="Port to listen on.")]


class LogLevelName(StrEnum):
    """How much a server logs (uvicorn's levels)."""

    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"
    trace = "trace"


LogLevel = Annotated[
    LogLevelName,
    typer.Option("--log-level", case_sensitive=False, help="How much the server logs."),
]
