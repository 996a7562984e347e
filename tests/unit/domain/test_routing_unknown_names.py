"""A decision about names the record does not know keeps nothing: the network a long-running
exchange compiled once per record must not grow with every distinct string a request carries
(``GET /api/v1/route?as_exchange=true`` takes the names as signed, without a token)."""

from __future__ import annotations

from gsomia.domain.policy import Rule
from gsomia.domain.record import Record, compile_network
from gsomia.domain.routing import Decision, ReleaseRequest, explain
from tests.conftest import kst

AT = kst("2019-11-22T10:00+09:00")


def _retained(net: object) -> int:
    return sum(len(getattr(net, name)) for name in ("known", "memo", "legs", "plans"))


def test_requests_naming_unknown_parties_topics_or_levels_keep_nothing(record: Record) -> None:
    net = compile_network(record)
    explain(net, ReleaseRequest(originator="JPN", recipient="KOR", topic="dprk.missile.launch", level="秘", at=AT))
    warm = _retained(net)
    for i in range(200):
        for req in (
            ReleaseRequest(originator=f"X{i}", recipient="KOR", topic="dprk.missile.launch", level="秘", at=AT),
            ReleaseRequest(originator="JPN", recipient=f"Y{i}", topic="dprk.missile.launch", level="秘", at=AT),
            ReleaseRequest(originator="JPN", recipient="KOR", topic=f"dprk.t{i}", level="秘", at=AT),
            ReleaseRequest(originator="JPN", recipient="KOR", topic="dprk.missile.launch", level=f"L{i}", at=AT),
        ):
            route = explain(net, req)
            assert route.decision is Decision.DENY and route.reasons[0].rule is Rule.KNOWN
    assert _retained(net) == warm


def test_decisions_about_known_names_are_still_answered_alike_when_asked_again(record: Record) -> None:
    net = compile_network(record)
    req = ReleaseRequest(originator="JPN", recipient="KOR", topic="dprk.missile.launch", level="秘", at=AT)
    first = explain(net, req)
    assert first.decision is Decision.DIRECT
    assert explain(net, req) == first == explain(compile_network(record), req)
    unknown = ReleaseRequest(originator="ZZZ", recipient="KOR", topic="dprk.missile.launch", level="秘", at=AT)
    assert explain(net, unknown) == explain(net, unknown) == explain(compile_network(record), unknown)
