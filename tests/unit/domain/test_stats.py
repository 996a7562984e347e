"""Exchange statistics and the Mann–Kendall trend test."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from gsomia.domain import stats as stats_module
from gsomia.domain.record import Record
from gsomia.domain.stats import kendall_s, mann_kendall, provision_stats
from tests.conftest import kst


def test_gsomia_provisions_as_known_when_korea_announced(record: Record) -> None:
    s = provision_stats("JPN-KOR-GSOMIA", record.provisions, kst("2019-08-22T18:20+09:00"), "Asia/Seoul")
    assert s.by_year == {"2016": 1, "2017": 19, "2018": 2, "2019": 7}
    assert s.total == 29
    assert s.trend.n == 4
    assert s.trend.p_value == pytest.approx(0.75)
    assert s.trend.min_p_value == pytest.approx(2 / 24)
    assert "no trend can be significant" in s.trend.note


def test_later_dated_exchanges_count_after_that_instant(record: Record) -> None:
    later = provision_stats("JPN-KOR-GSOMIA", record.provisions, kst("2019-10-03"), "Asia/Seoul")
    assert later.by_year["2019"] == 9
    assert later.by_month["2019-08"] == 2 and later.by_month["2019-10"] == 1


def test_missing_years_are_unknown_not_zero(record: Record) -> None:
    s = provision_stats("JPN-KOR-GSOMIA", record.provisions, kst("2026-01-01"), "Asia/Seoul")
    assert "2020" not in s.by_year and s.missing_years == ("2020", "2021")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=30), min_size=3, max_size=7))
def test_exact_mann_kendall_matches_scipy_kendall_tau_statistic(values: list[int]) -> None:
    s = kendall_s(values)
    tau = scipy_stats.kendalltau(list(range(len(values))), values, variant="b")
    if not math.isnan(tau.statistic):
        assert (s > 0) == (tau.statistic > 0) and (s < 0) == (tau.statistic < 0)
    result = mann_kendall(values)
    assert result.p_value is not None and 0 < result.p_value <= 1


def test_normal_approximation_for_long_series() -> None:
    rising = list(range(12))
    r = mann_kendall(rising)
    assert r.direction == "increasing" and r.p_value is not None and r.p_value < 0.001
    assert "normal" in r.method


def test_too_few_points() -> None:
    assert mann_kendall([1, 2]).p_value is None


def _share_of_every_ordering(values: list[float]) -> tuple[float, float]:
    """The exact p-value and its floor by enumerating every ordering (the definition)."""
    s = kendall_s(values)
    dist = [kendall_s(p) for p in itertools.permutations(values)]
    extreme = max(abs(v) for v in dist)
    p = sum(1 for v in dist if abs(v) >= abs(s)) / len(dist)
    floor = sum(1 for v in dist if abs(v) >= extreme) / len(dist) if extreme else 1.0
    return p, floor


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=4), min_size=3, max_size=7))
def test_the_exact_p_value_is_the_share_of_every_ordering_as_extreme(values: list[int]) -> None:
    counts = [float(v) for v in values]
    r = mann_kendall(counts)
    assert (r.p_value, r.min_p_value) == _share_of_every_ordering(counts)


def test_the_exact_distribution_is_counted_not_enumerated(monkeypatch: pytest.MonkeyPatch) -> None:
    # eight yearly counts were 8! = 40,320 orderings scored one by one: half a second of CPU
    # per agreement on every unauthenticated /api/v1/stats and /api/v1/report request
    calls = 0
    real = stats_module.kendall_s

    def counting(values: Sequence[float]) -> int:
        nonlocal calls
        calls += 1
        return real(values)

    monkeypatch.setattr(stats_module, "kendall_s", counting)
    r = mann_kendall([1.0, 19.0, 2.0, 9.0, 4.0, 6.0, 11.0, 3.0])
    assert "exact" in r.method and r.n == 8
    assert calls == 1


def test_orderings_are_counted_by_their_inversions() -> None:
    counts = stats_module.inversion_counts
    assert counts([1] * 8)[:4] == [1, 7, 27, 76]  # the Mahonian numbers of 8
    assert sum(counts([1] * 8)) == math.factorial(8)
    assert counts([2, 2]) == [1, 1, 2, 1, 1]  # the 6 orderings of a a b b by inversions
    assert sum(counts([2, 3, 3])) == math.factorial(8) // (2 * 6 * 6)
