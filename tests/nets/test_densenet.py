"""DenseNet-BC: channel bookkeeping by the paper's formula, dense connectivity, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from jaxface.nets import DenseNet, host_init_variables


def _channels(blocks, growth, stem, compression=0.5):
  channels = stem
  for index, layers in enumerate(blocks):
    channels += layers * growth
    if index < len(blocks) - 1:
      channels = int(channels * compression)
  return channels


@pytest.mark.parametrize(("blocks", "growth", "stem"), [((2, 3), 4, 8), ((1, 2, 2), 6, 12)])
def test_output_width_follows_the_densenet_formula(blocks, growth, stem):
  model = DenseNet(blocks, growth, stem)
  images = jnp.zeros((2, 32, 32, 3))
  variables = host_init_variables(model, images)
  out = model.apply(variables, images)
  assert out.shape == (2, _channels(blocks, growth, stem))


def test_every_layer_sees_every_earlier_feature():
  # The first block's second layer reads the stem's features directly (dense connectivity):
  # its input width is stem + growth.
  model = DenseNet((2,), 4, 8)
  variables = host_init_variables(model, jnp.zeros((1, 16, 16, 3)))
  kernel = variables["params"]["block0_layer1"]["conv1"]["kernel"]
  assert kernel.shape[2] == 8 + 4


def test_rejects_images_smaller_than_its_downsampling():
  model = DenseNet((1, 1, 1), 4, 8)
  with pytest.raises(ValueError, match="at least 8 px"):
    jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x), jnp.zeros((1, 4, 4, 3)))
  with pytest.raises(ValueError, match="shape"):
    jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x), jnp.zeros((4, 4, 3)))
