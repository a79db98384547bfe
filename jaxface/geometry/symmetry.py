"""Left/right mirror correspondence of a mesh's vertices, found from geometry."""

from __future__ import annotations

import numpy as np
import scipy.spatial


def mirror_vertex_map(
  vertices: np.ndarray, axis: int = 0, plane_offset: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
  """For each vertex, the vertex nearest to its reflection in the symmetry plane.

  Args:
    vertices: (V, 3) positions of a roughly bilaterally symmetric mesh.
    axis: coordinate axis normal to the symmetry plane (0: x, left/right).
    plane_offset: plane position along `axis`; by default the middle of the
      bounding box, which is exact for a symmetric mesh.

  Returns:
    mirror (V,) int32 vertex ids and distance (V,) float, in the mesh's
    units, between each reflected vertex and its match (0 for exact
    symmetry). A vertex on the plane maps to itself.
  """
  vertices = np.asarray(vertices, np.float64)
  if vertices.ndim != 2 or vertices.shape[1] != 3:
    raise ValueError(f"vertices must have shape (V, 3), got {vertices.shape}")
  if plane_offset is None:
    plane_offset = 0.5 * (vertices[:, axis].min() + vertices[:, axis].max())
  reflected = vertices.copy()
  reflected[:, axis] = 2.0 * plane_offset - reflected[:, axis]
  distance, mirror = scipy.spatial.cKDTree(vertices).query(reflected)
  return mirror.astype(np.int32), distance
