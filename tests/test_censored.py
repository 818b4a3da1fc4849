"""Censored time-to-generalize statistics on synthetic runs."""

import math

import pytest

from reproduction.censored import censored_summary, km_median


def test_without_censoring_the_median_is_the_ordinary_median():
    assert km_median([300, 100, 200], [True] * 3) == 200
    assert km_median([100, 200, 300, 400], [True] * 4) == 250
    s = censored_summary([120, 100, 140, 110, 130], [1000] * 5)
    assert s["median"] == 120 and s["share"] == 1 and s["median_text"] == "120"


def test_runs_censored_at_the_budget_count_as_slower_than_every_event():
    s = censored_summary([100, 200, 300, None, None], [1000] * 5)
    assert s["median"] == 300 and s["n_generalized"] == 3 and s["share"] == pytest.approx(0.6)
    # dropping the censored runs would give 200: the bias the estimator avoids
    assert s["median"] > 200


def test_a_median_that_is_not_reached_is_reported_as_above_the_budget():
    s = censored_summary([100, 150, None, None, None], [3000] * 5)
    assert s["median"] is None and s["median_text"] == "> 3000" and s["share"] == pytest.approx(0.4)
    assert math.isinf(s["ci_high"])
    none = censored_summary([None] * 4, [500] * 4)
    assert none["share"] == 0 and math.isinf(none["ci_low"]) and math.isinf(none["ci_high"])


def test_kaplan_meier_removes_a_run_censored_early_from_the_risk_set():
    # S = 3/4 after 10; the run censored at 15 leaves 2 at risk; S = 3/4 · 1/2 = 3/8 after 20
    assert km_median([10, 15, 20, 30], [True, False, True, True]) == 20
    assert censored_summary([10, None, 20, 30], [100, 15, 100, 100])["median"] == 20


def test_exactly_half_gives_the_midpoint_and_ties_count_together():
    assert km_median([10, 20, 30, 40], [True, True, True, True]) == 25
    assert km_median([10, 10, 30, 30, 50], [True] * 5) == 30


def test_the_bootstrap_interval_is_deterministic_and_brackets_the_median():
    times = [90, 110, 130, 150, None, 120, 140]
    a, b = censored_summary(times, [1000] * 7), censored_summary(times, [1000] * 7)
    assert a == b
    assert a["ci_low"] <= a["median"] <= a["ci_high"]
    with pytest.raises(ValueError):
        censored_summary([], [])
