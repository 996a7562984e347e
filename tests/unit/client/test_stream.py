"""The inbox stream's reader follows the interpretation rules of server-sent events (WHATWG HTML
§9.2.6): fields, comments, multi-line data, the last event id carried over, CR LF line ends, the
default type "message", and no event for a block without data."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsomia.client.stream import LineTooLong, ServerSentEvent, lines_of, read_events


def parse(text: str) -> list[tuple[str, str | None, object]]:
    return [(e.event, e.id, e.data) for e in read_events(text.split("\n"))]


def test_an_event_is_dispatched_at_a_blank_line_with_its_json_data() -> None:
    events = list(read_events(["event: delivery", "id: 3", 'data: {"report": "r-1"}', ""]))
    assert events == [ServerSentEvent(event="delivery", id="3", data={"report": "r-1"})]


def test_nothing_is_dispatched_before_the_blank_line() -> None:
    assert parse('event: delivery\ndata: {"a": 1}') == []


def test_comments_are_ignored() -> None:
    assert parse(": keep-alive\n\n:another\ndata: 1\n: in the middle\n\n") == [("message", None, 1)]


def test_data_lines_are_joined_with_newlines() -> None:
    assert parse("data: first\ndata: second\ndata\n\n") == [("message", None, "first\nsecond\n")]
    assert parse('data: {"a":\ndata:  1}\n\n') == [("message", None, {"a": 1})]


def test_one_leading_space_is_removed_and_no_more() -> None:
    assert parse("data:x\n\ndata:  y\n\n") == [("message", None, "x"), ("message", None, " y")]


def test_the_type_defaults_to_message_and_does_not_carry_over() -> None:
    assert parse("event: delivery\ndata: 1\n\ndata: 2\n\n") == [("delivery", None, 1), ("message", None, 2)]


def test_the_last_event_id_carries_over_to_later_events() -> None:
    assert parse("id: 7\ndata: 1\n\ndata: 2\n\nid: 9\ndata: 3\n\nid\ndata: 4\n\n") == [
        ("message", "7", 1),
        ("message", "7", 2),
        ("message", "9", 3),
        ("message", "", 4),  # an empty id resets it
    ]


def test_an_id_containing_nul_is_ignored() -> None:
    assert parse("id: 5\ndata: 1\n\nid: 6\x00\ndata: 2\n\n") == [("message", "5", 1), ("message", "5", 2)]


def test_crlf_line_ends_are_read_like_lf() -> None:
    # a reader that splits at LF only leaves the CR on each line
    assert parse('event: delivery\r\nid: 2\r\ndata: {"n": 2}\r\n\r\n') == [("delivery", "2", {"n": 2})]


def test_a_block_without_data_dispatches_nothing_and_forgets_its_type() -> None:
    assert parse("event: delivery\n\ndata: 1\n\n") == [("message", None, 1)]
    assert parse("id: 4\nevent: x\n\n\n\n") == []


def test_an_empty_data_field_still_dispatches_an_event() -> None:
    # the data buffer is "\n" before its last LF is removed: not empty, so it is dispatched
    assert parse("data\n\n") == [("message", None, "")]
    assert parse("data:\n\n") == [("message", None, "")]


def test_unknown_fields_and_retry_are_ignored() -> None:
    assert parse("retry: 3000\nfoo: bar\ndata: 1\n\n") == [("message", None, 1)]


def test_data_that_is_not_json_is_kept_as_text() -> None:
    assert parse("data: not {json\n\n") == [("message", None, "not {json")]


def test_data_nested_deeper_than_the_stack_is_kept_as_text() -> None:
    nested = "[" * 100_000 + "]" * 100_000
    assert parse(f"data: {nested}\n\n") == [("message", None, nested)]


@given(st.lists(st.dictionaries(st.text(max_size=5), st.integers(), max_size=3), max_size=5), st.integers(0, 10**6))
def test_every_json_item_written_as_an_event_is_read_back(items: list[dict[str, int]], first: int) -> None:

    text = "".join(
        f": ping\nevent: delivery\nid: {first + n}\ndata: {json.dumps(item)}\n\n" for n, item in enumerate(items)
    )
    assert parse(text) == [("delivery", str(first + n), item) for n, item in enumerate(items)]


@pytest.mark.parametrize(
    ("chunks", "lines"),
    [
        (["a\r\nb\nc\rd"], ["a", "b", "c", "d"]),  # the three line ends of §9.2.5
        (["a\r", "\nb"], ["a", "b"]),  # CR LF split between two chunks is one line end
        (["a\r", "b"], ["a", "b"]),
        (["ab", "c\n", "", "\n"], ["abc", ""]),
        (["x\r\n\r\ny"], ["x", "", "y"]),
        (["a\r\r"], ["a", ""]),
    ],
)
def test_lines_end_at_crlf_lf_or_cr_wherever_the_chunks_are_cut(chunks: list[str], lines: list[str]) -> None:
    assert list(lines_of(chunks)) == lines


def test_a_line_that_never_ends_is_refused_before_it_is_held_whole() -> None:
    held: list[str] = []

    def endless() -> Iterator[str]:
        while True:
            held.append("x" * 1000)
            yield held[-1]

    with pytest.raises(LineTooLong):
        list(lines_of(endless(), limit=10_000))
    assert len(held) == 11  # refused at the first chunk past the limit
    assert list(lines_of(["x" * 10_000, "\n"], limit=10_000)) == ["x" * 10_000]
