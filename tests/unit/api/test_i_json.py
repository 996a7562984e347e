"""The exchange's I-JSON check: looking at strings' characters only when the body holds a
``\\u`` escape refuses exactly what looking at every string refuses."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gsomia.api import middleware
from gsomia.api.middleware import _json_refusal

_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=8)
_DOCS = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _every_string_looked_at(body: bytes) -> tuple[list[str], str, str] | None:
    doc = json.loads(body.decode("utf-8"), object_pairs_hook=middleware._Members)
    try:
        middleware._walk(doc, texts=True)
    except middleware._Refused as e:
        return e.loc, e.message, e.kind
    return None


@given(_DOCS, st.booleans())
def test_the_shortcut_refuses_what_the_full_walk_refuses(doc: Any, ascii_only: bool) -> None:
    text = json.dumps(doc, ensure_ascii=ascii_only)
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate written raw is not UTF-8: refused before the walk
        body = json.dumps(doc).encode("ascii")
    assert _json_refusal(body) == _every_string_looked_at(body)
