"""Smoke configs, data and an untrained state of multiview_depth; the data live in a per-session
temporary folder."""

from __future__ import annotations

import jax
import pytest

from configs import multiview_depth as multiview_config
from jaxface.methods import multiview_depth
from tests.helpers import override, smoke_setup


@pytest.fixture(scope="session")
def multiview_data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("multiview_data")


@pytest.fixture(scope="session")
def make_config(multiview_data_dir):
  """make_config("smoke,ablation=...", **{"multiview.field": value}) -> a ConfigDict."""

  def make(arg: str = "smoke", **overrides):
    config = multiview_config.get_config(arg)
    config.data.data_dir = str(multiview_data_dir)
    return override(config, overrides)

  return make


@pytest.fixture(scope="session")
def smoke(make_config):
  """(the smoke config as the trainer passes it, its training pairs, a pipeline over them)."""
  return smoke_setup(multiview_depth, make_config())


@pytest.fixture(scope="session")
def state(smoke):
  """An untrained stage=all state."""
  config, dataset, _ = smoke
  return multiview_depth.create_state(config, jax.random.PRNGKey(0), dataset)
