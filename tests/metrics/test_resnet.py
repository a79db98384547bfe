"""ResNet-18 with GroupNorm (the decoupling embedders): shapes, parameter count, statelessness."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxface.nets import ResNet18, host_init, norm_groups

#: torchvision.models.resnet18().parameters(), 1000-way head (BatchNorm affine = GroupNorm affine).
TORCHVISION_RESNET18_PARAMETERS = 11_689_512


def count(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def formula_count(width: float, num_outputs: int, channels_in: int = 3) -> int:
  """Independent count: convolutions without bias, 2 C per norm layer, dense head."""
  c = [max(1, round(k * width)) for k in (64, 128, 256, 512)]
  total = 7 * 7 * channels_in * c[0] + 2 * c[0]  # stem conv + norm
  previous = c[0]
  for stage, channels in enumerate(c):
    for block in range(2):
      total += 9 * previous * channels + 2 * channels  # conv1 + norm1
      total += 9 * channels * channels + 2 * channels  # conv2 + norm2
      if stage > 0 and block == 0:
        total += previous * channels + 2 * channels  # 1x1 projection + norm
      previous = channels
  return total + previous * num_outputs + num_outputs


@pytest.mark.parametrize("width", [1.0, 0.5, 0.125])
def test_parameter_count(width):
  params = jax.eval_shape(
    ResNet18(1000, width).init, jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))
  )
  assert count(params) == formula_count(width, 1000)
  if width == 1.0:
    assert count(params) == TORCHVISION_RESNET18_PARAMETERS


def test_output_shape_and_batch_independence():
  net = ResNet18(num_outputs=10, width=0.125)
  images = jnp.asarray(np.random.default_rng(0).uniform(size=(3, 32, 32, 3)), jnp.float32)
  params = host_init(net, images[:1], seed=1)
  apply = jax.jit(lambda x: net.apply({"params": params}, x))
  out = apply(images)
  assert out.shape == (3, 10)
  assert np.all(np.isfinite(out)) and np.std(np.asarray(out)) > 0
  # GroupNorm, no batch statistics: an image's output ignores the rest of its batch.
  shuffled = apply(images[::-1])
  np.testing.assert_allclose(shuffled[::-1], out, rtol=1e-4, atol=1e-5)
  mixed = apply(images.at[0].set(1.0 - images[0]))
  np.testing.assert_allclose(mixed[1:], out[1:], rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match="images must have shape"):
    net.apply({"params": params}, images[0])


def test_host_init_matches_flax_structure_and_scale():
  net = ResNet18(num_outputs=4, width=0.25)
  x = jnp.zeros((1, 32, 32, 3))
  params = host_init(net, x, seed=0)
  shapes = jax.eval_shape(net.init, jax.random.PRNGKey(0), x)["params"]
  assert jax.tree.structure(params) == jax.tree.structure(shapes)
  assert jax.tree.map(lambda a: a.shape, params) == jax.tree.map(lambda a: a.shape, shapes)
  kernel = np.asarray(params["stage3_0"]["Conv_0"]["kernel"])  # (3, 3, 64, 128)
  np.testing.assert_allclose(kernel.std(), 1 / np.sqrt(3 * 3 * 64), rtol=0.05)
  np.testing.assert_array_equal(params["head"]["bias"], 0.0)
  np.testing.assert_array_equal(params["stem_norm"]["scale"], 1.0)


def test_norm_groups():
  assert [norm_groups(c) for c in (64, 128, 256, 512)] == [8, 16, 32, 32]
  assert [norm_groups(c) for c in (8, 16, 32, 64)] == [1, 2, 4, 8]
  assert norm_groups(48) == 2 and 48 % norm_groups(48) == 0
