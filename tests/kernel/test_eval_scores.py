"""The report's arithmetic against values worked out by hand or by a second formula."""

from __future__ import annotations

import math

import pytest

from app.kernel.eval_scores import pass_at_k, wilson_interval


def test_wilson_interval_matches_the_textbook_value() -> None:
    # 8 of 10: Wilson's 95 % interval is about 0.490 to 0.943 (Newcombe 1998, method 3).
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_interval_stays_inside_zero_and_one_at_the_extremes() -> None:
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0.1 < high < 0.2
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and 0.8 < low < 0.9
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_interval_narrows_with_more_questions() -> None:
    small = wilson_interval(5, 10)
    large = wilson_interval(500, 1000)
    assert small[1] - small[0] > 5 * (large[1] - large[0])
    assert small[0] < 0.5 < small[1] and large[0] < 0.5 < large[1]


def test_pass_at_k_is_the_unbiased_estimator() -> None:
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - math.comb(7, 5) / math.comb(10, 5))
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)  # pass@1 is the share correct
    assert pass_at_k(4, 0, 4) == 0.0
    assert pass_at_k(4, 1, 4) == 1.0  # k = n: any correct sample
    assert pass_at_k(200, 13, 10) == pytest.approx(1 - math.comb(187, 10) / math.comb(200, 10))


def test_pass_at_k_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="c: must be between 0 and n"):
        pass_at_k(2, 3, 1)
    with pytest.raises(ValueError, match="k: must be between 1 and n"):
        pass_at_k(2, 1, 3)
