"""Mirror maps from geometry."""

import numpy as np

from jaxface.geometry import mirror_vertex_map
from jaxface.morphable.procedural import GRID_COLUMNS


def test_procedural_mirror_is_the_grid_column_flip_and_an_involution(procedural):
  mirror, distance = mirror_vertex_map(np.asarray(procedural.vertices))
  ids = np.arange(procedural.num_vertices)
  column = ids % GRID_COLUMNS
  np.testing.assert_array_equal(mirror, ids - column + (GRID_COLUMNS - 1 - column))
  np.testing.assert_array_equal(mirror[mirror], ids)
  np.testing.assert_array_equal(procedural.mirror, mirror)
  assert distance.max() < 1e-4


def test_ict_face_area_mirrors_within_a_millimetre(ict_arrays):
  vertices = ict_arrays["vertices"]
  mirror, distance = mirror_vertex_map(vertices)
  assert np.mean(distance < 0.1) >= 0.95  # cm
  reflected = vertices[mirror] * np.array([-1.0, 1.0, 1.0])
  assert np.median(np.linalg.norm(reflected - vertices, axis=1)) < 0.01


def test_reflected_random_points_map_exactly():
  rng = np.random.default_rng(0)
  half = rng.uniform([0.1, -1, -1], [1, 1, 1], (50, 3))
  points = np.concatenate([half, half * np.array([-1, 1, 1])])
  mirror, distance = mirror_vertex_map(points)
  np.testing.assert_array_equal(mirror, np.r_[np.arange(50, 100), np.arange(50)])
  assert distance.max() < 1e-12
