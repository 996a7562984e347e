"""What the use cases share: inbox wake-ups after a commit, the asynchronous submission path a
server uses, decisions made again when the record changes under them, the exercise what-if, and
start-up warming."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gsomia.bootstrap import Settings, build
from gsomia.errors import Busy, InvalidInput, StorageError, UnknownEntity, ValidationFailed
from gsomia.services.exchange.clock import ExchangeClock
from gsomia.services.exchange.notify import Notifier
from gsomia.services.exchange.operator import EventSpec
from tests.harness import Harness

# --- wake-ups ---------------------------------------------------------------------------------------


def test_a_commit_wakes_the_streams_of_the_parties_it_concerns() -> None:
    notifier = Notifier()

    async def scenario() -> tuple[bool, bool, bool]:
        kor, usa = notifier.subscribe("KOR"), notifier.subscribe("USA")
        assert notifier.subscribers() == 2
        notifier.publish(["KOR", "KOR"])
        woken = await kor.wait(5)
        # nothing for USA: an expired wait says so at once
        not_woken = await usa.wait(0)
        again = await kor.wait(0)  # a wake-up is consumed by the wait that saw it
        kor.close()
        usa.close()
        return woken, not_woken, again

    assert asyncio.run(scenario()) == (True, False, False)
    assert notifier.subscribers() == 0


def test_a_stream_that_has_read_as_far_as_a_wake_up_names_is_not_woken() -> None:
    notifier = Notifier()

    async def scenario() -> tuple[bool, bool, bool]:
        behind, current = notifier.subscribe("KOR"), notifier.subscribe("KOR")
        behind.seen, current.seen = 40, 42  # what each stream has read
        notifier.publish({"KOR": 42})  # KOR's inbox now ends at 42
        woken = await behind.wait(5)
        not_woken = await current.wait(0)
        notifier.publish({"KOR": 43})
        later = await current.wait(5)
        behind.close()
        current.close()
        return woken, not_woken, later

    assert asyncio.run(scenario()) == (True, False, True)


def test_a_stream_whose_loop_has_closed_is_dropped_on_the_next_commit() -> None:
    notifier = Notifier()

    async def subscribe() -> None:
        notifier.subscribe("KOR")

    asyncio.run(subscribe())  # the loop is closed when run() returns
    assert notifier.subscribers() == 1
    notifier.publish(["KOR"])
    assert notifier.subscribers() == 0


def test_subscribing_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        Notifier().subscribe("KOR")


def test_a_submission_wakes_the_recipients_streams(harness: Harness) -> None:
    notifier = harness.exchange.notifier

    async def scenario() -> tuple[bool, bool]:
        kor, jpn = notifier.subscribe("KOR"), notifier.subscribe("JPN")
        await asyncio.to_thread(harness.submit, "JPN", recipients=["KOR"])
        return await kor.wait(5), await jpn.wait(0)

    assert asyncio.run(scenario()) == (True, False)


# --- the server's path ------------------------------------------------------------------------------


def test_the_asynchronous_submission_answers_as_the_synchronous_one(harness: Harness) -> None:
    sub = harness.signed("JPN", recipients=["KOR", "USA"])
    principal = harness.principals["JPN"]

    async def twice() -> tuple[Any, Any]:
        first = await harness.exchange.submissions.submit_async(principal, sub)
        return first, await harness.exchange.submissions.submit_async(principal, sub)

    first, again = asyncio.run(twice())
    assert harness.outcomes(first) == {"KOR": "delivered", "USA": "delivered"}
    assert (first.created, again.created, again.body) == (True, False, first.body)
    sync = harness.exchange.submissions.submit(principal, sub)
    assert (sync.created, sync.body) == (False, first.body)


def between_decision_and_commit(h: Harness, action: Callable[[], object], *, times: int = 1) -> list[int]:
    """Run ``action`` after a submission was decided and before it is committed (``times``
    times); return how often that happened."""
    committer = h.exchange.context.committer
    calls: list[int] = []
    submit_batched, run_batched_async = committer.submit_batched, committer.run_batched_async

    def hooked_sync(*args: Any) -> Any:
        calls.append(1)
        if len(calls) <= times:
            action()
        return submit_batched(*args)

    async def hooked_async(*args: Any) -> Any:
        calls.append(1)
        if len(calls) <= times:
            await asyncio.to_thread(action)
        return await run_batched_async(*args)

    committer.submit_batched = hooked_sync  # type: ignore[method-assign,assignment]
    committer.run_batched_async = hooked_async  # type: ignore[method-assign,assignment]
    return calls


def test_a_report_decided_on_a_record_that_changed_is_decided_again(harness: Harness) -> None:
    amend = EventSpec(kind="amendment", changes={"max_level": "CONFIDENTIAL"})
    calls = between_decision_and_commit(
        harness,
        lambda: harness.exchange.operator.record_event(harness.principals["operator"], "JPN-KOR-GSOMIA", amend),
    )
    result = harness.submit("JPN", recipients=["KOR"])
    # decided on the amended record: 極秘 no longer fits the GSOMIA, so it goes the TISA way
    kor = harness.decision(result, "KOR")
    assert (kor["decision"], kor["outcome"]) == ("relay", "pending_consent")
    assert len(calls) == 2
    assert harness.deliveries("KOR") == []


def test_a_report_decided_on_keys_that_changed_is_decided_again(harness: Harness) -> None:
    new_kor = type(harness.keys["KOR"]).generate("KOR", harness.keys["KOR"].profile)

    def rotate() -> None:
        harness.exchange.keys.register(harness.principals["KOR"], "KOR", new_kor.public_keys())

    calls = between_decision_and_commit(harness, rotate)
    harness.submit("JPN", recipients=["KOR"], payload=b"to the new key")
    assert len(calls) == 2
    harness.keys["KOR"] = new_kor
    (item,) = harness.deliveries("KOR")
    assert harness.open("KOR", item["id"]) == b"to the new key"  # wrapped to the key current at commit


def test_a_recipients_keys_that_keep_changing_make_the_exchange_busy_and_write_no_report(harness: Harness) -> None:
    def rotate_kor() -> None:  # by the operator, whom no registration limit holds back
        fresh = type(harness.keys["KOR"]).generate("KOR", harness.keys["KOR"].profile)
        harness.exchange.keys.register(harness.principals["operator"], "KOR", fresh.public_keys())

    calls = between_decision_and_commit(harness, rotate_kor, times=100)
    reports = harness.written()[1]["reports"]
    with pytest.raises(Busy, match="changed every time") as busy:
        harness.submit("JPN", recipients=["KOR"])
    assert busy.value.retry_after >= 1
    with pytest.raises(Busy, match="changed every time"):
        asyncio.run(
            harness.exchange.submissions.submit_async(
                harness.principals["JPN"], harness.signed("JPN", recipients=["KOR"])
            )
        )
    assert len(calls) == 10  # five attempts each
    assert harness.written()[1]["reports"] == reports == 0


# --- the record and start-up ------------------------------------------------------------------------


def test_the_exercise_what_if_is_the_one_decisions_use(terminated: Harness) -> None:
    whatif = terminated.exchange.context.records.whatif()
    assert whatif is not None
    assert (whatif.name, whatif.drop) == ("termination-took-effect", ("jpn-kor-2019-suspension",))
    assert terminated.exchange.clock.exercise and terminated.exchange.clock.info() is not None


def test_a_what_if_that_does_not_apply_is_left_for_the_first_decision_to_report(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("drop: [no-such-event]\n", encoding="utf-8")
    app = build(Settings(db=f"sqlite:///{tmp_path / 'g.db'}", data_dir=tmp_path, exercise_whatif=bad))
    try:
        app.scenarios.load("japan-korea-2019")
        app.exchange.warm()  # a server still starts, and says what is wrong on the first request
        with pytest.raises(ValidationFailed, match="no recorded event 'no-such-event' to drop"):
            app.exchange.context.records.network()
    finally:
        app.close()


def test_warming_an_empty_database_is_left_for_the_first_request(tmp_path: Path) -> None:
    app = build(Settings(db=f"sqlite:///{tmp_path / 'empty.db'}", data_dir=tmp_path))
    try:
        app.exchange.warm()  # no scenario yet: nothing to read, nothing raised
        assert not app.exchange.context.records.warm()
        app.scenarios.load("japan-korea-2019")
        app.exchange.warm()
        assert {"JPN", "KOR", "USA"} <= set(app.exchange.context.records.network().record.parties)
    finally:
        app.close()


def test_an_exercise_clock_needs_an_offset() -> None:
    with pytest.raises(InvalidInput, match="UTC offset"):
        ExchangeClock(system=lambda: datetime(2019, 11, 22, 1, 0).astimezone(), exercise_start=datetime(2019, 11, 22))  # noqa: DTZ001
    clock = ExchangeClock(system=lambda: datetime.fromisoformat("2019-11-22T01:00+00:00"), exercise_start=None)
    with pytest.raises(InvalidInput, match="UTC offset"):
        clock.advance(datetime(2019, 11, 23))  # noqa: DTZ001


def test_principals_for_unknown_parties_are_refused_once_a_scenario_is_loaded(tmp_path: Path) -> None:
    app = build(Settings(db=f"sqlite:///{tmp_path / 'g.db'}", data_dir=tmp_path))
    try:
        # before any scenario, any well-formed party id is taken on trust
        assert app.exchange.identity.add_principal(role="party", name="x", party="XYZ").principal.party == "XYZ"
        app.scenarios.load("japan-korea-2019")
        with pytest.raises(UnknownEntity, match="unknown party 'QQQ'"):
            app.exchange.identity.add_principal(role="party", name="y", party="QQQ")
    finally:
        app.close()


# --- the key-encryption key -------------------------------------------------------------------------


@pytest.mark.parametrize("change", ["missing", "another"])
def test_a_key_encryption_key_that_does_not_open_the_stored_reports_is_refused_and_nothing_written(
    harness: Harness, tmp_path_factory: pytest.TempPathFactory, change: str
) -> None:
    # a restore that left exchange.kek out (made anew, before) or put another one in
    harness.submit("JPN", recipients=["KOR"])
    harness.close()
    copy = tmp_path_factory.mktemp("restored")
    restored = harness.clone(copy)
    restored.close()
    kek = copy / "exchange.kek"
    if change == "missing":
        kek.unlink()
    else:
        kek.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
        kek.chmod(0o600)
    again = restored.clone(tmp_path_factory.mktemp("started"))
    try:
        before = again.written()
        with pytest.raises(StorageError, match=r"put (it )?back"):
            again.submit("JPN", recipients=["KOR"])
        assert again.written() == before
        # a missing one is not made anew
        assert (again.app.settings.data_dir / "exchange.kek").exists() is (change == "another")
    finally:
        again.close()
