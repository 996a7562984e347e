"""The in-process harness drives the whole story of a direct release: sign, submit, decide,
deliver, open and verify."""

from __future__ import annotations

from tests.harness import Harness


def test_a_direct_release_reaches_korea_marked_in_its_own_ladder(harness: Harness) -> None:
    result = harness.submit("JPN", recipients=["KOR"], payload=b"track")
    assert result.created and harness.outcomes(result) == {"KOR": "delivered"}
    (item,) = harness.deliveries("KOR")
    assert item["marking"]["banner"] == "군사II급비밀 (JPN 極秘)"
    assert harness.open("KOR", item["id"]) == b"track"
