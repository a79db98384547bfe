"""Seed-spread intervals against scipy's t-tests and against their coverage by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from jaxface.metrics import spread


def test_mean_interval_matches_scipy_one_sample_t_interval():
  values = [10.1, 9.4, 10.9, 10.3]
  interval = spread.mean_interval(values, level=0.9)
  reference = stats.ttest_1samp(values, 0.0).confidence_interval(confidence_level=0.9)
  assert interval.mean == pytest.approx(np.mean(values))
  assert (interval.low, interval.high) == pytest.approx((reference.low, reference.high))
  assert interval.n == 4


def test_paired_difference_matches_scipy_paired_t_interval():
  first, second = [10.1, 9.4, 10.9], [10.8, 9.9, 11.0]
  gap = spread.paired_difference(first, second)
  reference = stats.ttest_rel(first, second).confidence_interval()
  assert (gap.low, gap.high) == pytest.approx((reference.low, reference.high))


def test_interval_covers_the_true_mean_at_its_level():
  """95% intervals from 3 draws hold the true mean in about 95% of 4000 repetitions."""
  rng = np.random.default_rng(0)
  draws = rng.normal(5.0, 2.0, (4000, 3))
  covered = [spread.mean_interval(row).excludes(5.0) is False for row in draws]
  # binomial standard error at p = 0.95, n = 4000 is 0.0034: 4 of them either side
  assert np.mean(covered) == pytest.approx(0.95, abs=0.014)


def test_a_single_run_has_no_interval_and_no_verdict():
  interval = spread.mean_interval([3.0])
  assert math.isnan(interval.low) and math.isnan(interval.high)
  assert not interval.excludes(100.0)
  assert interval.format(1) == "3.0"
  assert spread.compare(interval) == "one run only"


def test_verdicts_follow_the_sign_of_the_gap_and_the_metric_direction():
  lower = spread.paired_difference([1.0, 1.1, 0.9], [2.0, 2.05, 2.1])  # first clearly lower
  assert lower.high < 0
  assert spread.compare(lower, lower_is_better=True) == "better"
  assert spread.compare(lower, lower_is_better=False) == "worse"
  noisy = spread.paired_difference([1.0, 3.0, 2.0], [2.0, 1.0, 2.5])
  assert noisy.low < 0 < noisy.high
  assert spread.compare(noisy) == "within noise"
  assert lower.format(2).startswith(f"{lower.mean:.2f} ± ")


@pytest.mark.parametrize(
  "call, message",
  [
    (lambda: spread.mean_interval([]), "at least one"),
    (lambda: spread.mean_interval([1.0, float("nan")]), "non-finite"),
    (lambda: spread.mean_interval([1.0, 2.0], level=1.0), "level"),
    (lambda: spread.paired_difference([1.0, 2.0], [1.0]), "matched"),
  ],
)
def test_bad_input_is_named(call, message):
  with pytest.raises(ValueError, match=message):
    call()
