"""Bilinear texture lookup against scipy, vertex sampling across seams, render -> unwrap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from jaxface.geometry import (
  PerspectiveCamera,
  euler_to_matrix,
  focal_from_fov,
  texel_centres,
  uv_texel_lookup,
)
from jaxface.render import (
  dc_only_coefficients,
  render,
  sample_at_vertices,
  sample_texture,
  unwrap,
  vertex_uv_table,
)


def test_sample_texture_matches_scipy_map_coordinates():
  rng = np.random.default_rng(0)
  texture = rng.uniform(0, 1, (9, 13, 2)).astype(np.float32)
  uv = rng.uniform(0, 1, (50, 2)).astype(np.float32)
  ours = np.asarray(sample_texture(jnp.asarray(texture), jnp.asarray(uv)))
  rows = (1 - uv[:, 1]) * 9 - 0.5
  cols = uv[:, 0] * 13 - 0.5
  for channel in range(2):
    expected = scipy.ndimage.map_coordinates(
      texture[..., channel], [rows, cols], order=1, mode="nearest"
    )
    np.testing.assert_allclose(ours[:, channel], expected, atol=1e-5)


def test_texel_centres_return_texels_and_gradients_flow():
  texture = jnp.arange(12.0).reshape(3, 4, 1)
  uv = jnp.array([[0.125, 1 - 1 / 6], [0.875, 1 / 6]])  # centres of texel (0, 0) and (2, 3)
  np.testing.assert_allclose(sample_texture(texture, uv)[:, 0], [0.0, 11.0], atol=1e-5)
  grad_texture, grad_uv = jax.grad(lambda t, c: jnp.sum(sample_texture(t, c)), argnums=(0, 1))(
    texture, jnp.array([[0.3, 0.6]])
  )
  np.testing.assert_allclose(grad_texture.sum(), 1.0, rtol=1e-6)  # bilinear weights sum to 1
  assert np.all(np.isfinite(grad_uv)) and np.abs(grad_uv).sum() > 0


def test_render_then_unwrap_recovers_the_visible_albedo(procedural):
  size = 512
  model = procedural
  focal = float(focal_from_fov(18.0, size))
  camera = PerspectiveCamera(
    jnp.array([focal, focal]),
    jnp.array([size / 2, size / 2]),
    euler_to_matrix(jnp.array([0.1, 0.35, 0.0])),
    jnp.array([0.0, -0.7, -75.0]),
  )
  vertices = jnp.asarray(model.vertices) - jnp.array([0.0, 0.0, 5.0])
  # DC light of irradiance 1: the image is the albedo itself.
  out = jax.jit(
    lambda v: render(
      v,
      model.triangles,
      camera,
      (size, size),
      uv=model.uv,
      triangle_uv=model.triangle_uv,
      albedo=model.albedo_mean,
      sh_coefficients=dc_only_coefficients(1.0),
    )
  )(vertices)
  texel_triangle, texel_barycentric = uv_texel_lookup(
    model.uv, model.triangle_uv, model.albedo_mean.shape[:2]
  )
  clip = camera.to_clip(vertices, (size, size))
  texture, visible = jax.jit(unwrap)(
    out.image,
    out.fragments,
    clip,
    model.triangles,
    jnp.asarray(texel_triangle),
    jnp.asarray(texel_barycentric),
  )
  visible = np.asarray(visible)
  assert 0.3 < visible.mean() < 0.95  # the far cheek is hidden
  error = np.asarray(texture)[visible] - np.asarray(model.albedo_mean)[visible]
  psnr = 10 * np.log10(1.0 / np.mean(error**2))
  assert psnr >= 35.0, f"PSNR {psnr:.1f} dB"
  # Positive yaw turns the face's own left (+x, high u on the procedural grid)
  # away from the camera: its far edge must be mostly invisible, the far
  # right edge mostly visible.
  u = texel_centres(model.albedo_mean.shape[:2])[..., 0]
  on_chart = texel_triangle >= 0
  turned_away = visible[on_chart & (u > 0.9)].mean()
  facing = visible[on_chart & (u < 0.1)].mean()
  assert turned_away < 0.3 < facing, (turned_away, facing)


def _seamed_square():
  """A unit square as two triangles cut along the diagonal (0-2) into two UV charts.

  The left chart holds triangle (0, 1, 2) in u < 0.5, the right one triangle
  (0, 2, 3) in u > 0.5, so vertices 0 and 2 each have two texture coordinates.
  """
  triangles = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
  uv = np.array(
    [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.6, 0.1], [0.9, 0.4], [0.6, 0.4]], np.float32
  )
  triangle_uv = np.array([[0, 1, 2], [3, 4, 5]], np.int32)
  return triangles, uv, triangle_uv


def test_vertex_sampling_averages_the_two_sides_of_a_seam():
  triangles, uv, triangle_uv = _seamed_square()
  texture = np.ones((16, 16, 2), np.float32)
  texture[:, 8:, 0] = 3.0  # the right chart's half of channel 0
  texture[..., 1] = np.arange(16, dtype=np.float32)[None, :]  # a ramp across the columns
  table = vertex_uv_table(triangles, triangle_uv, 4)
  values = np.asarray(sample_at_vertices(jnp.asarray(texture), jnp.asarray(uv), table))
  # brute force: every distinct (vertex, uv) corner, looked up and averaged per vertex
  expected = np.zeros((4, 2))
  for vertex in range(4):
    ids = sorted(set(triangle_uv.ravel()[triangles.ravel() == vertex]))
    expected[vertex] = np.mean(
      [np.asarray(sample_texture(jnp.asarray(texture), jnp.asarray(uv[i]))) for i in ids], axis=0
    )
  np.testing.assert_allclose(values, expected, rtol=1e-6)
  np.testing.assert_allclose(values[:, 0], [2.0, 1.0, 2.0, 3.0])  # seam vertices: the mean
  grad = jax.grad(lambda t: sample_at_vertices(t, jnp.asarray(uv), table).sum())(
    jnp.asarray(texture)
  )
  np.testing.assert_allclose(float(grad.sum()), 4 * 2)  # each vertex's weights sum to 1


def test_vertex_sampling_without_seams_reads_each_vertex_uv(procedural):
  triangles = np.asarray(procedural.triangles)
  table = vertex_uv_table(triangles, np.asarray(procedural.triangle_uv), procedural.num_vertices)
  texture = jnp.asarray(np.asarray(procedural.albedo_mean))
  values = sample_at_vertices(texture, jnp.asarray(procedural.uv), table)
  reference = sample_texture(texture, jnp.asarray(procedural.vertex_uv))
  np.testing.assert_allclose(np.asarray(values), np.asarray(reference), atol=1e-6)


def test_vertex_uv_table_names_bad_layouts():
  triangles, _, triangle_uv = _seamed_square()
  with pytest.raises(ValueError, match="one uv per corner"):
    vertex_uv_table(triangles, triangle_uv[:1], 4)
  with pytest.raises(ValueError, match="vertex 4 is in no triangle"):
    vertex_uv_table(triangles, triangle_uv, 5)
