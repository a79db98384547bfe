"""Table 1's shapes, the modeling network's order-invariant pooling over any number of frames, and
the tracking network's output ranges."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxface.methods.personalized import networks
from jaxface.nets.layers import host_init_variables


def test_the_paper_sizes_give_table_1():
  module = networks.ModelingNetwork(num_identity=10, num_blendshapes=56)
  images = jax.ShapeDtypeStruct((2, 3, 224, 224, 3), jnp.float32)
  variables = jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x, train=False), images)
  encoded = jax.eval_shape(
    lambda v, x: networks.Encoder().apply(
      {"params": v["params"]["encoder"], "batch_stats": v["batch_stats"]["encoder"]},
      x.reshape(6, 224, 224, 3), train=False,
    ),
    variables, images,
  )  # fmt: skip
  assert encoded.shape == (6, 7, 7, 512)  # Table 1a
  maps = jax.eval_shape(lambda v, x: module.apply(v, x, train=False), variables, images)
  assert maps.shape_static.shape == maps.albedo_static.shape == (2, 128, 128, 3)  # Table 1b
  assert maps.shape_dynamic.shape == maps.albedo_dynamic.shape == (2, 128, 128, 56, 3)
  assert maps.identity.shape == (2, 10)
  kernels = {
    "/".join(str(getattr(k, "key", k)) for k in path): leaf.shape
    for path, leaf in jax.tree_util.tree_flatten_with_path(variables["params"])[0]
    if str(getattr(path[-1], "key", "")) == "kernel"
  }
  assert kernels["encoder/stem/kernel"] == (7, 7, 3, 64)
  assert kernels["shape_decoder/deconv0/kernel"] == (4, 4, 512, 512)
  assert kernels["albedo_decoder/blendshape_head/kernel"] == (1, 1, 64, 56 * 3)
  # every conv and deconv is followed by batch norm (the heads are the outputs)
  norms = [k for k in jax.tree_util.tree_leaves_with_path(variables["batch_stats"])]
  assert len(norms) == 2 * (7 + 4 + 4)  # mean and var of 7 encoder and 2 x 4 decoder norms


@pytest.fixture(scope="module")
def small():
  module = networks.ModelingNetwork(
    num_identity=4, num_blendshapes=3, encoder_widths=(4, 8, 8, 8, 8, 16, 16),
    decoder_widths=(8, 8, 4, 4),
  )  # fmt: skip
  images = jax.ShapeDtypeStruct((1, 2, 32, 32, 3), jnp.float32)
  variables = host_init_variables(module, images, train=False, seed=0)
  # Non-trivial running statistics, so evaluation mode is not the identity normalisation.
  rng = np.random.default_rng(0)
  variables["batch_stats"] = jax.tree_util.tree_map_with_path(
    lambda path, x: jnp.asarray(
      rng.uniform(0.5, 1.5, x.shape) if path[-1].key == "var" else rng.normal(0, 0.1, x.shape),
      x.dtype,
    ),
    variables["batch_stats"],
  )
  return module, variables


@pytest.mark.parametrize("train", [False, True])
def test_pooling_is_order_invariant_for_any_number_of_frames(small, train):
  module, variables = small
  frames = jnp.asarray(np.random.default_rng(1).uniform(size=(2, 5, 32, 32, 3)), jnp.float32)

  def run(images, present=None):
    if train:
      out, _ = module.apply(variables, images, present, train=True, mutable=["batch_stats"])
      return out
    return module.apply(variables, images, present, train=False)

  reference = run(frames)
  permuted = run(frames[:, ::-1][:, np.array([2, 0, 4, 1, 3])])
  for a, b in zip(reference, permuted, strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  if not train:  # evaluation: a user's features do not depend on the other frames of a batch
    for count in (1, 3):
      fewer = run(frames[:, :count])
      masked = run(frames, jnp.arange(5)[None, :].repeat(2, 0) < count)
      for a, b in zip(fewer, masked, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
      assert not np.allclose(fewer.albedo_static, reference.albedo_static)


def test_pool_frames_is_the_mean_of_the_present_frames():
  features = jnp.arange(2 * 3 * 2, dtype=jnp.float32).reshape(2, 3, 2)
  present = jnp.array([[True, False, True], [False, True, False]])
  np.testing.assert_allclose(networks.pool_frames(features, present), [[2.0, 3.0], [8.0, 9.0]])
  np.testing.assert_allclose(networks.pool_frames(features, None), features.mean(1))


def test_the_tracking_network_starts_near_a_frontal_face_with_valid_outputs():
  module = networks.TrackingNetwork(num_blendshapes=5, width=0.125)
  images = jnp.asarray(np.random.default_rng(2).uniform(size=(3, 32, 32, 3)), jnp.float32)
  params = host_init_variables(module, images, jnp.float32(20.0), seed=0)
  track = module.apply(params, images, jnp.float32(20.0))
  assert track.weights.shape == (3, 5) and bool(jnp.all((track.weights > 0) & (track.weights < 1)))
  np.testing.assert_allclose(
    jnp.einsum("nij,nkj->nik", track.rotation, track.rotation),
    np.broadcast_to(np.eye(3), (3, 3, 3)),
    atol=1e-5,
  )
  assert bool(jnp.all(-track.translation[:, 2] > 0))  # the face is in front of the camera
  assert track.sh.shape == (3, 27)
