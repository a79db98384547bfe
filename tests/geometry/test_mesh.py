"""Normals, areas and angles against plain loops and trimesh."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import trimesh

from jaxface.geometry import corner_angles, face_areas, face_normals, vertex_normals


def _area_weighted_normals_loop(vertices, triangles):
  normals = np.zeros_like(vertices)
  for a, b, c in triangles:
    cross = np.cross(vertices[b] - vertices[a], vertices[c] - vertices[a])
    for v in (a, b, c):
      normals[v] += cross
  return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def test_face_normal_of_counter_clockwise_triangle_points_to_viewer():
  vertices = jnp.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
  triangles = jnp.array([[0, 1, 2]])
  np.testing.assert_allclose(face_normals(vertices, triangles), [[0.0, 0.0, 1.0]], atol=1e-7)
  np.testing.assert_allclose(face_areas(vertices, triangles), [1.0], rtol=1e-6)
  np.testing.assert_allclose(corner_angles(vertices, triangles)[0, 0], np.pi / 2, rtol=1e-6)


def test_area_weighted_vertex_normals_match_loop(procedural):
  vertices = np.asarray(procedural.vertices, np.float64)
  triangles = np.asarray(procedural.triangles)
  expected = _area_weighted_normals_loop(vertices, triangles)
  np.testing.assert_allclose(vertex_normals(vertices, triangles), expected, atol=2e-5)


def test_angle_weighted_normals_and_areas_match_trimesh(procedural):
  vertices = np.asarray(procedural.vertices, np.float64)
  triangles = np.asarray(procedural.triangles)
  mesh = trimesh.Trimesh(vertices, triangles, process=False)
  np.testing.assert_allclose(
    vertex_normals(vertices, triangles, weighting="angle"), mesh.vertex_normals, atol=2e-5
  )
  np.testing.assert_allclose(face_areas(vertices, triangles), mesh.area_faces, rtol=1e-4)
  np.testing.assert_allclose(corner_angles(vertices, triangles), mesh.face_angles, atol=1e-4)


def test_batched_normals_equal_per_item_and_jit(procedural):
  rng = np.random.default_rng(0)
  batch = np.asarray(procedural.vertices)[None] + 0.1 * rng.standard_normal(
    (3, procedural.num_vertices, 3)
  )
  triangles = procedural.triangles
  batched = jax.jit(vertex_normals)(jnp.asarray(batch, jnp.float32), triangles)
  chex.assert_shape(batched, batch.shape)
  for item, expected in zip(batch, batched, strict=True):
    np.testing.assert_allclose(
      vertex_normals(jnp.asarray(item, jnp.float32), triangles), expected, atol=1e-5
    )


def test_degenerate_triangle_gives_finite_gradients():
  vertices = jnp.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
  triangles = jnp.array([[0, 1, 2], [0, 1, 3]])  # the first is a zero-area sliver
  loss = lambda v: jnp.sum(vertex_normals(v, triangles)) + jnp.sum(face_areas(v, triangles))
  gradient = jax.grad(loss)(vertices)
  assert np.all(np.isfinite(gradient))


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match=r"\(\.\.\., V, 3\)"):
    vertex_normals(jnp.zeros((4, 2)), jnp.zeros((1, 3), jnp.int32))
  with pytest.raises(ValueError, match=r"\(F, 3\)"):
    face_normals(jnp.zeros((4, 3)), jnp.zeros((3,), jnp.int32))
  with pytest.raises(ValueError, match="weighting"):
    vertex_normals(jnp.zeros((3, 3)), jnp.zeros((1, 3), jnp.int32), weighting="mean")


def test_triangle_neighbors_of_a_grid():
  from jaxface.geometry import triangle_neighbors
  from tests.helpers import grid_mesh

  _, triangles = grid_mesh(3, 3)  # 8 triangles
  neighbors = triangle_neighbors(triangles)
  for face, row in enumerate(neighbors):
    for corner, other in enumerate(row):
      a, b = triangles[face][(corner + 1) % 3], triangles[face][(corner + 2) % 3]
      if other < 0:
        # A boundary edge: no other triangle uses it.
        uses = [f for f, t in enumerate(triangles) if f != face and a in t and b in t]
        assert not uses
      else:
        assert a in triangles[other] and b in triangles[other] and other != face
  assert (neighbors < 0).sum() == 8  # the 8 boundary edges of a 2 x 2-cell grid
