"""The spread of a result over repeated runs: Student-t confidence intervals and paired gaps.

Results pages compare methods trained with several seeds. A figure is
reported as its mean with a two-sided confidence interval for the mean
(Student's t with n - 1 degrees of freedom, the seeds taken as independent
draws), and a comparison of two methods trained on the same seeds as the
interval of their per-seed differences (the paired t interval), which
removes the variation both share (data order, initialisation). A gap whose
interval holds 0 is within noise.

`bootstrap_interval` gives the interval of a mean over the faces of one run
(percentile bootstrap), where the faces, not the seeds, are the draws.
`SeedGroup` holds one variant's evaluations by seed (what the report
commands pair), and `markdown_table` writes the results pages' tables.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from jaxface.errors import InputFileError


@dataclasses.dataclass(frozen=True)
class Interval:
  """A mean over `n` runs and its confidence interval [low, high] (NaN when n < 2)."""

  mean: float
  low: float
  high: float
  n: int
  level: float

  @property
  def half_width(self) -> float:
    return (self.high - self.low) / 2.0

  def excludes(self, value: float = 0.0) -> bool:
    """Whether `value` lies outside the interval (False when there is none)."""
    return self.n >= 2 and not self.low <= value <= self.high

  def format(self, digits: int = 2) -> str:
    """ "10.09 ± 0.42" (the interval's half width), or "10.09" for a single run."""
    if self.n < 2:
      return f"{self.mean:.{digits}f}"
    return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"


def _checked_sample(values: Sequence[float], level: float, caller: str) -> np.ndarray:
  """`values` as a flat float64 array; ValueError for a bad level, no value or a non-finite one."""
  if not 0.0 < level < 1.0:
    raise ValueError(f"level must be in (0, 1), got {level}")
  sample = np.asarray(values, np.float64).reshape(-1)
  if sample.size == 0:
    raise ValueError(f"{caller} needs at least one value")
  if not np.all(np.isfinite(sample)):
    raise ValueError(f"{caller} got non-finite values: {sample[~np.isfinite(sample)].tolist()}")
  return sample


def mean_interval(values: Sequence[float], level: float = 0.95) -> Interval:
  """The mean of `values` with its two-sided Student-t interval at `level`."""
  sample = _checked_sample(values, level, "mean_interval")
  mean, n = float(sample.mean()), int(sample.size)
  if n < 2:
    return Interval(mean, math.nan, math.nan, n, level)
  standard_error = float(sample.std(ddof=1)) / math.sqrt(n)
  half = float(stats.t.ppf(0.5 + level / 2.0, df=n - 1)) * standard_error
  return Interval(mean, mean - half, mean + half, n, level)


def bootstrap_interval(
  values: Sequence[float], level: float = 0.95, resamples: int = 2_000, seed: int = 0
) -> Interval:
  """The mean of `values` with its percentile bootstrap interval at `level` (Efron and
  Tibshirani 1993, ch. 13): the mean recomputed on `resamples` draws of len(values) values with
  replacement. For per-face figures of one run, where the faces are the independent draws and
  nothing is assumed of their distribution (whole-image PSNR is skewed by easy faces). Seeded,
  so a report is reproducible; a single value has no interval (NaN)."""
  if resamples < 1:
    raise ValueError(f"resamples must be >= 1, got {resamples}")
  sample = _checked_sample(values, level, "bootstrap_interval")
  mean, n = float(sample.mean()), int(sample.size)
  if n < 2:
    return Interval(mean, math.nan, math.nan, n, level)
  draws = np.random.default_rng(seed).integers(0, n, (resamples, n))  # (R, n) indices
  means = sample[draws].mean(axis=1)
  low, high = np.quantile(means, [0.5 - level / 2.0, 0.5 + level / 2.0])
  return Interval(mean, float(low), float(high), n, level)


def paired_difference(
  first: Sequence[float], second: Sequence[float], level: float = 0.95
) -> Interval:
  """The interval of mean(first - second) over runs paired by position (e.g. by seed)."""
  a, b = np.asarray(first, np.float64), np.asarray(second, np.float64)
  if a.shape != b.shape:
    raise ValueError(f"paired_difference needs matched runs, got {a.shape} and {b.shape}")
  return mean_interval(a - b, level)


def compare(gap: Interval, lower_is_better: bool = True) -> str:
  """A verdict on a gap first - second: "better", "worse", "within noise" or "one run only"."""
  if gap.n < 2:
    return "one run only"
  if not gap.excludes(0.0):
    return "within noise"
  first_lower = gap.high < 0.0
  return "better" if first_lower == lower_is_better else "worse"


class SeedGroup:
  """The evaluations of one variant (a label), by seed: what a report pairs across variants."""

  def __init__(self, label: str):
    self.label = label
    self.by_seed: dict[int, dict[str, float]] = {}
    self.steps: set[int] = set()  # the steps the runs were evaluated at

  def add(self, seed: int, evaluation: dict[str, float], source: str) -> None:
    """Adds one run's evaluation (with its "step"); InputFileError for a repeated seed."""
    if seed in self.by_seed:
      raise InputFileError(f"{source}: a second {self.label!r} run with seed {seed}")
    self.by_seed[seed] = evaluation
    self.steps.add(int(evaluation["step"]))

  def values(self, key: str, seeds: Sequence[int] | None = None) -> list[float]:
    """`key` of the runs of `seeds` (default all), in seed order; InputFileError if missing."""
    seeds = sorted(self.by_seed) if seeds is None else seeds
    missing = [s for s in seeds if key not in self.by_seed[s]]
    if missing:
      raise InputFileError(f"runs {self.label!r} seeds {missing} have no eval/{key}")
    return [float(self.by_seed[s][key]) for s in seeds]


def interval_cell(values: Sequence[float], digits: int = 2) -> str:
  """A table cell: the mean and its 95% interval (`Interval.format`)."""
  return mean_interval(values).format(digits)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
  """A markdown table (first column left-aligned, the others right-aligned), then a blank line."""
  lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
  return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]
