"""Shared conv blocks: spectral norm against numpy's SVD, gated and transposed convolutions
against lax.conv by hand, residual wiring, U-Net shapes, gradients and retracing."""

from __future__ import annotations

import functools

import chex
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from jax import lax

from jaxface.nets import layers


def _images(shape, seed=0) -> jax.Array:
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _conv(x, kernel, stride, pad):
  """Reference NHWC / HWIO convolution with PyTorch-style symmetric padding."""
  return lax.conv_general_dilated(
    x,
    kernel,
    (stride, stride),
    ((pad, pad), (pad, pad)),
    dimension_numbers=("NHWC", "HWIO", "NHWC"),
  )


def _output_shape(module, *args, **kwargs):
  return jax.eval_shape(
    lambda *a: module.init_with_output(jax.random.PRNGKey(0), *a, **kwargs)[0], *args
  )


def _randomise(variables, seed=1):
  """Non-zero biases and non-unit norm scales, so a test would notice a dropped one."""
  rng = np.random.default_rng(seed)
  flat = traverse_util.flatten_dict(flax.core.unfreeze(variables))
  for path, value in flat.items():
    if path[0] == "params" and path[-1] in ("bias", "scale"):
      flat[path] = jnp.asarray(rng.uniform(0.5, 1.5, value.shape), value.dtype)
  return traverse_util.unflatten_dict(flat)


def test_group_count_is_a_divisor_near_a_quarter():
  assert [layers.group_count(c) for c in (32, 96, 160, 512, 4, 6, 18, 1)] == [
    8,
    24,
    40,
    128,
    1,
    1,
    3,
    1,
  ]
  with pytest.raises(ValueError, match="positive"):
    layers.group_count(0)


def test_upsample_nearest_repeats_pixels():
  x = _images((2, 3, 4, 5))
  y = np.asarray(layers.upsample_nearest(x, (2, 3)))
  assert y.shape == (2, 6, 12, 5)
  rows, cols = np.meshgrid(np.arange(6), np.arange(12), indexing="ij")
  np.testing.assert_array_equal(y, np.asarray(x)[:, rows // 2, cols // 3])


@pytest.mark.parametrize(
  ("kernel", "stride", "pad", "transpose", "size", "expected"),
  [
    (7, 2, 3, False, (16, 12), (8, 6)),  # Table 3's first layer: 224 -> 112
    (3, 2, 1, False, (15, 9), (8, 5)),
    (4, 2, 1, False, (16, 10), (8, 5)),  # Table 6
    (1, 1, 0, False, (5, 7), (5, 7)),
    (4, 2, 1, True, (5, 3), (10, 6)),  # Table 5's SigGNDeconv
    (3, 1, 1, True, (5, 3), (5, 3)),
  ],
)
def test_spectral_conv_output_sizes_follow_pytorch(kernel, stride, pad, transpose, size, expected):
  module = layers.SpectralConv(6, kernel, stride, pad, transpose)
  out = _output_shape(module, jnp.zeros((2, *size, 3)), update_stats=False)
  assert out.shape == (2, *expected, 6)
  assert out.dtype == jnp.float32


def test_plain_conv_matches_lax_conv():
  module = layers.SpectralConv(5, 3, 2, 1, spectral=False)
  x = _images((2, 9, 8, 3))
  variables = _randomise(layers.host_init_variables(module, x, update_stats=False))
  assert "batch_stats" not in variables
  params = variables["params"]["conv"]
  expected = _conv(x, params["kernel"], 2, 1) + params["bias"]
  np.testing.assert_allclose(module.apply(variables, x, update_stats=False), expected, atol=1e-5)


@pytest.mark.parametrize(
  ("kernel", "stride", "padding", "size"),
  [(3, 2, "SAME", 16), (3, 2, "SAME", 15), (3, 1, "SAME", 8), (4, 2, 1, 16), (5, 3, "SAME", 11)],
)
def test_patch_conv_is_flax_conv_with_the_same_variables(kernel, stride, padding, size):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size + 1, 3))
  flax_padding = padding if padding == "SAME" else ((padding, padding),) * 2
  reference = nn.Conv(5, (kernel, kernel), (stride, stride), flax_padding)
  patch = layers.PatchConv(5, kernel, stride, padding)
  variables = reference.init(jax.random.PRNGKey(1), x)
  # The same variables, initial values included: checkpoints and seeds carry over.
  chex.assert_trees_all_equal(patch.init(jax.random.PRNGKey(1), x), variables)
  variables = jax.tree.map(lambda v: v + 0.1, variables)  # a non-zero bias too
  np.testing.assert_allclose(
    patch.apply(variables, x), reference.apply(variables, x), rtol=1e-5, atol=1e-5
  )

  # Second derivatives, which the gradient penalty takes, agree as well.
  def penalty(module, params):
    gradient = jax.grad(lambda x: jnp.sum(jnp.tanh(module.apply(params, x))))(x)
    return jnp.sum(gradient**2)

  chex.assert_trees_all_close(
    jax.grad(functools.partial(penalty, patch))(variables),
    jax.grad(functools.partial(penalty, reference))(variables),
    rtol=1e-4, atol=1e-5,
  )  # fmt: skip


def test_materialise_is_the_identity_bitwise_in_value_and_derivatives():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 7, 3)) * jnp.array([1e-30, 1.0, 1e30])
  x = x.at[0, 0, 0].set(jnp.array([0.0, -3.5, 7.25]))
  np.testing.assert_array_equal(jax.jit(layers.materialise)(x), x)
  weights = jax.random.normal(jax.random.PRNGKey(1), x.shape)
  loss = lambda f: lambda x: jnp.sum(weights * jnp.sin(f(x)))
  np.testing.assert_array_equal(
    jax.jit(jax.grad(loss(layers.materialise)))(x), jax.jit(jax.grad(loss(lambda x: x)))(x)
  )


def test_patch_conv_rejects_bad_padding_and_tiny_inputs():
  with pytest.raises(ValueError, match="padding must be"):
    layers.PatchConv(4, 3, padding="VALID").init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))
  with pytest.raises(ValueError, match="smaller than the kernel"):
    layers.PatchConv(4, 5, padding=0).init(jax.random.PRNGKey(0), jnp.zeros((1, 3, 3, 3)))


def test_transposed_conv_is_the_adjoint_of_the_pytorch_style_conv():
  """ConvTranspose2d(k, s, p) is the adjoint of Conv2d(k, s, p): same padding, same alignment."""
  kernel, stride, pad = 4, 2, 1
  module = layers.SpectralConv(
    5, kernel, stride, pad, transpose=True, spectral=False, use_bias=False
  )
  x = _images((2, 5, 6, 3))
  variables = layers.host_init_variables(module, x, update_stats=False)
  k = variables["params"]["conv"]["kernel"]  # (4, 4, 3, 5)
  y = module.apply(variables, x, update_stats=False)  # (2, 10, 12, 5)
  forward_kernel = jnp.swapaxes(k[::-1, ::-1], 2, 3)  # (4, 4, 5, 3), flax does not flip
  _, vjp = jax.vjp(lambda z: _conv(z, forward_kernel, stride, pad), jnp.zeros(y.shape))
  np.testing.assert_allclose(y, vjp(x)[0], atol=1e-5)


@pytest.mark.parametrize("transpose", [False, True])
def test_spectral_norm_divides_by_the_largest_singular_value(transpose):
  module = layers.SpectralConv(6, 3, 1, 1, transpose=transpose)
  x = _images((2, 6, 5, 4))
  variables = _randomise(layers.host_init_variables(module, x, update_stats=False))
  kernel = variables["params"]["conv"]["kernel"] * 7.0  # (3, 3, 4, 6), far from norm 1
  variables["params"]["conv"]["kernel"] = kernel
  sigma_true = np.linalg.svd(np.asarray(kernel).reshape(-1, 6), compute_uv=False)[0]

  @jax.jit
  def step(variables):
    y, updates = module.apply(variables, x, update_stats=True, mutable=["batch_stats"])
    return y, {"params": variables["params"], **updates}

  y, state = step(variables)
  first_sigma = float(jax.tree_util.tree_leaves(state["batch_stats"])[0])
  for _ in range(60):
    y, state = step(state)
  stats = state["batch_stats"]["spectral_norm"]
  sigma = float(stats["conv/kernel/sigma"])
  assert first_sigma <= sigma_true * (1 + 1e-5)  # power iteration approaches from below
  np.testing.assert_allclose(sigma, sigma_true, rtol=1e-4)
  normalised = np.asarray(kernel).reshape(-1, 6) / sigma
  assert np.linalg.svd(normalised, compute_uv=False)[0] <= 1 + 1e-4
  # The output is the plain layer's with the normalised kernel.
  plain = layers.SpectralConv(6, 3, 1, 1, transpose=transpose, spectral=False)
  plain_params = {"conv": dict(variables["params"]["conv"], kernel=kernel / sigma_true)}
  expected = plain.apply({"params": plain_params}, x, update_stats=False)
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_update_stats_false_leaves_the_state_alone():
  module = layers.ConvNormAct(4)
  x = _images((1, 6, 6, 3))
  variables = layers.host_init_variables(module, x, update_stats=False)
  _, frozen = module.apply(variables, x, update_stats=False, mutable=["batch_stats"])
  chex.assert_trees_all_equal(frozen["batch_stats"], variables["batch_stats"])
  _, moved = module.apply(variables, x, update_stats=True, mutable=["batch_stats"])
  u_before = variables["batch_stats"]["conv"]["spectral_norm"]["conv/kernel/u"]
  u_after = moved["batch_stats"]["conv"]["spectral_norm"]["conv/kernel/u"]
  assert float(jnp.abs(u_after - u_before).max()) > 1e-3
  np.testing.assert_allclose(jnp.linalg.norm(u_after), 1.0, rtol=1e-5)


def test_gated_conv_is_features_times_sigmoid_gate():
  module = layers.GatedConv(5, 3, 2, 1, spectral=False, activation=None, norm=False)
  x = _images((2, 8, 7, 3))
  variables = _randomise(layers.host_init_variables(module, x, update_stats=False))
  p = variables["params"]
  f = (
    _conv(x, p["features"]["conv"]["conv"]["kernel"], 2, 1) + p["features"]["conv"]["conv"]["bias"]
  )
  g = _conv(x, p["gate"]["conv"]["conv"]["kernel"], 2, 1) + p["gate"]["conv"]["conv"]["bias"]
  y = module.apply(variables, x, update_stats=False)
  assert y.shape == (2, 4, 4, 5)
  np.testing.assert_allclose(y, f * jax.nn.sigmoid(g), atol=1e-5)


def test_spectral_gated_conv_with_activation_by_hand():
  module = layers.GatedConv(4, 3, 1, 1, activation=jax.nn.elu, norm=False)
  x = _images((2, 6, 6, 3))
  variables = _randomise(layers.host_init_variables(module, x, update_stats=False))
  # With update_stats=True the stored sigma is the one this call divided by.
  y, updates = module.apply(variables, x, update_stats=True, mutable=["batch_stats"])

  def branch(name):
    conv = variables["params"][name]["conv"]["conv"]
    sigma = updates["batch_stats"][name]["conv"]["spectral_norm"]["conv/kernel/sigma"]
    return _conv(x, conv["kernel"] / sigma, 1, 1) + conv["bias"]

  np.testing.assert_allclose(
    y, jax.nn.elu(branch("features")) * jax.nn.sigmoid(branch("gate")), atol=1e-5
  )


def test_res_unit_adds_its_input():
  module = layers.ResUnit(6)
  x = _images((2, 5, 5, 6))
  variables = layers.host_init_variables(module, x, update_stats=False)
  assert "shortcut" not in variables["params"]  # same shape: identity shortcut
  # Silence the residual branch: what is left is elu(x).
  norm = variables["params"]["conv2"]["norm"]
  variables["params"]["conv2"]["norm"] = jax.tree_util.tree_map(jnp.zeros_like, norm)
  np.testing.assert_allclose(
    module.apply(variables, x, update_stats=False), jax.nn.elu(x), atol=1e-6
  )

  strided = layers.ResUnit(8, strides=2)
  shapes = jax.eval_shape(
    lambda a: strided.init(jax.random.PRNGKey(0), a, update_stats=False), jnp.zeros((2, 6, 4, 3))
  )
  assert shapes["params"]["shortcut"]["conv"]["conv"]["kernel"].shape == (1, 1, 3, 8)
  assert _output_shape(strided, jnp.zeros((2, 6, 4, 3)), update_stats=False).shape == (2, 3, 2, 8)


def test_gated_res_unit_sows_its_gate():
  module = layers.GatedResUnit(4, strides=2)
  x = _images((1, 8, 6, 3))
  variables = layers.host_init_variables(module, x, update_stats=False)
  y, state = module.apply(variables, x, update_stats=False, mutable=["intermediates"])
  (gate,) = state["intermediates"]["gates"]
  assert y.shape == gate.shape == (1, 4, 3, 4)
  assert float(gate.min()) > 0 and float(gate.max()) < 1


@pytest.mark.parametrize("size", [(8, 8), (16, 12)])
def test_down_and_up_blocks_shapes(size):
  h, w = size
  x = jnp.zeros((2, h, w, 3))
  assert _output_shape(layers.DownBlock(5), x, update_stats=False).shape == (2, h // 2, w // 2, 5)
  low, skip = jnp.zeros((2, h // 2, w // 2, 4)), jnp.zeros((2, h, w, 2))
  for block in (layers.UpBlock(6), layers.GatedUpBlock(6)):
    assert _output_shape(block, low, skip, update_stats=False).shape == (2, h, w, 6)
    assert _output_shape(block, low, update_stats=False).shape == (2, h, w, 6)
  with pytest.raises(ValueError, match="skip"):
    _output_shape(layers.UpBlock(6), low, jnp.zeros((2, h + 2, w, 2)), update_stats=False)


SMALL_UNET = dict(widths=(4, 8, 8), up_widths=(8, 4))


@pytest.mark.parametrize("size", [(8, 8), (16, 12)])
def test_unet_shapes(size):
  out = _output_shape(layers.UNet(3, **SMALL_UNET), jnp.zeros((2, *size, 2)), update_stats=False)
  assert out.shape == (2, *size, 3) and out.dtype == jnp.float32


def test_unet_rejects_bad_inputs():
  with pytest.raises(ValueError, match="divisible by 4"):
    _output_shape(layers.UNet(3, **SMALL_UNET), jnp.zeros((1, 10, 8, 2)), update_stats=False)
  with pytest.raises(ValueError, match="up_widths"):
    _output_shape(layers.UNet(3, (4, 8), (8, 4)), jnp.zeros((1, 8, 8, 2)), update_stats=False)
  with pytest.raises(ValueError, match=r"\(B, H, W, C\)"):
    _output_shape(layers.UNet(3, **SMALL_UNET), jnp.zeros((8, 8, 2)), update_stats=False)


def test_unet_gradients_finite_and_one_trace():
  module = layers.UNet(3, **SMALL_UNET)
  x = _images((2, 8, 8, 2))
  variables = layers.host_init_variables(module, x, update_stats=False)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def loss_and_grad(params, stats, x):
    def loss(params):
      y, updates = module.apply(
        {"params": params, "batch_stats": stats}, x, update_stats=True, mutable=["batch_stats"]
      )
      return jnp.mean(y**2), updates

    return jax.value_and_grad(loss, has_aux=True)(params)

  (value, updates), grads = loss_and_grad(variables["params"], variables["batch_stats"], x)
  (value2, _), _ = loss_and_grad(variables["params"], updates["batch_stats"], x + 1.0)
  assert np.isfinite(float(value)) and np.isfinite(float(value2)) and float(value) != float(value2)
  leaves = jax.tree_util.tree_leaves(grads)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
  assert sum(float(jnp.abs(g).sum()) > 0 for g in leaves) > len(leaves) // 2


def test_host_init_matches_the_structure_of_init():
  module = layers.GatedResUnit(4, strides=2)
  x = jnp.zeros((1, 8, 8, 3))
  expected = jax.eval_shape(lambda a: module.init(jax.random.PRNGKey(0), a, update_stats=False), x)
  variables = layers.host_init_variables(module, x, update_stats=False)
  chex.assert_trees_all_equal_shapes_and_dtypes(variables, expected)
  flat = traverse_util.flatten_dict(variables)
  for path, value in flat.items():
    if path[-1] == "scale" or path[-1].endswith("/sigma"):
      np.testing.assert_array_equal(value, 1.0)
    if path[-1] == "bias":
      np.testing.assert_array_equal(value, 0.0)
  kernel = variables["params"]["features"]["conv1"]["conv"]["conv"]["kernel"]  # (3, 3, 3, 4)
  assert 0.1 < float(jnp.std(kernel)) * np.sqrt(27) < 2.0


def test_host_init_gives_batch_norm_the_statistics_flax_starts_from():
  class ConvBN(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
      x = nn.Conv(4, (3, 3))(x)
      return nn.BatchNorm(use_running_average=not train)(x)

  x = jnp.zeros((2, 8, 8, 3))
  expected = ConvBN().init(jax.random.PRNGKey(0), x, train=False)
  variables = layers.host_init_variables(ConvBN(), x, train=False)
  chex.assert_trees_all_equal_shapes_and_dtypes(variables, expected)
  chex.assert_trees_all_equal(variables["batch_stats"], expected["batch_stats"])  # mean 0, var 1
  np.testing.assert_array_equal(variables["params"]["BatchNorm_0"]["scale"], 1.0)


def test_check_image_names_the_array_and_the_shape_it_wants():
  layers.check_image(jnp.zeros((2, 8, 8, 3)), "images", channels=3)
  layers.check_image(jnp.zeros((8, 8, 1)), "albedo", batched=False)
  layers.check_image(jnp.zeros((2, 5, 8, 8, 1)), "albedo", batched=False)
  with pytest.raises(ValueError, match=r"images must have shape \(B, H, W, C\), got \(8, 8, 3\)"):
    layers.check_image(jnp.zeros((8, 8, 3)), "images")
  with pytest.raises(ValueError, match=r"albedo must have shape \(B, H, W, 3\)"):
    layers.check_image(jnp.zeros((2, 8, 8, 4)), "albedo", channels=3)
  with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., H, W, C\), got \(8, 8\)"):
    layers.check_image(jnp.zeros((8, 8)), batched=False)
