"""Welch's t-test verdicts against a hand computation."""

import math

import pytest

from ibprune_lib.harness.verdicts import compare, compare_to


def test_the_interval_is_welchs_and_the_verdict_follows_the_one_sided_test():
    a, b = [92.0, 92.3, 92.1], [91.6, 91.9, 92.4, 91.8]
    comparison = compare(a, b)
    mean_a, mean_b = sum(a) / 3, sum(b) / 4
    var_a = sum((x - mean_a) ** 2 for x in a) / 2
    var_b = sum((x - mean_b) ** 2 for x in b) / 3
    se = math.sqrt(var_a / 3 + var_b / 4)
    dof = se**4 / ((var_a / 3) ** 2 / 2 + (var_b / 4) ** 2 / 3)  # Welch–Satterthwaite
    assert dof == pytest.approx(4.357, abs=1e-3)
    half = 2.689 * se  # t_{0.975} at 4.357 degrees of freedom (a t table)
    assert comparison.difference == pytest.approx(mean_a - mean_b)
    assert (comparison.low, comparison.high) == pytest.approx((mean_a - mean_b - half, mean_a - mean_b + half), abs=2e-3)
    assert comparison.verdict == "inconclusive" and comparison.low < 0 < comparison.high  # t ≈ 1.09
    assert compare([x + 1 for x in a], b).verdict == "holds" and compare(b, [x + 1 for x in a]).verdict == "fails"


def test_too_few_runs_or_no_spread_is_inconclusive():
    assert compare([95.0], [90.0, 90.1]).verdict == "inconclusive"
    assert math.isnan(compare([95.0], [90.0, 90.1]).low)
    assert compare([90.0, 90.0], [90.0, 90.0]).verdict == "inconclusive"
    assert compare_to([91.0], 92.0).verdict == "inconclusive" and compare_to([91.0], 92.0).runs_text() == "1"


def test_against_a_fixed_value_the_interval_is_of_the_difference():
    comparison = compare_to([91.0, 91.2, 91.1], 92.0)
    assert comparison.verdict == "fails" and comparison.difference == pytest.approx(-0.9)
    assert comparison.low < -0.9 < comparison.high < 0
    assert comparison.interval_text() == "-0.90 [-1.15, -0.65]"
