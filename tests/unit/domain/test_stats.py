"""Exchange statistics and the Mann–Kendall trend test."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

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
