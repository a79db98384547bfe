"""Checkpoints the trainer can trust: a damaged newest checkpoint costs one warning, not the run;
warm starts take modules from other runs and are never read again on resume; `load_run`."""

from __future__ import annotations

import json
import logging
import pathlib
import shutil

import chex
import jax
import numpy as np
import pytest

from jaxface import training
from jaxface.errors import CheckpointError, ConfigError, NotFoundError
from jaxface.training import checkpoints
from tests.training import fitting_method


def _losses(workdir) -> dict[int, float]:
  """step -> train/loss, the last write of each step winning."""
  lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
  return {r["step"]: r["train/loss"] for r in map(json.loads, lines) if "train/loss" in r}


def damage(checkpoint: pathlib.Path) -> None:
  """Overwrites every array data file of an orbax checkpoint with half as many zero bytes."""
  files = [p for p in checkpoint.rglob("*") if p.is_file() and p.parent.name == "d"]
  assert files, f"no array files under {checkpoint}"
  for path in files:
    path.write_bytes(b"\0" * (path.stat().st_size // 2))


def _config(**fields):
  config = fitting_method.get_config()
  config.update(dict(log_every=1, eval_every=0, summary_every=0, **fields))
  return config


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """30 uninterrupted steps, logged at every step."""
  workdir = tmp_path_factory.mktemp("reference")
  training.train_and_evaluate(_config(num_steps=30), workdir)
  return _losses(workdir)


def test_a_damaged_newest_checkpoint_is_moved_aside_and_the_run_resumes_before_it(
  tmp_path, reference, caplog
):
  workdir = tmp_path / "run"
  training.train_and_evaluate(_config(num_steps=20, checkpoint_every=10), workdir)
  damage(workdir / "checkpoints" / "20")
  with caplog.at_level(logging.WARNING, logger="jaxface"):
    state = training.train_and_evaluate(_config(num_steps=30, checkpoint_every=10), workdir)
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert len(warnings) == 1 and "checkpoint 20" in warnings[0] and "using step 10" in warnings[0]
  assert (workdir / "damaged_checkpoints" / "20").is_dir()  # kept, never deleted
  assert int(state.step) == 30
  resumed = _losses(workdir)
  for step in range(11, 31):  # steps 11-20 trained again from step 10, exactly as before
    assert resumed[step] == reference[step], step


def test_evaluate_without_a_step_uses_the_newest_checkpoint_that_restores(tmp_path, caplog):
  workdir = tmp_path / "run"
  config = _config(num_steps=20, checkpoint_every=10)
  training.train_and_evaluate(config, workdir)
  damage(workdir / "checkpoints" / "20")
  with caplog.at_level(logging.WARNING, logger="jaxface"):
    metrics = training.evaluate(config, workdir)
  assert np.isfinite(metrics["eval/coefficient_rmse"])
  assert any("checkpoint 20" in r.getMessage() for r in caplog.records)
  assert (workdir / "damaged_checkpoints" / "20").is_dir()
  evaluated = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
  assert evaluated["step"] == 10
  with pytest.raises(NotFoundError, match=r"checkpoints/20 not found; the run has steps \[10\]"):
    training.evaluate(config, workdir, step=20)


def test_when_no_checkpoint_restores_one_error_lists_them_and_nothing_moves(tmp_path):
  workdir = tmp_path / "run"
  config = _config(num_steps=20, checkpoint_every=10)
  training.train_and_evaluate(config, workdir)
  for step in (10, 20):
    damage(workdir / "checkpoints" / str(step))
  with pytest.raises(CheckpointError, match=r"no checkpoint in .* restores \(step 20: .*step 10: "):
    training.train_and_evaluate(config, workdir)
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["10", "20"]
  assert not (workdir / "damaged_checkpoints").exists()


def test_warm_start_takes_modules_and_a_resumed_run_never_reads_its_source(tmp_path):
  source = tmp_path / "source"
  training.train_and_evaluate(_config(num_steps=10), source)
  config = _config(num_steps=6, checkpoint_every=3)
  config.warm_start.regressor.workdir = str(source)
  config.warm_start.regressor.step = 10
  warm = training.train_and_evaluate(config, tmp_path / "warm")
  training.train_and_evaluate(_config(num_steps=6, checkpoint_every=3), tmp_path / "fresh")
  trained = training.load_run(source)
  assert int(warm.step) == 6  # a warm start takes modules, not the step or the optimiser
  # The warm run began at the source's weights: its first loss is the source's level, not init's.
  warm_losses, fresh_losses = _losses(tmp_path / "warm"), _losses(tmp_path / "fresh")
  assert warm_losses[1] < fresh_losses[1]
  first = fitting_method.create_state(
    config, jax.random.PRNGKey(config.seed), fitting_method.create_dataset(config, "train")
  )
  start = checkpoints.take_modules(first, config.warm_start.regressor, "warm_start.regressor")
  chex.assert_trees_all_equal(start.params, jax.device_get(trained.state.params))
  chex.assert_trees_all_equal(start.opt_state, first.opt_state)

  # Resuming needs only the run's own checkpoint: delete the source and continue.
  shutil.rmtree(source)
  config.num_steps = 9
  resumed = training.train_and_evaluate(config, tmp_path / "warm")
  assert int(resumed.step) == 9
  # A fresh run naming the deleted source is refused before anything is made.
  with pytest.raises(NotFoundError, match=r"config\.warm_start\.regressor\.workdir"):
    training.train_and_evaluate(config, tmp_path / "another")
  assert not (tmp_path / "another").exists()


def test_warm_start_errors_name_the_field(tmp_path):
  source = tmp_path / "source"
  training.train_and_evaluate(_config(num_steps=3), source)
  config = _config(num_steps=3)
  config.warm_start.regressor.workdir = str(source)
  config.warm_start.regressor.step = 7
  with pytest.raises(NotFoundError, match=r"warm_start.regressor.step=7: .* has steps \[3\]"):
    training.train_and_evaluate(config, tmp_path / "a")
  config.warm_start.regressor.step = -1
  config.warm_start.regressor.modules = ("head",)
  with pytest.raises(ConfigError, match=r"warm_start\.regressor: .* no module 'head'"):
    training.train_and_evaluate(config, tmp_path / "b")
  config.warm_start.regressor.modules = ("params",)
  config.hidden = 32  # the source's regressor is 64 wide
  with pytest.raises(ConfigError, match=r"warm_start.regressor: the params .* does not match"):
    training.train_and_evaluate(config, tmp_path / "c")


def test_load_run_reads_config_method_and_the_newest_checkpoint(tmp_path):
  workdir = tmp_path / "run"
  training.train_and_evaluate(_config(num_steps=10, checkpoint_every=5), workdir)
  run = training.load_run(workdir)
  assert run.step == 10 and run.method is fitting_method and run.config.num_steps == 10
  assert int(run.state.step) == 10
  assert training.load_run(workdir, step=5).step == 5
  with pytest.raises(ConfigError, match=r"is a 'tests\.training\.fitting_method' run, not a"):
    training.load_run(workdir, method="facefill")
  with pytest.raises(NotFoundError, match="not a training run's folder"):
    training.load_run(tmp_path)
  with pytest.raises(NotFoundError, match=r"run folder .*missing not found"):
    training.load_run(tmp_path / "missing")
