"""Server-sent events as the exchange's inbox stream sends them (WHATWG HTML §9.2, "Server-sent
events"): ``event`` names the item's type, ``id`` is the inbox cursor to resume after
(``Last-Event-ID``), ``data`` is the item as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["ServerSentEvent", "read_events"]


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


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the stack
        return text
