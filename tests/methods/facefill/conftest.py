"""Smoke configs, data and an untrained state of 3DFaceFill; the data live in a per-session
temporary folder."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from configs import facefill as facefill_config
from jaxface.methods import facefill
from tests.helpers import override, smoke_setup


@pytest.fixture(scope="session")
def facefill_data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("facefill_data")


@pytest.fixture(scope="session")
def make_config(facefill_data_dir):
  """make_config("smoke,stage=...", **{"facefill.field": value}) -> a ConfigDict."""

  def make(arg: str = "smoke", **overrides):
    config = facefill_config.get_config(arg)
    config.data.data_dir = str(facefill_data_dir)
    return override(config, overrides)

  return make


@pytest.fixture(scope="session")
def smoke(make_config):
  """(the smoke config as the trainer passes it, its training set, a pipeline over it)."""
  return smoke_setup(facefill, make_config())


@pytest.fixture(scope="session")
def state(smoke):
  """An untrained stage=all state: every module present, one optimiser state per stage."""
  config, dataset, _ = smoke
  return facefill.create_state(config, jax.random.PRNGKey(0), dataset)


@pytest.fixture(scope="session")
def eval_batch(smoke):
  """An evaluation batch of eval images as numpy (as `evaluate` passes them)."""
  config, _, _ = smoke
  return facefill.create_dataset(config, "eval").read(np.arange(config.facefill.eval.batch_size))
