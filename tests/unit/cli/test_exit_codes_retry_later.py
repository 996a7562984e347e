"""The exchange asking to try again later (busy, or too many key registrations) is an exit code
of its own, so a script can tell it from a conflict it must not repeat."""

from __future__ import annotations

from gsomia.cli import common
from gsomia.errors import Busy, Conflict, TooManyRequests


def test_try_again_later_exits_11_and_a_conflict_still_6() -> None:
    assert common.exit_code(Busy("the record kept changing")) == 11
    assert common.exit_code(TooManyRequests("six key sets this hour", retry_after=600)) == 11
    assert common.exit_code(Conflict("report id used for another report")) == 6
