"""Inverse warping: identity for identical views, a homography for a pure rotation."""

import jax.numpy as jnp
import numpy as np

from jaxface.geometry import PerspectiveCamera, euler_to_matrix
from jaxface.render import warp

SIZE = (40, 48)


def _camera(rotation=None):
  rotation = np.eye(3) if rotation is None else rotation
  return PerspectiveCamera(
    jnp.array([50.0, 50.0]),
    jnp.array([24.0, 20.0]),
    jnp.asarray(rotation, jnp.float32),
    jnp.zeros(3),
  )


def _ramp():
  rows, cols = np.meshgrid(np.arange(SIZE[0]) + 0.5, np.arange(SIZE[1]) + 0.5, indexing="ij")
  return np.stack([0.01 * cols, 0.02 * rows, 0.005 * (cols + rows)], axis=-1).astype(np.float32)


def test_identical_views_give_the_identity():
  image = np.random.default_rng(0).uniform(0, 1, (*SIZE, 3)).astype(np.float32)
  depth = np.random.default_rng(1).uniform(20, 40, SIZE).astype(np.float32)
  warped, valid = warp(jnp.asarray(image), jnp.asarray(depth), _camera(), _camera())
  assert np.asarray(valid).all()
  np.testing.assert_allclose(warped, image, atol=1e-4)


def test_pure_rotation_matches_the_analytic_homography():
  # Rotating the camera about its centre maps pixels by K R K^-1, whatever
  # the depth; a linear ramp is reproduced exactly by bilinear sampling.
  rotation = np.asarray(euler_to_matrix(jnp.array([0.05, -0.08, 0.03])))
  depth = np.random.default_rng(2).uniform(20, 40, SIZE).astype(np.float32)
  ramp = _ramp()
  warped, valid = warp(jnp.asarray(ramp), jnp.asarray(depth), _camera(), _camera(rotation))
  valid = np.asarray(valid)
  assert 0.5 < valid.mean() < 1.0
  rows, cols = np.meshgrid(np.arange(SIZE[0]) + 0.5, np.arange(SIZE[1]) + 0.5, indexing="ij")
  # Ray of each source pixel in the camera frame (y up, looking along -z).
  rays = np.stack([(cols - 24.0) / 50.0, -(rows - 20.0) / 50.0, -np.ones_like(cols)], axis=-1)
  turned = rays @ rotation.T
  x2 = 24.0 + 50.0 * turned[..., 0] / -turned[..., 2]
  y2 = 20.0 - 50.0 * turned[..., 1] / -turned[..., 2]
  expected = np.stack([0.01 * x2, 0.02 * y2, 0.005 * (x2 + y2)], axis=-1)
  interior = valid & (x2 > 1) & (x2 < SIZE[1] - 1) & (y2 > 1) & (y2 < SIZE[0] - 1)
  np.testing.assert_allclose(np.asarray(warped)[interior], expected[interior], atol=1e-4)
  # Points that leave the target image are invalid.
  outside = (x2 < 0) | (x2 > SIZE[1]) | (y2 < 0) | (y2 > SIZE[0])
  assert not valid[outside].any()
