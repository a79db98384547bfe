"""A run's schedule: the method's stages, checked once, and the stage that trains a given step.

This is the one place that checks a schedule: methods only describe their
stages (`jaxface.methods.protocol.Stage`), and the run's length is their
total, never a separate field that could disagree with it.
"""

from __future__ import annotations

import numpy as np

from jaxface.errors import ConfigError
from jaxface.methods.protocol import Stage


def method_stages(method, config) -> tuple[Stage, ...]:
  """`method.stages(config)`, checked: Stage records, unique names, positive step counts."""
  stages = tuple(method.stages(config))
  if not stages:
    raise ConfigError(f"{config.method}: the config gives no stage to train")
  for stage in stages:
    if not isinstance(stage, Stage):
      raise TypeError(f"{config.method}.stages(config) must return Stage records, got {stage!r}")
    if not stage.modules:
      raise TypeError(f"{config.method} stage {stage.name!r} names no module it trains")
  names = [stage.name for stage in stages]
  if len(set(names)) != len(names):
    raise TypeError(f"{config.method}.stages(config) repeats a stage name: {names}")
  for stage in stages:
    if not isinstance(stage.steps, int | np.integer) or stage.steps < 1:
      raise ConfigError(
        f"{config.method} stage {stage.name!r} has {stage.steps!r} steps: every stage the config "
        "schedules needs at least one (check the config's step counts)"
      )
  return stages


def total_steps(stages: tuple[Stage, ...]) -> int:
  return int(sum(stage.steps for stage in stages))


def stage_at(stages: tuple[Stage, ...], step: int) -> int:
  """Index into `stages` of the stage that trains 0-based `step` (the last one past the end)."""
  ends = np.cumsum([stage.steps for stage in stages])
  return int(min(np.searchsorted(ends, step, side="right"), len(stages) - 1))


def check_modules(stages: tuple[Stage, ...], state, method_name: str) -> None:
  """Every module a stage trains is a field of the method's state."""
  for stage in stages:
    unknown = [name for name in stage.modules if not hasattr(state, name)]
    if unknown:
      raise TypeError(
        f"{method_name} stage {stage.name!r} trains {unknown}, which its state does not have"
      )
