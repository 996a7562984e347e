"""Server-sent events as the exchange's inbox stream sends them (WHATWG HTML §9.2, "Server-sent
events"): ``event`` names the item's type, ``id`` is the inbox cursor to resume after
(``Last-Event-ID``), ``data`` is the item as JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_LINE", "LineTooLong", "ServerSentEvent", "lines_of", "read_events"]

MAX_LINE = 8 * 1024 * 1024
"""The longest line of an event stream read, in characters: a delivery event carries the
delivery document (a payload of at most 1 MiB, in base64), far below it."""


class LineTooLong(ValueError):
    """An event stream line longer than the reader takes (a stream that never ends a line)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSentEvent:
    """One dispatched event: its type, id (the cursor) and decoded JSON data."""

    event: str
    id: str | None
    data: Any


def read_events(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """Parse an event stream, line by line, into events with JSON data.

    Follows the specification's interpretation rules: a line ``field: value`` (one leading
    space removed), comments (lines starting with ``:``) ignored, ``data`` lines joined with
    newlines, an event dispatched at a blank line, an empty ``data`` dispatching nothing, the
    last ``id`` carried over to later events.
    """
    data: list[str] = []
    event = ""
    last_id: str | None = None
    for raw in lines:
        line = raw.rstrip("\r")
        if line == "":
            if data:
                text = "\n".join(data)
                yield ServerSentEvent(event=event or "message", id=last_id, data=_decode(text))
            data, event = [], ""
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\x00" not in value:
            last_id = value


def lines_of(chunks: Iterable[str], limit: int = MAX_LINE) -> Iterator[str]:
    """The lines of a text stream arriving in ``chunks``, each ended by CRLF, LF or CR (WHATWG
    HTML §9.2.5), without the end; never holding more than ``limit`` characters of one line.

    Raises:
        LineTooLong: a line is longer than ``limit``.
    """
    parts: list[str] = []
    held = 0
    pending_cr = False  # the last chunk ended in CR: a LF at the start of the next belongs to it
    for chunk in chunks:
        start = 1 if pending_cr and chunk.startswith("\n") else 0
        pending_cr = False
        for found in _LINE_END.finditer(chunk, start):
            parts.append(chunk[start : found.start()])
            yield "".join(parts)
            parts, held = [], 0
            start = found.end()
        rest = chunk[start:]
        if rest.endswith("\r"):  # a lone CR at the end: a line ended, maybe by CRLF split in two
            parts.append(rest[:-1])
            yield "".join(parts)
            parts, held, pending_cr = [], 0, True
            continue
        if rest:
            parts.append(rest)
            held += len(rest)
            if held > limit:
                raise LineTooLong(f"an event stream line is longer than {limit:,} characters")
    if parts:
        yield "".join(parts)


_LINE_END = re.compile(r"\r\n|\n|\r(?!\Z)")


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the stack
        return text
