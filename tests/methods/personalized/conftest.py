"""Smoke configs, data and an untrained state of personalized; the data live in a per-session
temporary folder."""

from __future__ import annotations

import jax
import pytest

from configs import personalized as personalized_config
from jaxface.methods import personalized
from tests.helpers import override, smoke_setup


@pytest.fixture(scope="session")
def personalized_data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("personalized_data")


@pytest.fixture(scope="session")
def make_config(personalized_data_dir):
  """make_config("smoke,ablation=...", **{"personalized.field": value}) -> a ConfigDict."""

  def make(arg: str = "smoke", **overrides):
    config = personalized_config.get_config(arg)
    config.data.data_dir = str(personalized_data_dir)
    return override(config, overrides)

  return make


@pytest.fixture(scope="session")
def smoke(make_config):
  """(the smoke config as the trainer passes it, its training users, a pipeline over them)."""
  return smoke_setup(personalized, make_config())


@pytest.fixture(scope="session")
def state(smoke):
  """An untrained stage=all state."""
  config, dataset, _ = smoke
  return personalized.create_state(config, jax.random.PRNGKey(0), dataset)
