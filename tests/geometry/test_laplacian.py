"""Cotangent and uniform Laplacians against libigl, scipy and finite differences."""

import chex
import igl
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse

from jaxface.geometry import cotangent_laplacian, uniform_laplacian
from tests.helpers import grid_mesh


def _relative_difference(a: scipy.sparse.spmatrix, b: scipy.sparse.spmatrix) -> float:
  return abs(a - b).max() / abs(b).max()


def test_cotangent_matches_libigl_on_ict_face(ict_arrays):
  vertices, triangles = ict_arrays["vertices"], ict_arrays["triangles"]
  reference = igl.cotmatrix(vertices.astype(np.float64), triangles.astype(np.int64))
  assert reference.shape == (9409, 9409)
  ours = cotangent_laplacian(vertices, triangles).to_scipy()
  assert _relative_difference(ours, reference) < 1e-5
  assert ours.nnz == reference.nnz


def test_cotangent_matches_libigl_on_procedural(procedural):
  vertices = np.asarray(procedural.vertices, np.float64)
  triangles = np.asarray(procedural.triangles, np.int64)
  reference = igl.cotmatrix(vertices, triangles)
  assert _relative_difference(cotangent_laplacian(vertices, triangles).to_scipy(), reference) < 1e-5


def test_apply_equals_matrix_and_annihilates_constants(procedural):
  operator = cotangent_laplacian(procedural.vertices, procedural.triangles)
  values = np.random.default_rng(0).standard_normal((procedural.num_vertices, 3)).astype(np.float32)
  applied = jax.jit(lambda op, x: op.apply(x))(operator, values)
  np.testing.assert_allclose(applied, operator.to_scipy() @ values, rtol=1e-4, atol=1e-3)
  ones = jnp.ones((procedural.num_vertices,))
  np.testing.assert_array_equal(operator.apply(ones), np.zeros(procedural.num_vertices))
  batched = operator.apply(jnp.stack([values, 2 * values]))
  chex.assert_shape(batched, (2, procedural.num_vertices, 3))
  np.testing.assert_allclose(batched[1], 2 * applied, rtol=1e-5, atol=1e-4)


def test_gradient_of_laplacian_energy_matches_finite_differences():
  vertices, triangles = grid_mesh(5, 6, size=2.0)
  rng = np.random.default_rng(1)
  vertices = vertices + 0.15 * rng.standard_normal(vertices.shape)
  with jax.enable_x64(True):
    template = cotangent_laplacian(jnp.asarray(vertices), triangles)

    def energy_fixed(v):  # the decoupled GAN's form: L from the template
      return jnp.sum(template.apply(v) ** 2)

    def energy_own(v):  # weights recomputed from v: differentiates through the cotangents
      return jnp.sum(cotangent_laplacian(v, triangles).apply(v) ** 2)

    for energy in (jax.jit(energy_fixed), jax.jit(energy_own)):
      point = jnp.asarray(vertices + 0.05 * rng.standard_normal(vertices.shape))
      gradient = np.asarray(jax.grad(energy)(point))
      step = 1e-6
      numeric = np.zeros_like(gradient)
      for index in np.ndindex(gradient.shape):
        offset = np.zeros_like(gradient)
        offset[index] = step
        numeric[index] = (energy(point + offset) - energy(point - offset)) / (2 * step)
      np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-7)


def test_uniform_laplacian_matches_scipy_graph_laplacian():
  vertices, triangles = grid_mesh(4, 5)
  num = len(vertices)
  adjacency = scipy.sparse.lil_matrix((num, num))
  for a, b, c in triangles:
    for i, j in ((a, b), (b, c), (c, a)):
      adjacency[i, j] = adjacency[j, i] = 1.0
  adjacency = adjacency.tocsr()
  degree = np.asarray(adjacency.sum(axis=1)).ravel()
  expected_plain = adjacency - scipy.sparse.diags(degree)
  expected_mean = scipy.sparse.diags(1.0 / degree) @ adjacency - scipy.sparse.identity(num)
  plain = uniform_laplacian(triangles, num, normalize=False).to_scipy()
  mean = uniform_laplacian(triangles, num).to_scipy()
  assert abs(plain - expected_plain).max() == 0
  assert abs(mean - expected_mean).max() < 1e-6
  values = np.random.default_rng(2).standard_normal((num, 3)).astype(np.float32)
  np.testing.assert_allclose(
    uniform_laplacian(triangles, num).apply(values), expected_mean @ values, atol=1e-5
  )


def test_vector_jacobian_products_use_the_transpose():
  # The normalised uniform Laplacian is not symmetric, so its VJP must be L^T g.
  vertices, triangles = grid_mesh(5, 7)
  num = len(vertices)
  operator = uniform_laplacian(triangles, num)
  matrix = operator.to_scipy().toarray()
  rng = np.random.default_rng(3)
  values = jnp.asarray(rng.standard_normal((2, num, 3)), jnp.float32)  # batched (B, V, 3)
  cotangent = rng.standard_normal((2, num, 3)).astype(np.float32)
  _, vjp = jax.vjp(operator.apply, values)
  (gradient,) = vjp(jnp.asarray(cotangent))
  expected = np.einsum("ij,bic->bjc", matrix, cotangent)  # L^T g per batch item
  np.testing.assert_allclose(gradient, expected, rtol=1e-5, atol=1e-5)
  # And the weights' cotangent: d/dw_ij of <g, L x> is <g_i, x_j - x_i>.
  flat_values = values[0]

  def pairing(op):
    return jnp.sum(jnp.asarray(cotangent[0]) * op.apply(flat_values))

  weights_gradient = jax.grad(pairing, allow_int=True)(operator).weights
  neighbors = np.asarray(operator.neighbors)
  expected_weights = np.einsum(
    "vkc,vc->vk",
    np.asarray(flat_values)[neighbors] - np.asarray(flat_values)[:, None],
    cotangent[0],
  )
  np.testing.assert_allclose(weights_gradient, expected_weights, rtol=1e-4, atol=1e-4)


def test_triangles_must_be_concrete():
  vertices, triangles = grid_mesh(3, 3)
  with pytest.raises(ValueError, match="concrete"):
    jax.jit(lambda t: cotangent_laplacian(vertices, t).weights)(triangles)
