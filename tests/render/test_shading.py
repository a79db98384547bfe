"""SH shading against numerical integration of the Lambertian kernel (Funk-Hecke)."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxface.render import dc_only_coefficients, lambertian, sh_basis, sh_irradiance
from jaxface.render.shading import DC_FACTOR

_BAND = np.array([0, 1, 1, 1, 2, 2, 2, 2, 2])
_KERNEL = np.array([np.pi, 2 * np.pi / np.sqrt(3), 2 * np.pi / np.sqrt(8)])


def _sphere_quadrature(n_theta=200, n_phi=400):
  theta = (np.arange(n_theta) + 0.5) * np.pi / n_theta
  phi = (np.arange(n_phi) + 0.5) * 2 * np.pi / n_phi
  t, p = np.meshgrid(theta, phi, indexing="ij")
  directions = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(
    -1, 3
  )
  weights = (np.sin(t) * (np.pi / n_theta) * (2 * np.pi / n_phi)).reshape(-1)
  return directions, weights


def test_basis_is_the_lambertian_convolution_of_real_sh():
  # Light L(w) = Y_k(w) (the basis without its factor a_l) has irradiance
  # E(n) = integral of Y_k(w) max(0, n.w) dw = A_l Y_k(n) with the exact
  # kernel A = (pi, 2 pi / 3, pi / 4) (Ramamoorthi & Hanrahan 2001).
  # Deep3DFaceRecon's a_l are sqrt(3) and sqrt(8) times A_1 and A_2; the
  # basis keeps its convention, so the bands differ from the exact
  # convolution by exactly those factors.
  directions, weights = _sphere_quadrature()
  raw = np.asarray(sh_basis(jnp.asarray(directions))) / _KERNEL[_BAND]  # Y_k(w)
  normals = np.random.default_rng(0).standard_normal((6, 3))
  normals /= np.linalg.norm(normals, axis=1, keepdims=True)
  cosine = np.maximum(normals @ directions.T, 0.0)  # (6, D)
  numeric = (cosine * weights) @ raw  # (6, 9)
  convention = np.array([1.0, np.sqrt(3.0), np.sqrt(8.0)])[_BAND]
  np.testing.assert_allclose(
    numeric * convention, np.asarray(sh_basis(jnp.asarray(normals))), atol=3e-3
  )
  # The Y_k are orthonormal over the sphere.
  gram = (raw * weights[:, None]).T @ raw
  np.testing.assert_allclose(gram, np.eye(9), atol=2e-3)


def test_dc_only_lighting_is_albedo_times_a_constant():
  rng = np.random.default_rng(1)
  albedo = rng.uniform(0, 1, (5, 7, 3))
  normals = rng.standard_normal((5, 7, 3))
  normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
  coefficients = np.zeros(27)
  coefficients[[0, 9, 18]] = [0.5, 0.7, 0.9]
  image = np.asarray(
    lambertian(jnp.asarray(albedo), jnp.asarray(normals), jnp.asarray(coefficients))
  )
  np.testing.assert_allclose(image, albedo * DC_FACTOR * np.array([0.5, 0.7, 0.9]), rtol=1e-5)
  white = np.asarray(sh_irradiance(jnp.asarray(normals), dc_only_coefficients(0.8)))
  np.testing.assert_allclose(white, 0.8, rtol=1e-5)


def test_channel_major_layout():
  normal = jnp.array([[0.0, 0.0, 1.0]])
  coefficients = np.zeros(27)
  coefficients[9 + 2] = 1.0  # green channel, band 2 (z)
  irradiance = np.asarray(sh_irradiance(normal, jnp.asarray(coefficients)))[0]
  assert irradiance[0] == 0 and irradiance[2] == 0 and irradiance[1] > 0


def test_bad_coefficients_raise():
  with pytest.raises(ValueError, match="27"):
    sh_irradiance(jnp.zeros((2, 3)), jnp.zeros(9))
