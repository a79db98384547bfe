"""3DFaceFill's networks: shapes for two sizes, parameter counts against the supplement's
tables, output ranges, the Sym-UNet's exact mirror equivariance, gradients, retracing."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxface.methods.facefill import model
from jaxface.nets.layers import host_init_variables

TINY = 1 / 16  # width multiplier: 2 to 32 channels instead of 32 to 512
SIZES = [(32, 32), (64, 96)]


def _images(shape, seed=0, low=0.0, high=1.0) -> jax.Array:
  return jnp.asarray(np.random.default_rng(seed).uniform(low, high, shape), jnp.float32)


def _shapes(module, *args, **kwargs):
  """Output shapes and dtypes, traced only (no compilation)."""
  return jax.eval_shape(
    lambda *a: module.init_with_output(jax.random.PRNGKey(0), *a, update_stats=False, **kwargs)[0],
    *args,
  )


def _count(module, *args) -> int:
  shapes = jax.eval_shape(
    lambda *a: module.init(jax.random.PRNGKey(0), *a, update_stats=False), *args
  )
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes["params"]))


def _all_finite(tree) -> bool:
  return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(tree))


def test_parameter_counts_at_the_paper_sizes():
  """Tables 3-7 give 17.4M, 5.54M, 11.xM (digits lost in the text), 2.79M and 7.18M."""
  f32 = jnp.float32
  image = jax.ShapeDtypeStruct((1, 224, 224, 3), f32)
  uv = jax.ShapeDtypeStruct((1, 192, 256, 3), f32)
  mask = jax.ShapeDtypeStruct((1, 192, 256, 1), f32)
  encoder = _count(model.Encoder(), image)
  decoder = _count(model.AlbedoDecoder(), jax.ShapeDtypeStruct((1, 512), f32))
  inpainter = _count(model.SymUNet(), uv, mask)
  discriminator = _count(model.PyramidDiscriminator(), image)
  segmenter = _count(model.Segmenter(), image)
  assert round(encoder / 1e5) == 174
  assert round(decoder / 1e4) == 554
  assert 11e6 <= inpainter < 12e6
  assert round(discriminator / 1e4) == 279
  # Table 7 as written (stride-2 ResUnits, nearest upsampling) has 6.70M; its 7.18M
  # matches the public code's max-pool / 2x2-transposed-conv variant instead.
  assert segmenter == 6_702_339
  assert _count(model.SymUNet(symmetry="branch"), uv, mask) == inpainter  # same weights


ENCODER = dict(num_identity=5, num_expression=3, feature_dim=8, width=TINY)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("translation_dims", [2, 3])
def test_encoder_shapes(size, translation_dims):
  encoder = model.Encoder(translation_dims=translation_dims, **ENCODER)
  out = _shapes(encoder, jnp.zeros((2, *size, 3)))
  expected = dict(
    scale=(2,),
    translation=(2, translation_dims),
    rotation=(2, 4),
    illumination=(2, 27),
    identity=(2, 5),
    expression=(2, 3),
    albedo_features=(2, 8),
  )
  assert {k: v.shape for k, v in out._asdict().items()} == expected
  assert all(v.dtype == jnp.float32 for v in out)


def test_encoder_outputs_and_one_trace():
  encoder = model.Encoder(**ENCODER)
  images = _images((3, 32, 32, 3))
  variables = host_init_variables(encoder, images, update_stats=False)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def run(variables, images):
    return encoder.apply(variables, images, update_stats=False)

  factors = run(variables, images)
  other = run(variables, images[::-1])
  np.testing.assert_allclose(jnp.linalg.norm(factors.rotation, axis=-1), 1.0, rtol=1e-5)
  assert bool(jnp.all((factors.scale > 0) & (factors.scale < encoder.max_scale)))
  assert bool(jnp.all(jnp.abs(factors.translation) <= 1))
  assert _all_finite(factors)
  np.testing.assert_allclose(other.identity, factors.identity[::-1], rtol=1e-4, atol=1e-5)
  assert float(jnp.abs(factors.identity[0] - factors.identity[1]).max()) > 1e-6


def test_encoder_rejects_bad_settings():
  with pytest.raises(ValueError, match="translation_dims"):
    _shapes(model.Encoder(translation_dims=4, width=TINY), jnp.zeros((1, 32, 32, 3)))
  with pytest.raises(ValueError, match="coefficient"):
    _shapes(model.Encoder(num_identity=0, num_expression=0, width=TINY), jnp.zeros((1, 32, 32, 3)))
  with pytest.raises(ValueError, match=r"\(B, H, W, C\)"):
    _shapes(model.Encoder(width=TINY), jnp.zeros((32, 32, 3)))


@pytest.mark.parametrize("uv_size", [(64, 64), (128, 128), (192, 256)])
def test_albedo_decoder_shapes(uv_size):
  decoder = model.AlbedoDecoder(uv_size=uv_size, width=TINY)
  out = _shapes(decoder, jnp.zeros((2, 16)))
  assert out.shape == (2, *uv_size, 3) and out.dtype == jnp.float32


@pytest.mark.slow
def test_albedo_decoder_values_and_gradients():
  decoder = model.AlbedoDecoder(uv_size=(32, 48), upsamplings=4, width=TINY)
  features = _images((2, 16), low=-1.0)
  variables = host_init_variables(decoder, features, update_stats=False)

  @jax.jit
  def loss_and_grad(params, features):
    def loss(params):
      albedo, _ = decoder.apply(
        {"params": params, "batch_stats": variables["batch_stats"]},
        features,
        update_stats=True,
        mutable=["batch_stats"],
      )
      return jnp.mean((albedo - 0.5) ** 2), albedo

    return jax.value_and_grad(loss, has_aux=True)(params)

  (_, albedo), grads = loss_and_grad(variables["params"], features)
  assert albedo.shape == (2, 32, 48, 3)
  assert bool(jnp.all((albedo >= 0) & (albedo <= 1)))
  assert float(jnp.std(albedo)) > 1e-4  # not a constant map
  assert _all_finite(grads)
  assert float(jnp.abs(grads["stage0_0"]["conv"]["conv"]["kernel"]).sum()) > 0


def test_albedo_decoder_rejects_bad_sizes():
  with pytest.raises(ValueError, match="multiples of 64"):
    _shapes(model.AlbedoDecoder(uv_size=(96, 64), width=TINY), jnp.zeros((1, 8)))
  with pytest.raises(ValueError, match="upsamplings"):
    _shapes(model.AlbedoDecoder(upsamplings=7, width=TINY), jnp.zeros((1, 8)))
  with pytest.raises(ValueError, match=r"\(B, F\)"):
    _shapes(model.AlbedoDecoder(width=TINY), jnp.zeros((1, 1, 8)))


SYM_WIDTH = 1 / 8  # 4 to 64 channels


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("symmetry", model.SYMMETRY_MODES)
def test_sym_unet_shapes(size, symmetry):
  net = model.SymUNet(symmetry=symmetry, width=SYM_WIDTH)
  albedo, log_variance = _shapes(net, jnp.zeros((2, *size, 3)), jnp.zeros((2, *size)))
  assert albedo.shape == (2, *size, 3) and log_variance.shape == (2, *size, 1)
  assert albedo.dtype == log_variance.dtype == jnp.float32


def test_sym_unet_rejects_bad_inputs():
  net = model.SymUNet(width=SYM_WIDTH)
  with pytest.raises(ValueError, match="divisible by 32"):
    _shapes(net, jnp.zeros((1, 48, 32, 3)), jnp.zeros((1, 48, 32, 1)))
  with pytest.raises(ValueError, match="mask"):
    _shapes(net, jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 32, 32, 2)))
  with pytest.raises(ValueError, match="albedo"):
    _shapes(net, jnp.zeros((1, 32, 32, 4)), jnp.zeros((1, 32, 32, 1)))
  with pytest.raises(ValueError, match="symmetry"):
    _shapes(model.SymUNet(symmetry="mirror"), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 32, 32)))


def _symmetric_case(batch=2, size=(32, 32), seed=0):
  """Random albedo and a random mask equal to its own mirror image."""
  rng = np.random.default_rng(seed)
  albedo = jnp.asarray(rng.uniform(size=(batch, *size, 3)), jnp.float32)
  half = rng.uniform(size=(batch, size[0], size[1] // 2, 1)) > 0.4
  mask = jnp.asarray(np.concatenate([half, half[:, :, ::-1]], axis=2), jnp.float32)
  np.testing.assert_array_equal(mask, model.hflip(mask))
  return albedo, mask


@pytest.fixture(scope="module")
def sym_unet():
  """An exact-mode Sym-UNet, its variables, and a jitted apply that may trace only once."""
  net = model.SymUNet(width=SYM_WIDTH)
  albedo, mask = _symmetric_case()
  variables = host_init_variables(net, albedo, mask, update_stats=False)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def run(variables, albedo, mask):
    return net.apply(variables, albedo, mask, update_stats=False)

  return net, variables, run


def test_sym_unet_mirrored_input_gives_mirrored_completion(sym_unet):
  _, variables, run = sym_unet
  albedo, mask = _symmetric_case()
  completed, log_variance = run(variables, albedo, mask)
  mirrored, mirrored_log_variance = run(variables, model.hflip(albedo), mask)
  # Equal up to the convolutions' summation order: 1.2e-6 on an AVX2-only AMD EPYC, while a
  # broken equivariance moves outputs by more than the 1e-4 asymmetry asserted below.
  np.testing.assert_allclose(mirrored, model.hflip(completed), atol=1e-5)
  np.testing.assert_allclose(mirrored_log_variance, model.hflip(log_variance), atol=1e-5)
  # Not trivially symmetric outputs, and finite values in range.
  assert float(jnp.abs(completed - model.hflip(completed)).max()) > 1e-4
  assert bool(jnp.all((completed >= 0) & (completed <= 1))) and _all_finite(log_variance)


@pytest.mark.slow
def test_sym_unet_equivariance_holds_while_updating_spectral_norm(sym_unet):
  """Both halves of the [X, hflip(X)] batch see the same power-iteration step."""
  net, variables, _ = sym_unet
  albedo, mask = _symmetric_case(seed=1)

  @jax.jit
  def train_apply(albedo):
    return net.apply(variables, albedo, mask, update_stats=True, mutable=["batch_stats"])

  (completed, _), updates = train_apply(albedo)
  (mirrored, _), _ = train_apply(model.hflip(albedo))
  np.testing.assert_allclose(mirrored, model.hflip(completed), atol=1e-6)
  changed = jax.tree_util.tree_map(
    lambda a, b: float(jnp.abs(a - b).max()), updates["batch_stats"], variables["batch_stats"]
  )
  assert max(jax.tree_util.tree_leaves(changed)) > 1e-4


def test_sym_unet_ignores_albedo_outside_the_mask(sym_unet):
  _, variables, run = sym_unet
  albedo, mask = _symmetric_case(seed=2)
  noise = _images(albedo.shape, seed=3)
  completed, _ = run(variables, albedo, mask)
  altered, _ = run(variables, albedo * mask + noise * (1 - mask), mask)
  np.testing.assert_allclose(altered, completed, atol=1e-6)
  other, _ = run(variables, albedo * (1 - mask) + noise * mask, mask)
  assert float(jnp.abs(other - completed).max()) > 1e-4  # visible pixels do matter


@pytest.mark.parametrize("symmetry", ["branch", "none"])
def test_single_pass_variants_are_not_exactly_equivariant(symmetry):
  """The check above can fail: the paper's single pass is not mirror-equivariant by design."""
  net = model.SymUNet(symmetry=symmetry, width=SYM_WIDTH)
  albedo, mask = _symmetric_case(batch=1)
  variables = host_init_variables(net, albedo, mask, update_stats=False)
  run = jax.jit(lambda v, a: net.apply(v, a, mask, update_stats=False)[0])
  completed, mirrored = run(variables, albedo), run(variables, model.hflip(albedo))
  assert float(jnp.abs(mirrored - model.hflip(completed)).max()) > 1e-4
  if symmetry == "none":
    assert "down0_flipped" not in variables["params"]
    assert variables["params"]["down0"]["gate"]["conv"]["conv"]["kernel"].shape[-1] == 8


@pytest.mark.slow
def test_sym_unet_gradients_finite(sym_unet):
  net, variables, _ = sym_unet
  albedo, mask = _symmetric_case(seed=4)
  target = _images(albedo.shape, seed=5)

  def loss(params):
    (completed, log_variance), _ = net.apply(
      {"params": params, "batch_stats": variables["batch_stats"]},
      albedo,
      mask,
      update_stats=True,
      mutable=["batch_stats"],
    )
    error = jnp.abs(completed - target)  # uncertainty-weighted L1, as in the public code
    return jnp.mean((error * jnp.exp(-log_variance) + log_variance) / 2)

  value, grads = jax.jit(jax.value_and_grad(loss))(variables["params"])
  assert np.isfinite(float(value)) and _all_finite(grads)
  for name in ("down0", "down0_flipped", "middle", "up4", "head"):
    assert float(sum(jnp.abs(g).sum() for g in jax.tree_util.tree_leaves(grads[name]))) > 0


@pytest.mark.parametrize("size", SIZES)
def test_discriminator_returns_four_scales(size):
  logits = _shapes(model.PyramidDiscriminator(width=TINY), jnp.zeros((2, *size, 3)))
  h, w = size
  assert [x.shape for x in logits] == [(2, h // f, w // f, 1) for f in (4, 8, 16, 32)]
  assert all(x.dtype == jnp.float32 for x in logits)
  with pytest.raises(ValueError, match="at least 32"):
    _shapes(model.PyramidDiscriminator(width=TINY), jnp.zeros((2, 16, 64, 3)))


def test_discriminator_gradients_finite():
  disc = model.PyramidDiscriminator(width=TINY)
  images = _images((2, 32, 32, 3))
  variables = host_init_variables(disc, images, update_stats=False)

  def loss(params, images):
    logits = disc.apply(
      {"params": params, "batch_stats": variables["batch_stats"]}, images, update_stats=False
    )
    return sum(jnp.mean(jax.nn.relu(1.0 - x)) for x in logits)  # hinge loss on reals

  # Gradients w.r.t. the images too: the gradient penalty needs them.
  grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(variables["params"], images)
  assert _all_finite(grads)
  assert float(jnp.abs(grads[1]).sum()) > 0


@pytest.mark.parametrize("size", SIZES)
def test_segmenter_shapes(size):
  logits = _shapes(model.Segmenter(width=TINY), jnp.zeros((2, *size, 3)))
  assert logits.shape == (2, *size, len(model.SEGMENT_CLASSES)) and logits.dtype == jnp.float32
  with pytest.raises(ValueError, match="divisible by 32"):
    _shapes(model.Segmenter(width=TINY), jnp.zeros((2, 40, 32, 3)))


@pytest.mark.slow
def test_segmenter_gradients_finite():
  segmenter = model.Segmenter(width=TINY)
  images = _images((2, 32, 32, 3))
  labels = jnp.asarray(np.random.default_rng(1).integers(0, 3, (2, 32, 32)))
  variables = host_init_variables(segmenter, images, update_stats=False)

  def loss(params):
    logits, _ = segmenter.apply(
      {"params": params, "batch_stats": variables["batch_stats"]},
      images,
      update_stats=True,
      mutable=["batch_stats"],
    )
    log_p = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(log_p, labels[..., None], axis=-1))

  value, grads = jax.jit(jax.value_and_grad(loss))(variables["params"])
  assert np.isfinite(float(value)) and _all_finite(grads)
