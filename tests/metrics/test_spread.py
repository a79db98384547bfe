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


def test_bootstrap_interval_matches_scipy_percentile_bootstrap():
  values = np.random.default_rng(4).gamma(2.0, 3.0, 60)  # skewed, as per-face PSNRs are
  ours = spread.bootstrap_interval(values, resamples=20_000, seed=1)
  reference = stats.bootstrap(
    (values,), np.mean, n_resamples=20_000, method="percentile", rng=np.random.default_rng(2)
  ).confidence_interval
  assert ours.mean == pytest.approx(values.mean()) and ours.n == 60
  # Two Monte Carlo estimates of the same percentiles: equal to a small share of the width.
  width = reference.high - reference.low
  assert ours.low == pytest.approx(reference.low, abs=0.03 * width)
  assert ours.high == pytest.approx(reference.high, abs=0.03 * width)


def test_bootstrap_interval_of_a_constant_has_zero_width_and_is_reproducible():
  interval = spread.bootstrap_interval([21.5] * 30)
  assert (interval.low, interval.mean, interval.high) == (21.5, 21.5, 21.5)
  values = np.random.default_rng(5).normal(size=25)
  assert spread.bootstrap_interval(values, seed=3) == spread.bootstrap_interval(values, seed=3)
  assert math.isnan(spread.bootstrap_interval([1.0]).half_width)
  with pytest.raises(ValueError, match="non-finite"):
    spread.bootstrap_interval([1.0, math.inf])


def test_bootstrap_interval_covers_the_true_mean_at_about_its_level():
  """95% intervals from 40 normal draws hold the true mean in about 95% of 1000 repetitions
  (the percentile bootstrap runs slightly narrow at this size)."""
  draws = np.random.default_rng(6).normal(5.0, 2.0, (1000, 40))
  covered = [
    not spread.bootstrap_interval(row, seed=i).excludes(5.0) for i, row in enumerate(draws)
  ]
  assert np.mean(covered) == pytest.approx(0.94, abs=0.025)
