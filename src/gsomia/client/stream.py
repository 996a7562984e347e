"""Server-sent events as the exchange's inbox stream sends them (WHATWG HTML §9.2, "Server-sent
events"): ``event`` names the item's type, ``id`` is the inbox cursor to resume after
(``Last-Event-ID``), ``data`` is the item as JSON."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_LINE", "LineTooLong", "ServerSentEvent", "StreamStalled", "lines_of", "read_events"]

MAX_LINE = 8 * 1024 * 1024
"""The longest line of an event stream read, in characters, and the most characters of ``data``
one event holds: a delivery event carries the delivery document (a payload of at most 1 MiB, in
base64) on one line, far below it."""


class LineTooLong(ValueError):
    """An event stream line, or the data of one event, longer than the reader takes (a stream
    that never ends a line, or never ends an event)."""


class StreamStalled(ValueError):
    """An event stream that sent bytes but no whole line for longer than the reader waits."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSentEvent:
    """One dispatched event: its type, id (the cursor) and decoded JSON data."""

    event: str
    id: str | None
    data: Any


def read_events(lines: Iterable[str], limit: int = MAX_LINE) -> Iterator[ServerSentEvent]:
    """Parse an event stream, line by line, into events with JSON data.

    Follows the specification's interpretation rules: a line ``field: value`` (one leading
    space removed), comments (lines starting with ``:``) ignored, ``data`` lines joined with
    newlines, an event dispatched at a blank line, an empty ``data`` dispatching nothing, the
    last ``id`` carried over to later events.

    Raises:
        LineTooLong: the ``data`` of one event, its lines joined, is longer than ``limit``
            characters (each line may be within any bound, and the event never end).
    """
    data: list[str] = []
    held = 0
    event = ""
    last_id: str | None = None
    for raw in lines:
        line = raw.rstrip("\r")
        if line == "":
            if data:
                text = "\n".join(data)
                yield ServerSentEvent(event=event or "message", id=last_id, data=_decode(text))
            data, held, event = [], 0, ""
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            held += len(value) + 1
            if held > limit + 1:
                raise LineTooLong(f"an event of the stream holds more than {limit:,} characters of data")
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\x00" not in value:
            last_id = value


def lines_of(
    chunks: Iterable[str],
    limit: int = MAX_LINE,
    *,
    stall: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[str]:
    """The lines of a text stream arriving in ``chunks``, each ended by CRLF, LF or CR (WHATWG
    HTML §9.2.5), without the end; never holding more than ``limit`` characters of one line.

    With ``stall``, a chunk in which no line ends, arriving more than ``stall`` seconds after
    the last line ended (or after the first chunk was asked for), stops the stream: a server
    that trickles a byte now and then keeps its connection busy but sends nothing whole. The
    time the caller takes over a line is not counted. A stream that falls silent altogether is
    its transport's to notice (a read timeout).

    Raises:
        LineTooLong: a line is longer than ``limit``.
        StreamStalled: bytes, but no line end, for longer than ``stall`` seconds.
    """
    parts: list[str] = []
    held = 0
    pending_cr = False  # the last chunk ended in CR: a LF at the start of the next belongs to it
    last_line = clock()
    for chunk in chunks:
        start = 1 if pending_cr and chunk.startswith("\n") else 0
        pending_cr = False
        for found in _LINE_END.finditer(chunk, start):
            parts.append(chunk[start : found.start()])
            yield "".join(parts)
            parts, held, last_line = [], 0, clock()
            start = found.end()
        rest = chunk[start:]
        if rest.endswith("\r"):  # a lone CR at the end: a line ended, maybe by CRLF split in two
            parts.append(rest[:-1])
            yield "".join(parts)
            parts, held, pending_cr, last_line = [], 0, True, clock()
            continue
        if stall is not None and clock() - last_line > stall:  # no line ended in this chunk
            raise StreamStalled(f"the event stream sent no whole line for {stall:g} s")
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
