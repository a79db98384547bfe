"""Config checks with one clear error, the stage records, the state, and one compilation per
stage step."""

from __future__ import annotations

import functools

import chex
import jax
import ml_collections
import pytest

from jaxface.errors import ConfigError
from jaxface.methods import multiview_depth
from jaxface.methods.multiview_depth import method


@pytest.mark.parametrize(
  ("overrides", "field"),
  [
    ({"multiview.stage": "nope"}, "multiview.stage"),
    ({"multiview.photo_loss": "l2"}, "multiview.photo_loss"),
    ({"multiview.depth_a": 0.0}, "multiview.depth_a"),
    ({"multiview.lambda_3dmm": -1.0}, "multiview.lambda_3dmm"),
    ({"data.image_size": 30}, "data.image_size"),
    ({"data.num_real": 0}, "use_real"),
  ],
)
def test_bad_config_fields_are_named(make_config, overrides, field):
  with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
    multiview_depth.stages(make_config(**overrides))


def test_unknown_variants_and_ablations_are_refused():
  from configs import multiview_depth as config_module

  with pytest.raises(ConfigError, match="ablation"):
    config_module.get_config("smoke,ablation=no_depth")
  with pytest.raises(ConfigError, match="variant"):
    config_module.get_config("tiny")


def test_stages_and_the_warm_start_rule(make_config):
  names = [(s.name, s.modules) for s in multiview_depth.stages(make_config())]
  assert names == [("3dmm", ("three_dmm",)), ("depth", ("depth", "suitability"))]
  no_suitability = multiview_depth.stages(make_config("smoke,ablation=no_suitability"))
  assert no_suitability[-1].modules == ("depth",)
  with pytest.raises(ConfigError, match=r"warm_start\.three_dmm"):
    multiview_depth.stages(make_config("smoke,stage=depth"))
  config = make_config("smoke,stage=depth", **{"warm_start.three_dmm.workdir": "/somewhere"})
  assert [s.name for s in multiview_depth.stages(config)] == ["depth"]


def test_state_holds_the_fitted_model_and_one_optimiser_state_per_stage(state, smoke):
  config, dataset, _ = smoke
  assert set(state.opt_state) == set(method.STAGES)
  assert state.arrays.identity_basis.shape[0] == config.multiview.num_identity
  assert state.arrays.expression_basis.shape[0] == config.multiview.num_expression
  batch = dataset[0]
  assert batch["syn_image"].shape == (2, 32, 32, 3) and batch["real_image"].shape == (2, 32, 32, 3)
  assert batch["syn_identity"].shape == (config.multiview.num_identity,)


def test_no_multiview_drops_the_real_pairs(make_config):
  frozen = ml_collections.FrozenConfigDict(make_config("smoke,ablation=no_multiview"))
  example = multiview_depth.create_dataset(frozen, "train")[0]
  assert not any(key.startswith("real_") for key in example)


def test_each_stage_step_compiles_once(smoke, state):
  config, _, pipeline = smoke
  for stage in multiview_depth.stages(config):
    step = chex.assert_max_traces(stage.step, n=1)
    jitted = jax.jit(functools.partial(step, config=config, stage=stage))
    current = state
    for index in range(2):
      current, _ = jitted(current, pipeline.local_batch(index))
    assert int(current.step) == int(state.step) + 2
    chex.clear_trace_counter()
