"""Keys registered while reports are decided: a report, a batch item or a consent grant is
prepared again only when the keys of a party it wraps to (or of its originator, which signed
it) changed, never for another party's, and is never stored wrapped to a key retired before
its commit, whichever process registered the new one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from gsomia.bootstrap import build
from gsomia.crypto.keys import PartyKeys
from gsomia.errors import BadSignature
from gsomia.services.exchange.submissions import SubmissionResult
from tests.harness import Harness, TestClock

TRACK = b'{"launch": "2019-11-28T16:59+09:00"}'


def fresh_keys(h: Harness, party: str) -> PartyKeys:
    return PartyKeys.generate(party, h.keys[party].profile)


def register(h: Harness, party: str, *, by: str | None = None) -> PartyKeys:
    """Register new keys for ``party`` (by the party itself unless ``by`` names another principal)."""
    keys = fresh_keys(h, party)
    h.exchange.keys.register(h.principals[by or party], party, keys.public_keys())
    return keys


def before_each_commit(h: Harness, action: Callable[[], object]) -> list[int]:
    """Run ``action`` after each submission is prepared and before the writer decides it again;
    return the list that counts how often that happened."""
    committer = h.exchange.context.committer
    calls: list[int] = []
    submit_batched, run_batched_async = committer.submit_batched, committer.run_batched_async

    def hooked_sync(*args: Any) -> Any:
        calls.append(1)
        action()
        return submit_batched(*args)

    async def hooked_async(*args: Any) -> Any:
        calls.append(1)
        await asyncio.to_thread(action)
        return await run_batched_async(*args)

    committer.submit_batched = hooked_sync  # type: ignore[method-assign,assignment]
    committer.run_batched_async = hooked_async  # type: ignore[method-assign,assignment]
    return calls


def test_another_partys_new_keys_do_not_send_a_report_back_to_be_decided_again(harness: Harness) -> None:
    h = harness
    calls = before_each_commit(h, lambda: register(h, "USA"))  # USA is no party to a JPN report to KOR
    stored = h.submit("JPN", recipients=["KOR"], payload=TRACK)
    assert h.outcomes(stored) == {"KOR": "delivered"}
    assert len(calls) == 1  # decided once: USA's keys are none of its business
    sub = h.signed("JPN", recipients=["KOR"])
    again = asyncio.run(h.exchange.submissions.submit_async(h.principals["JPN"], sub))
    assert (again.created, len(calls)) == (True, 2)
    (first, _) = h.deliveries("KOR")
    assert h.open("KOR", first["id"]) == TRACK


def test_a_batch_is_not_held_up_by_another_partys_new_keys(harness: Harness) -> None:
    h = harness
    calls = before_each_commit(h, lambda: register(h, "USA"))
    subs = [h.signed("JPN", recipients=["KOR"]) for _ in range(3)]
    results = asyncio.run(h.exchange.submissions.submit_many_async(h.principals["JPN"], subs))
    assert [isinstance(r, SubmissionResult) and r.created for r in results] == [True, True, True]
    assert len(calls) == 3  # one decision each


def test_a_grant_is_not_held_up_by_new_keys_of_the_originator(terminated: Harness) -> None:
    h = terminated
    report = h.submit("JPN", recipients=["KOR"], payload=TRACK)
    consent = h.decision(report, "KOR")["consent"]["id"]
    committer = h.exchange.context.committer
    run = committer.run
    calls: list[int] = []

    def hooked(job: Any) -> Any:
        if len(calls) < 10 and job.__name__ == "job":  # the answer's job, not the registration's
            calls.append(1)
            h.keys["JPN"] = register(h, "JPN")  # the grant wraps to the hub and the recipient only
        return run(job)

    committer.run = hooked  # type: ignore[method-assign,assignment]
    answer = h.exchange.consents.answer(h.principals["JPN"], consent, grant=True)
    assert answer["outcome"]["relayed"] is True
    assert len(calls) == 1
    (onward,) = h.deliveries("KOR", report.body["report"])
    view = h.exchange.deliveries.delivery(h.principals["KOR"], onward["id"])
    assert view["key"] == h.keys["KOR"].fingerprint()


def test_keys_another_process_registered_for_a_recipient_are_wrapped_to_even_with_others_changed(
    harness: Harness,
) -> None:
    h = harness
    h.exchange.context.identity._ttl = 3600.0  # this process holds the keys it read: no re-read by time
    h.exchange.context.identity.current_keys("KOR")
    other = build(h.app.settings, clock=TestClock(h.clock.at))  # a second process over the same database
    try:
        for party in ("USA", "KOR", "USA"):  # the recipient's among others'
            keys = fresh_keys(h, party)
            other.exchange.keys.register(h.principals[party], party, keys.public_keys())
            h.keys[party] = keys
    finally:
        other.close()
    h.submit("JPN", recipients=["KOR", "USA"], payload=TRACK)
    for party in ("KOR", "USA"):
        (item,) = h.deliveries(party)
        view = h.exchange.deliveries.delivery(h.principals[party], item["id"])
        assert view["key"] == h.keys[party].fingerprint()  # the current key at the commit
        assert h.open(party, item["id"]) == TRACK


def test_a_report_whose_originator_rotates_before_its_commit_is_not_stored_as_verified_by_the_old_key(
    harness: Harness,
) -> None:
    h = harness
    sub = h.signed("JPN", recipients=["KOR"])  # signed with the key about to retire
    done: list[int] = []

    def rotate_once() -> None:
        if not done:
            done.append(1)
            h.keys["JPN"] = register(h, "JPN")

    calls = before_each_commit(h, rotate_once)
    written = h.written()[1]["reports"]
    with pytest.raises(BadSignature):  # prepared again: the key it names is no longer current
        h.exchange.submissions.submit(h.principals["JPN"], sub)
    assert len(calls) == 1
    assert h.written()[1]["reports"] == written
