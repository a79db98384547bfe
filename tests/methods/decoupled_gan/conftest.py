"""Smoke configs of the decoupled GAN whose data live in a per-session temporary folder."""

from __future__ import annotations

import pytest

from configs import decoupled_gan as gan_config
from tests.helpers import override


@pytest.fixture(scope="session")
def gan_data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("gan_data")


@pytest.fixture(scope="session")
def make_config(gan_data_dir):
  """make_config("smoke,ablation=...", **{"gan.field": value}) -> a ConfigDict."""

  def make(arg: str = "smoke", **overrides):
    config = gan_config.get_config(arg)
    config.data.data_dir = str(gan_data_dir)
    config.evaluation.embedder_dir = str(gan_data_dir / "embedders")
    override(config, overrides)
    return config

  return make
