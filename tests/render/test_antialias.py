"""Silhouette antialiasing: continuous in the vertices, gradients equal to finite differences."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from jaxface.geometry import triangle_neighbors
from jaxface.render import antialias, rasterize

SIZE = (24, 24)


def _scene(clip, triangles, neighbors, with_antialias=True):
  fragments = rasterize(clip, triangles, SIZE)
  # A white object on black: without antialiasing the image only changes
  # when an edge crosses a pixel centre.
  color = jnp.where(fragments.mask[..., None], jnp.array([1.0, 0.8, 0.6], clip.dtype), 0.0)
  if with_antialias:
    color = antialias(color, fragments, clip, triangles, neighbors)
  return color


def _quad():
  xy = np.array([[-0.62, -0.55], [0.57, -0.61], [0.66, 0.49], [-0.51, 0.63]])
  clip = np.concatenate([xy, np.zeros((4, 1)), np.ones((4, 1))], axis=1)
  triangles = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
  return clip, triangles


def test_silhouette_gradient_matches_finite_differences():
  clip, triangles = _quad()
  neighbors = triangle_neighbors(triangles)
  weights = np.random.default_rng(0).uniform(0, 1, (*SIZE, 3))
  with jax.enable_x64(True):
    clip = jnp.asarray(clip)
    weights = jnp.asarray(weights)
    loss = jax.jit(lambda c: jnp.sum(weights * _scene(c, triangles, neighbors)))
    aliased = jax.jit(lambda c: jnp.sum(weights * _scene(c, triangles, neighbors, False)))
    gradient = np.asarray(jax.grad(loss)(clip))
    assert np.abs(np.asarray(jax.grad(aliased)(clip))).max() == 0  # nothing to learn from
    step = 1e-5
    for vertex in range(4):
      for axis in range(2):
        offset = jnp.zeros_like(clip).at[vertex, axis].set(step)
        numeric = (loss(clip + offset) - loss(clip - offset)) / (2 * step)
        np.testing.assert_allclose(gradient[vertex, axis], numeric, rtol=1e-5, atol=1e-6)
        assert abs(gradient[vertex, axis]) > 1e-3  # every corner is on the silhouette


def test_moving_an_edge_changes_the_image_continuously():
  clip, triangles = _quad()
  neighbors = triangle_neighbors(triangles)
  images, corners = [], []
  for shift in np.linspace(0.0, 2 / SIZE[1], 9):  # move the right edge by one pixel in 8 steps
    moved = clip.copy()
    moved[[1, 2], 0] += shift
    images.append(np.asarray(_scene(jnp.asarray(moved, jnp.float32), triangles, neighbors)))
    corners.append(np.stack([(moved[:, 0] + 1) * SIZE[1] / 2, (1 - moved[:, 1]) * SIZE[0] / 2], 1))
  # Along edges the change per step is the coverage change (1/8 of a pixel);
  # an aliased edge would jump by a whole pixel value. As in nvdiffrast,
  # pixels at a corner are not antialiased and may still jump.
  rows, cols = np.meshgrid(np.arange(SIZE[0]) + 0.5, np.arange(SIZE[1]) + 0.5, indexing="ij")
  corners = np.concatenate(corners)
  distance = np.min(
    np.hypot(cols[..., None] - corners[:, 0], rows[..., None] - corners[:, 1]), axis=-1
  )
  away = distance > 1.5
  steps = [np.abs(b - a).max(axis=-1)[away].max() for a, b in itertools.pairwise(images)]
  assert max(steps) < 0.2


def test_interior_edges_are_left_alone():
  clip, triangles = _quad()
  fragments = rasterize(jnp.asarray(clip, jnp.float32), triangles, SIZE)
  # Two different colours on the two triangles of one flat quad: the shared
  # diagonal is no silhouette, so it must stay sharp.
  color = jnp.where(
    (fragments.triangle_id == 0)[..., None], 1.0, jnp.where(fragments.mask[..., None], 0.5, 0.0)
  ) * jnp.ones(3)
  result = antialias(
    color, fragments, jnp.asarray(clip, jnp.float32), triangles, triangle_neighbors(triangles)
  )
  changed = np.any(np.asarray(result) != np.asarray(color), axis=-1)
  ids = np.asarray(fragments.triangle_id)
  # Only pixels next to the background may change.
  padded = np.pad(ids, 1, constant_values=-1)
  near_background = np.zeros_like(changed)
  for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
    near_background |= padded[dy : dy + SIZE[0], dx : dx + SIZE[1]] < 0
  near_background |= ids < 0
  assert changed.any() and not (changed & ~near_background).any()
