"""gsomia.jsontext: compact JSON written fast, read strictly, the same values both ways."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsomia import jsontext

_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_VALUES = st.recursive(_LEAVES, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=30)


def _no_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@given(_VALUES)
def test_what_is_written_reads_back_as_the_same_value(value: Any) -> None:
    if not _no_lone_surrogate(value):
        with pytest.raises(TypeError):
            jsontext.compact(value)
        return
    text = jsontext.compact(value)
    assert jsontext.parse(text) == value
    assert json.loads(text) == value
    assert jsontext.parse(jsontext.compact_bytes(value)) == value


def test_the_text_is_compact_utf8_as_the_standard_library_writes_it() -> None:
    value = {"레벨": "군사II급비밀", "n": [1, True, None], "q": 'a"\n\u2028', "極秘": {}}
    assert jsontext.compact(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    numbered = {1: "a", False: "b", None: "c"}  # member names that are not text: as json writes them
    assert jsontext.compact(numbered) == json.dumps(numbered, separators=(",", ":"))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[NaN]", "NaN is not a JSON number"),
        ('{"a": Infinity}', "Infinity is not a JSON number"),
        ("[-Infinity]", "-Infinity is not a JSON number"),
        ("[18446744073709551616]", "beyond 64 bits"),
        ("[-9223372036854775809]", "beyond 64 bits"),
        ("[1,]", "Expecting value"),
    ],
)
def test_reading_refuses_what_has_no_json_spelling(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        jsontext.parse(text)


def test_the_64_bit_bounds_are_read_exactly() -> None:
    assert jsontext.parse("[18446744073709551615,-9223372036854775808]") == [2**64 - 1, -(2**63)]


def test_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(UnicodeDecodeError):
        jsontext.parse(b'"\xff"')


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_nesting_deeper_than_the_stack_is_a_value_error_like_any_other_refusal(opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    text = opening * 100_000 + "0" + closing * 100_000
    with pytest.raises(ValueError, match="nested too deeply"):
        jsontext.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        '["\\ud800"]',
        '{"name": "x\\uDFFF"}',
        '{"\\udc00": 1}',
        '["\\ud83d\\ud83d"]',  # two high halves: still no pair
        b'["\\ud800"]',
        '["\ud800"]',  # the character itself, in a str
    ],
)
def test_a_lone_surrogate_is_refused_it_could_not_be_written_again(text: str | bytes) -> None:
    with pytest.raises(ValueError, match="surrogate"):
        jsontext.parse(text)


def test_a_surrogate_pair_is_one_character_and_reads_back() -> None:
    value = jsontext.parse('{"face": "\\ud83d\\ude00", "plain": "\\u00e9\\u0000"}')
    assert value == {"face": "😀", "plain": "é\x00"}
    assert jsontext.parse(jsontext.compact_bytes(value)) == value
