"""The geometry-mapping layer (eq. 5) on hand-made cases."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxface.render import geometry_image, geometry_image_lookup
from tests.helpers import grid_mesh


def test_pixel_at_a_vertex_uv_returns_that_vertex():
  # A 5 x 5 grid whose vertex UVs sit on pixel centres (every other pixel)
  # of a 9 x 9 image, with random 3D positions.
  n = 9
  columns, rows = np.meshgrid(np.arange(5), np.arange(5), indexing="xy")
  uv = np.stack([(2 * columns + 0.5) / n, 1 - (2 * rows + 0.5) / n], axis=-1).reshape(-1, 2)
  _, triangles = grid_mesh(5, 5)
  lookup = geometry_image_lookup(triangles, uv, triangles, n)
  vertices = np.random.default_rng(0).standard_normal((25, 3)).astype(np.float32)
  image = np.asarray(geometry_image(jnp.asarray(vertices), lookup))
  for vertex, (column, row) in enumerate(zip(columns.ravel(), rows.ravel(), strict=True)):
    np.testing.assert_allclose(image[2 * row, 2 * column], vertices[vertex], atol=1e-6)


def test_constant_and_linear_meshes(ict_model):
  model = ict_model
  lookup = geometry_image_lookup(model.triangles, model.uv, model.triangle_uv, 64)
  mask = np.asarray(lookup.mask)
  assert 0.3 < mask.mean() <= 1.0
  constant = geometry_image(
    jnp.broadcast_to(jnp.array([1.0, -2.0, 3.0]), (model.num_vertices, 3)), lookup
  )
  np.testing.assert_allclose(
    np.asarray(constant)[mask], np.tile([1.0, -2.0, 3.0], (mask.sum(), 1)), atol=1e-6
  )
  assert np.all(np.asarray(constant)[~mask] == 0)
  # A mesh whose coordinates are linear in its (seamless narrow-face) UVs.
  narrow = model.vertex_uv[:6706]
  seamless = np.all(
    np.asarray(model.uv)[np.asarray(model.triangle_uv)[:13120]]
    == narrow[np.asarray(model.triangles)[:13120]],
    axis=(1, 2),
  )
  triangles = np.asarray(model.triangles)[:13120][seamless]
  lookup = geometry_image_lookup(triangles, narrow, triangles, 64)
  linear = np.stack([2 * narrow[:, 0] + 1, -narrow[:, 1], narrow[:, 0] + narrow[:, 1]], axis=1)
  image = np.asarray(geometry_image(jnp.asarray(linear), lookup))
  cols, rows = np.meshgrid(
    (np.arange(64) + 0.5) / 64, 1 - (np.arange(64) + 0.5) / 64, indexing="xy"
  )
  expected = np.stack([2 * cols + 1, -rows, cols + rows], axis=-1)
  inside = np.asarray(lookup.mask)
  np.testing.assert_allclose(image[inside], expected[inside], atol=1e-5)


def test_vjp_is_the_transpose_of_the_gather(procedural):
  model = procedural
  n = 16
  lookup = geometry_image_lookup(model.triangles, model.uv, model.triangle_uv, n)
  # The layer as an explicit (n*n, V) matrix.
  matrix = np.zeros((n * n, model.num_vertices))
  ids = np.asarray(lookup.vertex_ids).reshape(-1, 3)
  u, v = np.asarray(lookup.barycentric).reshape(-1, 2).T
  inside = np.asarray(lookup.mask).reshape(-1)
  for pixel in np.flatnonzero(inside):
    for vertex, weight in zip(
      ids[pixel], (u[pixel], v[pixel], 1 - u[pixel] - v[pixel]), strict=True
    ):
      matrix[pixel, vertex] += weight
  vertices = jnp.asarray(model.vertices)
  np.testing.assert_allclose(
    np.asarray(geometry_image(vertices, lookup)).reshape(-1, 3), matrix @ model.vertices, atol=1e-4
  )
  cotangent = np.random.default_rng(0).standard_normal((n, n, 3)).astype(np.float32)
  _, vjp = jax.vjp(lambda x: geometry_image(x, lookup), vertices)
  (gradient,) = vjp(jnp.asarray(cotangent))
  np.testing.assert_allclose(gradient, matrix.T @ cotangent.reshape(-1, 3), atol=1e-4)


def test_batched_vertices(procedural):
  lookup = geometry_image_lookup(procedural.triangles, procedural.uv, procedural.triangle_uv, 32)
  batch = jnp.stack([jnp.asarray(procedural.vertices), 2 * jnp.asarray(procedural.vertices)])
  images = geometry_image(batch, lookup)
  assert images.shape == (2, 32, 32, 3)
  np.testing.assert_allclose(images[1], 2 * images[0], rtol=1e-5, atol=1e-5)
