"""The fast path of the canonical encoder gives exactly RFC 8785's bytes."""

from __future__ import annotations

from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from gsomia.ledger.entries import entry_bytes

# Every kind of character RFC 8785 §3.2.2.2 treats specially, plus non-BMP ones.
text = st.text(
    alphabet=st.one_of(
        st.sampled_from(['"', "\\", "\b", "\f", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "\u2028", "/"]),
        st.characters(blacklist_categories=["Cs"]),
    ),
    max_size=20,
)
ascii_keys = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=8)
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1), text)
values: Any = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(ascii_keys, inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=500)
@given(st.dictionaries(ascii_keys, values, max_size=6))
def test_fast_path_matches_rfc8785(entry: dict[str, Any]) -> None:
    assert entry_bytes(entry) == rfc8785.dumps(entry)


@given(
    st.dictionaries(
        st.text(max_size=4), st.one_of(scalars, st.floats(allow_nan=False, allow_infinity=False)), max_size=5
    )
)
def test_other_entries_still_match_rfc8785(entry: dict[str, Any]) -> None:
    assert entry_bytes(entry) == rfc8785.dumps(entry)
