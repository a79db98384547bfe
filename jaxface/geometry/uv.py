"""UV charts: mesh boundaries, harmonic parameterisation and texel lookup.

These run once per mesh topology (numpy/scipy on the host), and their
results feed jitted code: the geometry-mapping layer and UV textures use the
per-texel triangle ids and barycentrics from `uv_texel_lookup`.

UV convention: u runs left to right over texture columns, v runs bottom to
top (OpenGL/OBJ); texel (row i, column j) of an (H, W) texture has its centre
at u = (j + 0.5) / W, v = 1 - (i + 0.5) / H, so row 0 is the top (v near 1).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.linalg


def boundary_loops(triangles: np.ndarray) -> list[np.ndarray]:
  """Closed boundary loops of an oriented triangle mesh, longest first.

  A boundary edge is a directed edge (i, j) of some triangle whose reverse
  (j, i) belongs to no triangle. Loops follow the triangles' orientation, so
  for counter-clockwise triangles the outer loop runs counter-clockwise.

  Raises:
    ValueError: if a vertex starts two boundary edges (non-manifold boundary).
  """
  triangles = np.asarray(triangles)
  directed = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
  as_set = {(int(a), int(b)) for a, b in directed}
  following: dict[int, int] = {}
  for a, b in directed:
    a, b = int(a), int(b)
    if (b, a) in as_set:
      continue
    if a in following:
      raise ValueError(f"vertex {a} starts two boundary edges: the mesh boundary is not manifold")
    following[a] = b
  loops = []
  visited: set[int] = set()
  for start in following:
    if start in visited:
      continue
    loop = []
    vertex = start
    while vertex not in visited:
      visited.add(vertex)
      loop.append(vertex)
      vertex = following[vertex]
    loops.append(np.asarray(loop, dtype=np.int64))
  return sorted(loops, key=len, reverse=True)


def _corner_angles(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
  corners = vertices[triangles]  # (F, 3, 3)
  to_next = np.roll(corners, -1, axis=1) - corners
  to_prev = np.roll(corners, 1, axis=1) - corners
  cos = np.einsum("fkd,fkd->fk", to_next, to_prev)
  sin = np.linalg.norm(np.cross(to_next, to_prev), axis=-1)
  return np.arctan2(sin, cos)  # (F, 3)


def parameterisation_weights(
  vertices: np.ndarray, triangles: np.ndarray, weights: str = "cotangent"
) -> scipy.sparse.csr_matrix:
  """Edge weights W (V, V) of a linear parameterisation, zero diagonal.

  "cotangent": harmonic map (w_ij = (cot a + cot b) / 2; Eck et al. 1995, the
  decoupled-GAN paper's [12]); "mean_value": Floater 2003, always positive,
  hence a bijection onto a convex boundary; "uniform": Tutte's embedding.
  """
  vertices = np.asarray(vertices, np.float64)
  triangles = np.asarray(triangles, np.int64)
  num_vertices = len(vertices)
  angles = _corner_angles(vertices, triangles)  # (F, 3)
  here = triangles
  nxt = np.roll(triangles, -1, axis=1)
  prv = np.roll(triangles, 1, axis=1)
  if weights == "cotangent":
    half_cot = 0.5 / np.tan(angles)  # angle at k is opposite edge (k+1, k+2)
    rows = np.concatenate([nxt.ravel(), prv.ravel()])
    cols = np.concatenate([prv.ravel(), nxt.ravel()])
    values = np.concatenate([half_cot.ravel(), half_cot.ravel()])
  elif weights == "mean_value":
    half_tan = np.tan(0.5 * angles)  # (F, 3) at corner k, shared by its two edges
    to_next = np.linalg.norm(vertices[nxt] - vertices[here], axis=-1)
    to_prev = np.linalg.norm(vertices[prv] - vertices[here], axis=-1)
    rows = np.concatenate([here.ravel(), here.ravel()])
    cols = np.concatenate([nxt.ravel(), prv.ravel()])
    values = np.concatenate([(half_tan / to_next).ravel(), (half_tan / to_prev).ravel()])
  elif weights == "uniform":
    rows = np.concatenate([here.ravel(), here.ravel()])
    cols = np.concatenate([nxt.ravel(), prv.ravel()])
    values = np.ones(len(rows))
    matrix = scipy.sparse.coo_matrix((values, (rows, cols)), shape=(num_vertices,) * 2).tocsr()
    matrix.data[:] = 1.0  # an interior edge appears twice; count it once
    return matrix
  else:
    raise ValueError(f"weights must be 'cotangent', 'mean_value' or 'uniform', got {weights!r}")
  return scipy.sparse.coo_matrix((values, (rows, cols)), shape=(num_vertices,) * 2).tocsr()


def _fill_holes(
  vertices: np.ndarray, triangles: np.ndarray, holes: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
  """Closes each hole with a fan around a new vertex at the hole's centroid."""
  new_vertices = [vertices]
  new_triangles = [triangles]
  next_id = len(vertices)
  for loop in holes:
    new_vertices.append(vertices[loop].mean(axis=0, keepdims=True))
    # The hole loop runs opposite to the missing triangles' orientation.
    fan = np.stack([np.roll(loop, -1), loop, np.full(len(loop), next_id)], axis=1)
    new_triangles.append(fan)
    next_id += 1
  return np.concatenate(new_vertices), np.concatenate(new_triangles)


def _square_boundary(
  vertices: np.ndarray, loop: np.ndarray, corners: tuple[int, int, int, int] | None
) -> np.ndarray:
  """Places an outer boundary loop on the unit square's perimeter by arc length."""
  points = vertices[loop]
  if corners is None:
    # Corners: the loop vertices nearest the bounding-box corners of the
    # boundary in its best-fit plane, taken in loop order.
    centred = points - points.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    planar = centred @ axes[:2].T  # (n, 2)
    low, high = planar.min(axis=0), planar.max(axis=0)
    box = np.array([[low[0], low[1]], [high[0], low[1]], [high[0], high[1]], [low[0], high[1]]])
    positions = sorted({int(np.argmin(np.linalg.norm(planar - corner, axis=1))) for corner in box})
    if len(positions) != 4:
      raise ValueError("could not pick 4 distinct boundary corners; pass `corners`")
  else:
    lookup = {int(v): k for k, v in enumerate(loop)}
    missing = [c for c in corners if c not in lookup]
    if missing:
      raise ValueError(f"corners {missing} are not on the outer boundary")
    positions = sorted(lookup[c] for c in corners)
  square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
  uv = np.zeros((len(loop), 2))
  for side in range(4):
    start, stop = positions[side], positions[(side + 1) % 4]
    indices = (np.arange(start, stop + (len(loop) if stop <= start else 0) + 1)) % len(loop)
    segment = points[indices]
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(segment, axis=0), axis=1))])
    fraction = arc / arc[-1]
    uv[indices] = square[side] + fraction[:, None] * (square[(side + 1) % 4] - square[side])
  return uv


def harmonic_uv(
  vertices: np.ndarray,
  triangles: np.ndarray,
  weights: str = "mean_value",
  corners: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
  """UV map of a disk-like mesh with its outer boundary on the unit square.

  The outer (longest) boundary loop is laid on the square's perimeter by arc
  length between four corner vertices; inner boundaries (eyes, mouth) are
  closed temporarily by fans so they stay free; interior vertices solve the
  linear system sum_j w_ij (u_j - u_i) = 0 (scipy sparse LU).

  Args:
    vertices: (V, 3) positions.
    triangles: (F, 3) ids, counter-clockwise seen from the front.
    weights: see `parameterisation_weights`. The default, mean-value weights,
      approximates the cotangent harmonic map and never flips a triangle;
      true cotangent weights turn negative at obtuse angles and flip 56 of
      the ICT face area's 18,460 triangles.
    corners: four outer-boundary vertex ids mapped to the square's corners,
      in loop order; by default the boundary's extreme points. A triangle
      whose three vertices land on one side of the square is flat, so pick
      corners where the mesh has them (e.g. a grid's corners).

  Returns:
    (V, 2) float64 UVs in [0, 1]^2, oriented so that triangles keep their
    winding (u grows to the right and v upwards for a frontal face).
  """
  vertices = np.asarray(vertices, np.float64)
  triangles = np.asarray(triangles, np.int64)
  if vertices.ndim != 2 or vertices.shape[1] != 3:
    raise ValueError(f"vertices must have shape (V, 3), got {vertices.shape}")
  loops = boundary_loops(triangles)
  if not loops:
    raise ValueError("the mesh is closed: harmonic_uv needs a disk-like mesh with a boundary")
  lengths = [
    np.linalg.norm(np.diff(vertices[np.r_[lp, lp[:1]]], axis=0), axis=1).sum() for lp in loops
  ]
  order = np.argsort(lengths)[::-1]
  outer, holes = loops[order[0]], [loops[k] for k in order[1:]]
  filled_vertices, filled_triangles = _fill_holes(vertices, triangles, holes)
  num_filled = len(filled_vertices)

  w = parameterisation_weights(filled_vertices, filled_triangles, weights)
  laplacian = w - scipy.sparse.diags(np.asarray(w.sum(axis=1)).ravel())
  uv = np.zeros((num_filled, 2))
  uv[outer] = _square_boundary(vertices, outer, corners)
  is_free = np.ones(num_filled, bool)
  is_free[outer] = False
  used = np.zeros(num_filled, bool)
  used[filled_triangles.ravel()] = True
  is_free &= used
  free = np.flatnonzero(is_free)
  laplacian = laplacian.tocsr()
  system = laplacian[free][:, free].tocsc()
  rhs = -laplacian[free][:, outer] @ uv[outer]
  uv[free] = scipy.sparse.linalg.splu(system).solve(rhs)
  uv = uv[: len(vertices)]
  # The square was traversed in an arbitrary rotational sense: mirror u if
  # most triangles came out clockwise.
  corners_uv = uv[triangles]  # (F, 3, 2)
  edge1 = corners_uv[:, 1] - corners_uv[:, 0]
  edge2 = corners_uv[:, 2] - corners_uv[:, 0]
  if np.sum(edge1[:, 0] * edge2[:, 1] - edge1[:, 1] * edge2[:, 0] < 0) > len(triangles) / 2:
    uv[:, 0] = 1.0 - uv[:, 0]
  return uv


def signed_uv_areas(uv: np.ndarray, triangle_uv: np.ndarray) -> np.ndarray:
  """Signed area of each triangle in UV space, (F,); negative means flipped."""
  corners = np.asarray(uv, np.float64)[np.asarray(triangle_uv)]  # (F, 3, 2)
  edge1 = corners[:, 1] - corners[:, 0]
  edge2 = corners[:, 2] - corners[:, 0]
  return 0.5 * (edge1[:, 0] * edge2[:, 1] - edge1[:, 1] * edge2[:, 0])


def texel_centres(size: tuple[int, int]) -> np.ndarray:
  """UV coordinates of texel centres of an (H, W) texture, (H, W, 2)."""
  height, width = size
  u = (np.arange(width) + 0.5) / width
  v = 1.0 - (np.arange(height) + 0.5) / height
  return np.stack(np.meshgrid(u, v, indexing="xy"), axis=-1)


def uv_texel_lookup(
  uv: np.ndarray, triangle_uv: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
  """For every texel centre, the UV triangle containing it and its barycentrics.

  Args:
    uv: (T, 2) texture coordinates.
    triangle_uv: (F, 3) uv ids of each triangle's corners.
    size: (H, W) of the texel grid.

  Returns:
    triangle_id (H, W) int32, -1 where no triangle covers the texel centre;
    barycentric (H, W, 3) float32 weights of the triangle's corners (zero
    outside the chart). A centre on a shared edge goes to one triangle.
  """
  uv = np.asarray(uv, np.float64)
  triangle_uv = np.asarray(triangle_uv, np.int64)
  height, width = size
  corners = uv[triangle_uv]  # (F, 3, 2)
  # Texel-space coordinates: column = u * W - 0.5, row = (1 - v) * H - 0.5.
  cols = corners[..., 0] * width - 0.5
  rows = (1.0 - corners[..., 1]) * height - 0.5
  col_lo = np.clip(np.ceil(cols.min(axis=1) - 1e-9), 0, width).astype(np.int64)
  col_hi = np.clip(np.floor(cols.max(axis=1) + 1e-9), -1, width - 1).astype(np.int64)
  row_lo = np.clip(np.ceil(rows.min(axis=1) - 1e-9), 0, height).astype(np.int64)
  row_hi = np.clip(np.floor(rows.max(axis=1) + 1e-9), -1, height - 1).astype(np.int64)
  box_w = np.maximum(col_hi - col_lo + 1, 0)
  box_h = np.maximum(row_hi - row_lo + 1, 0)
  counts = box_w * box_h  # (F,)
  triangle = np.repeat(np.arange(len(triangle_uv)), counts)  # (N,)
  offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
  col = col_lo[triangle] + offset % np.maximum(box_w[triangle], 1)
  row = row_lo[triangle] + offset // np.maximum(box_w[triangle], 1)
  point = np.stack([col, row], axis=-1).astype(np.float64)  # (N, 2)
  a = np.stack([cols[triangle, 0], rows[triangle, 0]], axis=-1)
  b = np.stack([cols[triangle, 1], rows[triangle, 1]], axis=-1)
  c = np.stack([cols[triangle, 2], rows[triangle, 2]], axis=-1)

  def cross(p, q, r):
    return (q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0])

  area = cross(a, b, c)
  valid = np.abs(area) > 1e-14
  safe_area = np.where(valid, area, 1.0)
  w0 = cross(point, b, c) / safe_area
  w1 = cross(a, point, c) / safe_area
  w2 = 1.0 - w0 - w1
  tolerance = -1e-7
  inside = valid & (w0 >= tolerance) & (w1 >= tolerance) & (w2 >= tolerance)
  triangle_id = np.full((height, width), -1, np.int32)
  barycentric = np.zeros((height, width, 3), np.float32)
  triangle_id[row[inside], col[inside]] = triangle[inside]
  weights = np.clip(np.stack([w0, w1, w2], axis=-1)[inside], 0.0, 1.0)
  barycentric[row[inside], col[inside]] = weights / weights.sum(axis=-1, keepdims=True)
  return triangle_id, barycentric
