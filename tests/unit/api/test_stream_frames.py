"""The event stream's frames: each inbox item one Server-Sent Event, byte for byte what
``sse_starlette.ServerSentEvent`` writes for it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sse_starlette import ServerSentEvent

from gsomia.api.exchange import _event
from gsomia.client.stream import read_events


def _reference(item: dict[str, Any]) -> bytes:
    data = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
    return ServerSentEvent(data, event=str(item["type"]), id=str(item["seq"])).encode()


@pytest.mark.parametrize(
    "item",
    [
        {"type": "delivery", "seq": 1, "report": "r-1", "banner": "군사II급비밀 (JPN 極秘)"},
        {"type": "incident_update", "seq": 2**40, "note": 'line\nbreak\r\n"quoted"\u2028'},
        {"type": "consent_request", "seq": 7, "n": [1, 2.5, None, True, {}]},
        {"type": "odd\r\nname", "seq": 3},  # not a word: written by ServerSentEvent itself
    ],
)
def test_a_frame_is_the_one_server_sent_event_writes(item: dict[str, Any]) -> None:
    assert _event(item) == _reference(item)


def test_frames_read_back_as_their_items() -> None:
    items = [{"type": "delivery", "seq": n, "text": f"a\nb {n}"} for n in range(1, 4)]
    text = b"".join(_event(i) for i in items).decode("utf-8")
    events = list(read_events(text.split("\n")))
    assert [(e.event, e.id, e.data) for e in events] == [("delivery", str(i["seq"]), i) for i in items]
