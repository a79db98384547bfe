"""Mesh Laplacians as sparse operators that apply inside jitted losses.

A `LaplacianOperator` applies

    (L x)_i = sum_j w_ij (x_j - x_i)

so `L @ 1 = 0` holds exactly. The sign convention is libigl's `cotmatrix`:
off-diagonal entries are positive, the diagonal is negative, and the
cotangent Laplacian is negative semi-definite. `to_scipy()` exports the same
matrix for reference solvers and tests.

Layout: each vertex's neighbours sit in a padded table `neighbors (V, K)`
(K = the largest valence; padding points at the vertex itself with weight 0),
so applying L is K row-gathers and multiply-adds. The weights are summed into
that table from any COO list with a `segment_sum`, which is how traced
cotangent weights stay differentiable. The gradient w.r.t. the values goes
through a transposed table (a custom VJP), because the automatic transpose
of a gather is a scatter-add, which is 2-10x slower on CPU and TPU.

The cotangent weights are w_ij = (cot a_ij + cot b_ij) / 2 with a_ij, b_ij the
angles opposite edge (i, j) (Pinkall & Polthier 1993; Meyer et al. 2003,
without the area normalisation). Weights can come from traced vertices
(differentiable) or once from a template, the form of the decoupled GAN's
lambda4 * ||L v||^2 regulariser. Topology is static: triangles must be
concrete arrays.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse

from jaxface.geometry.mesh import check_mesh, triangle_corners


@functools.partial(
  jax.tree_util.register_dataclass,
  data_fields=["neighbors", "weights", "transpose_neighbors", "transpose_slots"],
  meta_fields=["num_vertices"],
)
@dataclasses.dataclass(frozen=True)
class LaplacianOperator:
  """A sparse Laplacian in padded neighbour-table form (a pytree; V is static).

  Attributes:
    neighbors: (V, K) int32 neighbour ids; padding repeats the row's vertex.
    weights: (V, K) float w_ij of each slot; 0 on padding.
    transpose_neighbors: (V, Kt) int32, for vertex j the vertices i with j
      among their neighbours (padding repeats j).
    transpose_slots: (V, Kt) int32 flat index into `weights` of slot (i, j);
      padding points one past the end (a zero weight).
    num_vertices: V.
  """

  neighbors: jax.Array
  weights: jax.Array
  transpose_neighbors: jax.Array
  transpose_slots: jax.Array
  num_vertices: int

  def apply(self, values: jax.Array) -> jax.Array:
    """L @ values for values of shape (V, ...) or (B, V, ...) -> same shape.

    A leading batch axis is recognised when `values.shape[0] != V`.
    """
    if values.shape[0] == self.num_vertices:
      grouped = values.reshape(self.num_vertices, -1)  # (V, C)
    elif values.ndim >= 2 and values.shape[1] == self.num_vertices:
      grouped = values.reshape(values.shape[0], self.num_vertices, -1)  # (B, V, C)
    else:
      raise ValueError(
        f"values must have shape (V, ...) or (B, V, ...) with V={self.num_vertices}, "
        f"got {values.shape}"
      )
    out = _apply_table(
      self.weights.astype(values.dtype),
      grouped,
      self.neighbors,
      self.transpose_neighbors,
      self.transpose_slots,
    )
    return out.reshape(values.shape)

  def to_scipy(self) -> scipy.sparse.csr_matrix:
    """The same operator as a (V, V) scipy CSR matrix."""
    num, width = np.shape(self.neighbors)
    rows = np.repeat(np.arange(num), width)
    cols = np.asarray(self.neighbors).ravel()
    weights = np.asarray(self.weights, np.float64).ravel()
    diagonal = -weights.reshape(num, width).sum(axis=1)
    matrix = scipy.sparse.coo_matrix(
      (
        np.concatenate([weights, diagonal]),
        (np.concatenate([rows, np.arange(num)]), np.concatenate([cols, np.arange(num)])),
      ),
      shape=(num, num),
    ).tocsr()
    matrix.eliminate_zeros()
    return matrix


def _gather_differences(weights: jax.Array, values: jax.Array, neighbors: jax.Array) -> jax.Array:
  """sum_k weights[:, k] * (values[..., neighbors[:, k], :] - values) for values (..., V, C).

  K gathers along the vertex axis, never a transpose: XLA fuses producers
  into gathers, and a transposed producer turns them into strided reads.
  One gather per step of a `lax.scan` rather than K unrolled: unrolled, XLA:CPU
  fused the K gathered arrays with the loss that consumed them into one slow
  reduction, and the decoupled GAN's iteration took 13% longer
  (`benchmarks/decoupled_gan.py`). Differences rather than a separate
  diagonal term keep L @ 1 exactly 0.
  """

  def add_neighbour(total, column):
    weight, neighbour = column  # (V,), (V,) of one slot k
    gathered = jnp.take(values, neighbour, axis=-2)
    return total + weight[:, None] * (gathered - values), None

  total, _ = jax.lax.scan(add_neighbour, jnp.zeros_like(values), (weights.T, neighbors.T))
  return total


@jax.custom_vjp
def _apply_table(weights, values, neighbors, transpose_neighbors, transpose_slots):
  """(L x) for a (V, C) or (B, V, C) array; see LaplacianOperator."""
  return _gather_differences(weights, values, neighbors)


def _apply_table_forward(weights, values, neighbors, transpose_neighbors, transpose_slots):
  # symbolic_zeros: each argument arrives as a CustomVJPPrimal that says whether it is
  # differentiated. The weights' cotangent (K gathers and reductions over the batch) cost
  # 4x the rest of the backward pass, so it is computed only when the weights are traced.
  arrays = [a.value for a in (weights, values, neighbors, transpose_neighbors, transpose_slots)]
  out = _apply_table(*arrays)
  weights_value, values_value = arrays[0], arrays[1]
  kept_values = values_value if weights.perturbed else None  # needed only for d/dweights
  return out, (weights_value, kept_values, *arrays[2:])


def _apply_table_backward(residuals, cotangent):
  weights, values, neighbors, transpose_neighbors, transpose_slots = residuals
  padded = jnp.concatenate([weights.reshape(-1), jnp.zeros((1,), weights.dtype)])
  transpose_weights = padded[transpose_slots]  # (V, Kt): w_ij seen from j
  # (L^T g)_j = sum_i w_ij g_i - (sum_k w_jk) g_j
  values_cotangent = _gather_differences(transpose_weights, cotangent, transpose_neighbors)
  values_cotangent += (jnp.sum(transpose_weights, axis=1) - jnp.sum(weights, axis=1))[
    :, None
  ] * cotangent
  if values is None:  # the weights are constants
    return None, values_cotangent, None, None, None
  other_axes = tuple(a for a in range(values.ndim) if a != values.ndim - 2)
  weights_cotangent = jnp.stack(
    [
      jnp.sum(cotangent * (jnp.take(values, neighbors[:, k], axis=-2) - values), axis=other_axes)
      for k in range(neighbors.shape[1])
    ],
    axis=1,
  )  # (V, K)
  return weights_cotangent, values_cotangent, None, None, None


_apply_table.defvjp(_apply_table_forward, _apply_table_backward, symbolic_zeros=True)


def from_coo(
  rows: np.ndarray, cols: np.ndarray, weights: jax.Array, num_vertices: int
) -> LaplacianOperator:
  """An operator from directed entries (i, j, w_ij); duplicate (i, j) entries add up.

  `rows`/`cols` are the static structure (numpy); `weights` may be traced.
  Entries with i == j are ignored (the diagonal is implied).
  """
  rows = np.asarray(rows, np.int64)
  cols = np.asarray(cols, np.int64)
  if rows.shape != cols.shape or rows.shape != np.shape(weights):
    raise ValueError(f"rows {rows.shape}, cols {cols.shape} and weights {np.shape(weights)} differ")
  off_diagonal = rows != cols
  keys = rows * num_vertices + cols
  slot_keys, entry_slot = np.unique(keys[off_diagonal], return_inverse=True)
  slot_rows, slot_cols = slot_keys // num_vertices, slot_keys % num_vertices
  counts = np.bincount(slot_rows, minlength=num_vertices)
  width = max(int(counts.max(initial=0)), 1)
  rank = np.arange(len(slot_keys)) - np.repeat(np.cumsum(counts) - counts, counts)
  table_position = slot_rows * width + rank
  neighbors = np.repeat(np.arange(num_vertices)[:, None], width, axis=1)
  neighbors.reshape(-1)[table_position] = slot_cols

  order = np.lexsort((slot_rows, slot_cols))  # slots grouped by their column j
  transpose_counts = np.bincount(slot_cols, minlength=num_vertices)
  transpose_width = max(int(transpose_counts.max(initial=0)), 1)
  transpose_rank = np.arange(len(order)) - np.repeat(
    np.cumsum(transpose_counts) - transpose_counts, transpose_counts
  )
  transpose_position = slot_cols[order] * transpose_width + transpose_rank
  transpose_neighbors = np.repeat(np.arange(num_vertices)[:, None], transpose_width, axis=1)
  transpose_neighbors.reshape(-1)[transpose_position] = slot_rows[order]
  transpose_slots = np.full(num_vertices * transpose_width, num_vertices * width, np.int64)
  transpose_slots[transpose_position] = table_position[order]

  entry_weights = jnp.asarray(weights)[np.flatnonzero(off_diagonal)]
  table = jax.ops.segment_sum(
    entry_weights, jnp.asarray(table_position[entry_slot]), num_segments=num_vertices * width
  )
  return LaplacianOperator(
    neighbors=jnp.asarray(neighbors, jnp.int32),
    weights=table.reshape(num_vertices, width),
    transpose_neighbors=jnp.asarray(transpose_neighbors, jnp.int32),
    transpose_slots=jnp.asarray(transpose_slots.reshape(num_vertices, transpose_width), jnp.int32),
    num_vertices=num_vertices,
  )


def cotangent_weights(vertices: jax.Array, triangles: jax.Array) -> jax.Array:
  """cot of the interior angle at every triangle corner. (F, 3) for (V, 3) input.

  Corner k's angle is opposite the edge (k+1, k+2). Degenerate triangles give
  a large finite value rather than inf (|cross| has a floor).
  """
  check_mesh(vertices, triangles)
  corners = triangle_corners(vertices, triangles)  # (F, 3, 3)
  to_next = jnp.roll(corners, -1, axis=-2) - corners  # (F, 3, 3)
  to_prev = jnp.roll(corners, 1, axis=-2) - corners  # (F, 3, 3)
  dot = jnp.sum(to_next * to_prev, axis=-1)  # (F, 3)
  cross = jnp.cross(to_next, to_prev)  # (F, 3, 3)
  sin_times_lengths = jnp.sqrt(jnp.maximum(jnp.sum(cross * cross, axis=-1), 1e-30))
  return dot / sin_times_lengths  # (F, 3)


def cotangent_laplacian(vertices: jax.Array, triangles: np.ndarray) -> LaplacianOperator:
  """The cotangent Laplacian of a (V, 3) mesh, differentiable w.r.t. `vertices`.

  Matches libigl's `cotmatrix` (no mass matrix): w_ij = (cot a + cot b) / 2
  for interior edges, cot a / 2 for boundary edges. `triangles` (F, 3) must
  be concrete (numpy or a non-traced array).
  """
  vertices = jnp.asarray(vertices)
  triangles = _concrete_triangles(triangles)
  half_cot = 0.5 * cotangent_weights(vertices, jnp.asarray(triangles))  # (F, 3)
  i, j = np.roll(triangles, -1, axis=1), np.roll(triangles, 1, axis=1)  # edge opposite each corner
  rows = np.concatenate([i.ravel(), j.ravel()])
  cols = np.concatenate([j.ravel(), i.ravel()])
  weights = jnp.concatenate([half_cot.reshape(-1), half_cot.reshape(-1)])
  return from_coo(rows, cols, weights, vertices.shape[0])


def _concrete_triangles(triangles) -> np.ndarray:
  if isinstance(triangles, jax.core.Tracer):
    raise ValueError(
      "triangles must be concrete (mesh topology is static): build the Laplacian "
      "outside jit, or pass the triangles as a numpy array"
    )
  triangles = np.asarray(triangles, np.int64)
  if triangles.ndim != 2 or triangles.shape[1] != 3:
    raise ValueError(f"triangles must have shape (F, 3), got {triangles.shape}")
  return triangles


def unique_edges(triangles: np.ndarray) -> np.ndarray:
  """Undirected edges of a mesh, each once, as (E, 2) int with i < j (numpy)."""
  triangles = _concrete_triangles(triangles)
  edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]], axis=0)
  return np.unique(np.sort(edges, axis=1), axis=0)


def uniform_laplacian(
  triangles: np.ndarray, num_vertices: int, normalize: bool = True
) -> LaplacianOperator:
  """The graph (umbrella) Laplacian: w_ij = 1, or 1/deg(i) when `normalize`.

  With `normalize`, (L x)_i is the mean of i's neighbours minus x_i, the form
  mesh-smoothness losses use (not symmetric; its VJP uses the transpose).
  """
  edges = unique_edges(triangles)  # (E, 2)
  rows = np.concatenate([edges[:, 0], edges[:, 1]])
  cols = np.concatenate([edges[:, 1], edges[:, 0]])
  weights = np.ones(rows.shape, np.float32)
  if normalize:
    degree = np.bincount(rows, minlength=num_vertices).astype(np.float32)
    weights = weights / np.maximum(degree, 1.0)[rows]
  return from_coo(rows, cols, jnp.asarray(weights), num_vertices)
