"""Boundaries, harmonic UVs and texel lookup against hand-made cases and brute force."""

import numpy as np
import pytest
import scipy.spatial

from jaxface.geometry import (
  boundary_loops,
  harmonic_uv,
  signed_uv_areas,
  texel_centres,
  uv_texel_lookup,
)
from jaxface.morphable.procedural import GRID_COLUMNS
from tests.helpers import grid_mesh


def _on_square_boundary(uv, tolerance=1e-9):
  return np.min(np.stack([uv[:, 0], 1 - uv[:, 0], uv[:, 1], 1 - uv[:, 1]]), axis=0) < tolerance


def test_boundary_loops_of_a_grid_with_a_hole():
  vertices, triangles = grid_mesh(6, 6)
  # Remove the two triangles of one interior cell (row 2, column 2): a hole of 4 edges.
  cell = 2 * 5 + 2
  keep = np.ones(len(triangles), bool)
  keep[[2 * cell, 2 * cell + 1]] = False
  loops = boundary_loops(triangles[keep])
  assert [len(loop) for loop in loops] == [20, 4]
  # The outer loop follows the counter-clockwise orientation of the triangles.
  outer = vertices[loops[0], :2]
  signed_area = 0.5 * np.sum(
    outer[:, 0] * np.roll(outer[:, 1], -1) - np.roll(outer[:, 0], -1) * outer[:, 1]
  )
  assert signed_area > 0


def test_harmonic_map_of_a_flat_square_is_the_identity():
  # A discrete harmonic map reproduces linear functions: a flat unit-square
  # grid with its boundary on the unit square maps onto itself.
  vertices, triangles = grid_mesh(9, 9)
  rng = np.random.default_rng(0)
  interior = ~_on_square_boundary(vertices[:, :2])
  vertices[interior, :2] += 0.02 * rng.standard_normal((interior.sum(), 2))
  for weights in ("cotangent", "mean_value"):
    uv = harmonic_uv(vertices, triangles, weights=weights, corners=(0, 8, 80, 72))
    np.testing.assert_allclose(uv, vertices[:, :2], atol=1e-9)


@pytest.mark.parametrize("weights", ["mean_value", "uniform"])
def test_harmonic_uv_of_ict_face_has_no_flips_and_square_boundary(ict_arrays, weights):
  vertices, triangles = ict_arrays["vertices"], ict_arrays["triangles"]
  uv = harmonic_uv(vertices, triangles, weights=weights)
  areas = signed_uv_areas(uv, triangles)
  assert np.all(areas > 0), f"{np.sum(areas <= 0)} flipped triangles"
  outer = boundary_loops(triangles)[0]
  assert np.all(_on_square_boundary(uv[outer]))
  assert uv.min() >= -1e-12 and uv.max() <= 1 + 1e-12
  # Every square side is used and the map covers the square.
  assert np.isclose(areas.sum(), 1.0 - _hole_area(uv, triangles), atol=1e-6)


def _hole_area(uv, triangles):
  area = 0.0
  for loop in boundary_loops(triangles)[1:]:
    points = uv[loop]
    area += -0.5 * np.sum(
      points[:, 0] * np.roll(points[:, 1], -1) - np.roll(points[:, 0], -1) * points[:, 1]
    )
  return area


def test_cotangent_harmonic_uv_on_procedural_grid_has_no_flips(procedural):
  # The grid's corners go to the square's corners; any other choice leaves
  # triangles with three vertices on one side of the square, which are flat.
  last = procedural.num_vertices - 1
  corners = (0, GRID_COLUMNS - 1, last, last - GRID_COLUMNS + 1)
  uv = harmonic_uv(procedural.vertices, procedural.triangles, weights="cotangent", corners=corners)
  assert np.all(signed_uv_areas(uv, procedural.triangles) > 0)
  # Left and right stay left and right.
  right_side = np.asarray(procedural.vertices)[:, 0] < -3
  assert np.all(uv[right_side, 0] < 0.5)


def test_texel_lookup_matches_brute_force():
  rng = np.random.default_rng(3)
  points = np.concatenate(
    [rng.uniform(0.05, 0.95, (40, 2)), [[0.05, 0.05], [0.95, 0.05], [0.95, 0.95], [0.05, 0.95]]]
  )
  triangles = scipy.spatial.Delaunay(points).simplices
  size = (37, 29)
  triangle_id, barycentric = uv_texel_lookup(points, triangles, size)
  centres = texel_centres(size).reshape(-1, 2)
  # Brute force: every texel centre against every triangle.
  expected = np.full(len(centres), -1)
  for index, corners in enumerate(points[triangles]):
    matrix = np.array([corners[1] - corners[0], corners[2] - corners[0]]).T
    local = np.linalg.solve(matrix, (centres - corners[0]).T).T
    weights = np.stack([1 - local.sum(1), local[:, 0], local[:, 1]], 1)
    inside = np.all(weights >= -1e-9, axis=1)
    expected[inside & (expected < 0)] = index
  ours = triangle_id.reshape(-1)
  assert np.array_equal(ours >= 0, expected >= 0)
  covered = ours >= 0
  # Ties on shared edges may go to either triangle; the interpolated point is the same.
  reconstructed = np.einsum(
    "nk,nkd->nd", barycentric.reshape(-1, 3)[covered], points[triangles[ours[covered]]]
  )
  np.testing.assert_allclose(reconstructed, centres[covered], atol=1e-6)
  assert np.mean(ours[covered] == expected[covered]) > 0.97
  np.testing.assert_array_equal(barycentric.reshape(-1, 3)[~covered], 0.0)


def test_texel_centres_convention():
  centres = texel_centres((2, 4))
  np.testing.assert_allclose(centres[0, 0], [0.125, 0.75])  # row 0 is the top (v near 1)
  np.testing.assert_allclose(centres[1, 3], [0.875, 0.25])


def test_closed_mesh_is_rejected():
  tetrahedron = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]])
  vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
  with pytest.raises(ValueError, match="closed"):
    harmonic_uv(vertices, tetrahedron)
