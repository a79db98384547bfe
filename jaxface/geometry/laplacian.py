"""Mesh Laplacians as sparse operators that apply inside jitted losses.

A `LaplacianOperator` stores one weight per directed edge (i, j) and applies

    (L x)_i = sum_j w_ij (x_j - x_i)

with a gather and a `jax.ops.segment_sum`, so `L @ 1 = 0` holds exactly and
the operator is jit/vmap/grad-safe. The sign convention is libigl's
`cotmatrix`: off-diagonal entries are positive, the diagonal is negative, and
L is negative semi-definite. `to_scipy()` exports the same matrix for
reference solvers (UV parameterisation, tests).

The cotangent operator's weights are w_ij = (cot a_ij + cot b_ij) / 2 with
a_ij, b_ij the angles opposite edge (i, j) (Pinkall & Polthier 1993; Meyer et
al. 2003, without the area normalisation). Weights can be computed from traced
vertices (differentiable), or once from a template, which is what a mesh
regulariser such as the decoupled GAN's lambda4 * ||L v||^2 wants.
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
  data_fields=["rows", "cols", "weights"],
  meta_fields=["num_vertices"],
)
@dataclasses.dataclass(frozen=True)
class LaplacianOperator:
  """A sparse Laplacian, one weight per directed edge (a pytree; V is static).

  Attributes:
    rows: (E,) int32 receiving vertex i of each directed edge.
    cols: (E,) int32 sending vertex j.
    weights: (E,) float weight w_ij.
    num_vertices: V, static.
  """

  rows: jax.Array
  cols: jax.Array
  weights: jax.Array
  num_vertices: int

  def apply(self, values: jax.Array) -> jax.Array:
    """L @ values for values of shape (V, ...) or (B, V, ...) -> same shape.

    A leading batch axis is recognised when `values.shape[0] != V`.
    """
    if values.shape[0] == self.num_vertices:
      return self._apply_single(values)
    if values.ndim >= 2 and values.shape[1] == self.num_vertices:
      return jax.vmap(self._apply_single)(values)
    raise ValueError(
      f"values must have shape (V, ...) or (B, V, ...) with V={self.num_vertices}, "
      f"got {values.shape}"
    )

  def _apply_single(self, values: jax.Array) -> jax.Array:
    differences = values[self.cols] - values[self.rows]  # (E, ...)
    weights = self.weights.reshape(self.weights.shape + (1,) * (values.ndim - 1))
    return jax.ops.segment_sum(
      weights * differences, self.rows, num_segments=self.num_vertices
    )  # (V, ...)

  def to_scipy(self) -> scipy.sparse.csr_matrix:
    """The same operator as a (V, V) scipy CSR matrix (duplicate edges summed)."""
    rows = np.asarray(self.rows)
    cols = np.asarray(self.cols)
    weights = np.asarray(self.weights, dtype=np.float64)
    diagonal = -np.bincount(rows, weights=weights, minlength=self.num_vertices)
    matrix = scipy.sparse.coo_matrix(
      (
        np.concatenate([weights, diagonal]),
        (
          np.concatenate([rows, np.arange(self.num_vertices)]),
          np.concatenate([cols, np.arange(self.num_vertices)]),
        ),
      ),
      shape=(self.num_vertices, self.num_vertices),
    )
    return matrix.tocsr()


def cotangent_weights(vertices: jax.Array, triangles: jax.Array) -> jax.Array:
  """cot of the interior angle at every triangle corner. (F, 3) for (V, 3) input.

  Corner k's angle is opposite the edge (k+1, k+2). Degenerate triangles give
  0 rather than inf (cot is computed as dot / |cross| with a floor).
  """
  check_mesh(vertices, triangles)
  corners = triangle_corners(vertices, triangles)  # (F, 3, 3)
  to_next = jnp.roll(corners, -1, axis=-2) - corners  # (F, 3, 3)
  to_prev = jnp.roll(corners, 1, axis=-2) - corners  # (F, 3, 3)
  dot = jnp.sum(to_next * to_prev, axis=-1)  # (F, 3)
  cross = jnp.cross(to_next, to_prev)  # (F, 3, 3)
  sin_times_lengths = jnp.sqrt(jnp.maximum(jnp.sum(cross * cross, axis=-1), 1e-30))
  return dot / sin_times_lengths  # (F, 3)


def _opposite_edges(triangles: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Vertex ids (i, j) of the edge opposite each corner. Each (F, 3)."""
  return jnp.roll(triangles, -1, axis=-1), jnp.roll(triangles, 1, axis=-1)


def cotangent_laplacian(vertices: jax.Array, triangles: jax.Array) -> LaplacianOperator:
  """The cotangent Laplacian of a (V, 3) mesh, differentiable w.r.t. `vertices`.

  Matches libigl's `cotmatrix` (no mass matrix): for interior edges
  w_ij = (cot a + cot b) / 2, for boundary edges cot a / 2.
  """
  vertices = jnp.asarray(vertices)
  triangles = jnp.asarray(triangles, dtype=jnp.int32)
  half_cot = 0.5 * cotangent_weights(vertices, triangles)  # (F, 3)
  i, j = _opposite_edges(triangles)  # (F, 3) each
  rows = jnp.concatenate([i.reshape(-1), j.reshape(-1)])  # (6F,)
  cols = jnp.concatenate([j.reshape(-1), i.reshape(-1)])
  weights = jnp.concatenate([half_cot.reshape(-1), half_cot.reshape(-1)])
  return LaplacianOperator(rows, cols, weights, vertices.shape[0])


def unique_edges(triangles: np.ndarray) -> np.ndarray:
  """Undirected edges of a mesh, each once, as (E, 2) int with i < j (numpy)."""
  triangles = np.asarray(triangles)
  edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]], axis=0)
  return np.unique(np.sort(edges, axis=1), axis=0)


def uniform_laplacian(
  triangles: np.ndarray, num_vertices: int, normalize: bool = True
) -> LaplacianOperator:
  """The graph (umbrella) Laplacian: w_ij = 1, or 1/deg(i) when `normalize`.

  With `normalize`, (L x)_i is the mean of i's neighbours minus x_i, the form
  mesh-smoothness losses use. Topology is static, so `triangles` must be a
  concrete (numpy) array; the returned operator applies inside jit.
  """
  edges = unique_edges(np.asarray(triangles))  # (E, 2)
  rows = np.concatenate([edges[:, 0], edges[:, 1]]).astype(np.int32)
  cols = np.concatenate([edges[:, 1], edges[:, 0]]).astype(np.int32)
  weights = np.ones(rows.shape, np.float32)
  if normalize:
    degree = np.bincount(rows, minlength=num_vertices).astype(np.float32)
    weights = weights / np.maximum(degree, 1.0)[rows]
  return LaplacianOperator(jnp.asarray(rows), jnp.asarray(cols), jnp.asarray(weights), num_vertices)
