"""Smoke configs of 3DFaceFill whose synthetic data live in a per-session temporary folder."""

from __future__ import annotations

import pytest

from configs import facefill as facefill_config
from tests.helpers import override


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
