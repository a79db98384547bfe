"""Stages as data: the loop runs a method's stages in order, each compiled once, each with its own
optimiser, never mixing two stages in one logged interval, and checks the schedule itself."""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import optax
import pytest

from jaxface import training
from jaxface.errors import ConfigError
from jaxface.methods.protocol import Stage, init_optimizer
from jaxface.training import schedule
from tests.training import fitting_method, staged_method


def test_stages_run_in_order_each_compiled_once_and_never_mixed_in_a_log(tmp_path):
  config = staged_method.get_config()
  traced = []
  original = staged_method.train_step

  def counting(state, batch, *, config, stage):
    traced.append(stage.name)  # runs at trace time only
    return original(state, batch, config=config, stage=stage)

  staged_method.train_step = counting
  try:
    state = training.train_and_evaluate(config, tmp_path)
  finally:
    staged_method.train_step = original
  assert traced == ["warmup", "fit"] and int(state.step) == 15
  lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  logged = {line["step"]: line for line in lines if "train/phase" in line}
  # log_every=5, plus a flush at the stage boundary (step 7).
  assert sorted(logged) == [5, 7, 10, 15]
  for step, index, name in [(5, 0, "warmup"), (7, 0, "warmup"), (10, 1, "fit"), (15, 1, "fit")]:
    assert logged[step]["train/phase"] == index
    assert {k for k in logged[step] if k.endswith("/loss")} == {f"train/{name}/loss"}
  # Each stage stepped its own optimiser: 7 and 8 Adam updates.
  counts = {name: int(opt[0].count) for name, opt in state.opt_state.items()}
  assert counts == {"warmup": 7, "fit": 8}


def test_the_runs_length_is_the_stages_total(tmp_path):
  config = staged_method.get_config()
  config.warmup_steps, config.fit_steps = 2, 3
  state = training.train_and_evaluate(config, tmp_path)
  assert int(state.step) == 5
  assert "num_steps" not in config  # no second field that could disagree with the stages


def test_a_stage_without_steps_is_refused_naming_it(tmp_path):
  config = staged_method.get_config()
  config.fit_steps = 0
  with pytest.raises(ConfigError, match="stage 'fit' has 0 steps"):
    training.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def _stage(**changes) -> Stage:
  stage = Stage("fit", 3, fitting_method.train_step, ("params",), optax.adam(1e-3))
  return dataclasses.replace(stage, **changes)


class _Method:
  """A stand-in method module whose `stages` returns what a test gives it."""

  def __init__(self, stages):
    self._stages = stages

  def stages(self, config):
    del config
    return self._stages


def test_the_schedule_is_checked_in_one_place():
  config = fitting_method.get_config()
  stages = (_stage(name="a", steps=2), _stage(name="b", steps=5))
  assert schedule.method_stages(_Method(stages), config) == stages
  assert schedule.total_steps(stages) == 7
  assert [schedule.stage_at(stages, step) for step in range(8)] == [0, 0, 1, 1, 1, 1, 1, 1]
  with pytest.raises(ConfigError, match="no stage"):
    schedule.method_stages(_Method(()), config)
  with pytest.raises(TypeError, match="repeats a stage name"):
    schedule.method_stages(_Method((_stage(), _stage())), config)
  with pytest.raises(ConfigError, match="-1 steps"):
    schedule.method_stages(_Method((_stage(steps=-1),)), config)
  with pytest.raises(TypeError, match="names no module"):
    schedule.method_stages(_Method((_stage(modules=()),)), config)
  with pytest.raises(TypeError, match="Stage records"):
    schedule.method_stages(_Method((("fit", 3),)), config)
  state = fitting_method.create_state(
    config, jax.random.PRNGKey(0), fitting_method.create_dataset(config, "train")
  )
  with pytest.raises(TypeError, match=r"trains \['head'\]"):
    schedule.check_modules((_stage(modules=("head",)),), state, "test")


def test_init_optimizer_one_transformation_or_one_per_module():
  params = {"a": {"w": np.ones(3)}, "b": {"w": np.zeros(2)}}
  one = init_optimizer(_stage(modules=("a",)), params)
  assert one[0].mu["w"].shape == (3,)  # over the module's own tree
  both = init_optimizer(_stage(modules=("a", "b")), params)
  assert set(both[0].mu) == {"a", "b"}  # one state over {module: tree}
  per_module = {"a": optax.sgd(1.0), "b": optax.adam(1.0)}
  each = init_optimizer(_stage(modules=("a", "b"), optimizer=per_module), params)
  assert set(each) == {"a", "b"} and each["b"][0].mu["w"].shape == (2,)
  with pytest.raises(ValueError, match=r"modules \['a'\]"):
    init_optimizer(_stage(modules=("a",)), {"b": params["b"]})
