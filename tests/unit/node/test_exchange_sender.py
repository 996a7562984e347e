"""The node's report sender (CoT ingest and TAXII outbox) against an exchange that refuses
request bodies over its limit (413): batches are cut to a byte size the exchange takes, a batch
it still finds too large is split and sent again, and a report too large on its own fails alone;
reports the exchange answers 503 for (busy) are sent again after the wait it asks for."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from gsomia.client.reports import ReportDraft
from gsomia.crypto.keys import PartyKeys
from gsomia.errors import Busy, ExchangeUnreachable, PayloadTooLarge, StorageError
from gsomia.node.interop import ExchangeSender

MiB = 1 << 20


class Exchange:
    """``submit_batch`` as the exchange answers it: 413 over ``limit`` bytes, else one result
    per report."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.bodies: list[int] = []  # the size of every request body it was sent
        self.taken: list[str] = []

    def submit_batch(self, subs: Sequence[dict[str, Any]]) -> dict[str, Any]:
        size = len(json.dumps({"reports": list(subs)}).encode())
        self.bodies.append(size)
        if size > self.limit:
            raise PayloadTooLarge(f"the request body is larger than the limit of {self.limit} bytes")
        self.taken += [s["report"]["id"] for s in subs]
        delivered = {"recipients": [{"recipient": "KOR", "outcome": "delivered"}]}
        return {"results": [{"status": 201, "result": delivered} for _ in subs]}

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def keys() -> PartyKeys:
    return PartyKeys.generate("JPN")


def sender(keys: PartyKeys, exchange: Exchange) -> ExchangeSender:
    service = SimpleNamespace(
        keyring=SimpleNamespace(current=lambda: keys),
        config=SimpleNamespace(party="JPN"),
        connect=lambda: exchange,
    )
    return ExchangeSender(service)  # type: ignore[arg-type]


def drafts(n: int, size: int, prefix: str = "cot") -> list[ReportDraft]:
    return [
        ReportDraft(
            id=f"{prefix}-{i}",
            topic="dprk.missile.launch",
            level="極秘",
            payload=b"x" * size,
            created=datetime(2019, 11, 22, 1, tzinfo=UTC),
            recipients=("KOR",),
            content_type="application/cot+xml",
        )
        for i in range(n)
    ]


def test_a_burst_larger_than_the_exchanges_limit_is_sent_in_batches_it_takes(keys: PartyKeys) -> None:
    exchange = Exchange(limit=16 * MiB)  # the exchange's default GSOMIA_MAX_BATCH_BYTES
    burst = drafts(300, 60_000)  # 300 CoT events of 60 kB: about 24 MB of JSON in all
    results = sender(keys, exchange).send(burst)
    assert [r.ok for r in results] == [True] * 300
    assert exchange.taken == [d.id for d in burst]
    assert len(exchange.bodies) >= 3 and max(exchange.bodies) <= 8 * MiB


def test_a_batch_the_exchange_still_finds_too_large_is_split_and_a_report_too_large_fails_alone(
    keys: PartyKeys,
) -> None:
    exchange = Exchange(limit=1 * MiB)  # an exchange configured below the node's batch size
    batch = drafts(20, 60_000)
    batch[7] = drafts(1, 2 * MiB, prefix="huge")[0]
    results = sender(keys, exchange).send(batch)
    assert [r.ok for r in results] == [i != 7 for i in range(20)]
    assert "larger than the limit of 1048576 bytes" in results[7].detail
    assert sorted(exchange.taken) == sorted(d.id for i, d in enumerate(batch) if i != 7)


class BusyExchange(Exchange):
    """Answers 503 ``busy`` for the reports named in ``busy`` the first ``times`` they come."""

    def __init__(self, busy: set[str], times: int = 1) -> None:
        super().__init__(limit=16 * MiB)
        self.busy = dict.fromkeys(busy, times)

    def submit_batch(self, subs: Sequence[dict[str, Any]]) -> dict[str, Any]:
        results = []
        for sub in subs:
            rid = sub["report"]["id"]
            if self.busy.get(rid, 0) > 0:
                self.busy[rid] -= 1
                problem = {"type": "urn:gsomia:problem:busy", "status": 503, "detail": "busy", "retry_after": 2}
                results.append({"status": 503, "result": None, "problem": problem})
            else:
                self.taken.append(rid)
                results.append({"status": 201, "result": {"recipients": []}})
        return {"results": results}


def test_reports_the_exchange_was_too_busy_to_decide_are_sent_again_after_its_retry_after(keys: PartyKeys) -> None:
    exchange = BusyExchange({"cot-1"})
    waits: list[float] = []
    service = SimpleNamespace(
        keyring=SimpleNamespace(current=lambda: keys), config=SimpleNamespace(party="JPN"), connect=lambda: exchange
    )
    results = ExchangeSender(service, sleep=waits.append).send(drafts(3, 10))  # type: ignore[arg-type]
    assert [r.ok for r in results] == [True, True, True]
    assert exchange.taken == ["cot-0", "cot-2", "cot-1"]  # the busy one alone, again
    assert waits == [2]
    stays = BusyExchange({"cot-0"}, times=10)
    service.connect = lambda: stays
    # still busy after every attempt: never a refusal, the caller sends the reports again later
    with pytest.raises(ExchangeUnreachable, match="stayed busy with 1 of 2 report"):
        ExchangeSender(service, sleep=waits.append, busy_attempts=2).send(drafts(2, 10))  # type: ignore[arg-type]
    assert stays.taken == ["cot-1"]


class WholeBusyExchange(Exchange):
    """Answers the whole request 503 (``error``) the first ``times`` requests."""

    def __init__(self, error: Exception, times: int) -> None:
        super().__init__(limit=16 * MiB)
        self.error, self.times = error, times

    def submit_batch(self, subs: Sequence[dict[str, Any]]) -> dict[str, Any]:
        if self.times > 0:
            self.times -= 1
            raise self.error
        return super().submit_batch(subs)


@pytest.mark.parametrize("error", [Busy("busy (HTTP 503)", retry_after=3), StorageError("the database is away")])
def test_a_whole_request_answered_503_is_sent_again_not_refused(keys: PartyKeys, error: Exception) -> None:
    exchange = WholeBusyExchange(error, times=1)
    waits: list[float] = []
    service = SimpleNamespace(
        keyring=SimpleNamespace(current=lambda: keys), config=SimpleNamespace(party="JPN"), connect=lambda: exchange
    )
    results = ExchangeSender(service, sleep=waits.append).send(drafts(3, 10))  # type: ignore[arg-type]
    assert [r.ok for r in results] == [True, True, True]
    assert exchange.taken == ["cot-0", "cot-1", "cot-2"]
    assert waits == [3 if isinstance(error, Busy) else 1]
    exchange = WholeBusyExchange(error, times=10)
    service.connect = lambda: exchange
    with pytest.raises(ExchangeUnreachable, match="stayed busy with 2 of 2"):
        ExchangeSender(service, sleep=waits.append, busy_attempts=2).send(drafts(2, 10))  # type: ignore[arg-type]


def test_a_gateway_error_in_front_of_the_exchange_is_sent_again_never_counted_refused(keys: PartyKeys) -> None:
    from gsomia.client.http import error_for_problem

    class Gateway(Exchange):
        def submit_batch(self, subs: Sequence[dict[str, Any]]) -> dict[str, Any]:
            # what the client makes of a proxy's "502 Bad Gateway" page: the exchange may have
            # stored the reports, or never seen them
            raise error_for_problem(502, None, what="POST /api/v1/report-batches")

    with pytest.raises(ExchangeUnreachable, match="gateway"):
        sender(keys, Gateway(limit=16 * MiB)).send(drafts(3, 100))
