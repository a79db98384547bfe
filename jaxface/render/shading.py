"""Second-order spherical-harmonics lighting and Lambertian image formation.

Convention (Deep3DFaceRecon's, which 3DFaceFill also uses): 27 coefficients
= 3 colour channels x 9 SH bands, stored channel-major `(R0..R8, G0..G8,
B0..B8)`. The 9 basis functions of a unit normal n = (x, y, z), with the
Lambertian kernel's band factors a_l already folded in, are

    a0 c0,  -a1 c1 y,  a1 c1 z,  -a1 c1 x,
    a2 c2 x y,  -a2 c2 y z,  a2 c2 (3 z^2 - 1) / (2 sqrt 3),  -a2 c2 x z,
    a2 c2 (x^2 - y^2) / 2

with a0 = pi, a1 = 2 pi / sqrt 3, a2 = 2 pi / sqrt 8, c0 = 1 / sqrt(4 pi),
c1 = sqrt 3 / sqrt(4 pi), c2 = 3 sqrt 5 / sqrt(12 pi). Irradiance per
channel is `basis(n) . gamma_channel`, and the image is albedo * irradiance.
Note that a1 and a2 are sqrt(3) and sqrt(8) times the exact Lambertian
kernel coefficients (2 pi / 3, pi / 4; Ramamoorthi & Hanrahan 2001), so a
band's coefficient means a different light intensity than in the exact
convolution; jaxface keeps the convention so that coefficients move between
the codebases unchanged (tests/render/test_shading.py checks the relation).
Deep3DFaceRecon's network adds 0.8 to each channel's DC coefficient before
shading; jaxface takes coefficients as they are (pass that offset in
yourself to reproduce its lighting). Normals are in whatever frame the
lighting is defined in; `render` uses the camera frame, as both papers do.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

NUM_SH_COEFFICIENTS = 27

_A0, _A1, _A2 = math.pi, 2 * math.pi / math.sqrt(3.0), 2 * math.pi / math.sqrt(8.0)
_C0 = 1 / math.sqrt(4 * math.pi)
_C1 = math.sqrt(3.0) / math.sqrt(4 * math.pi)
_C2 = 3 * math.sqrt(5.0) / math.sqrt(12 * math.pi)

#: Irradiance of a unit normal under the DC coefficient alone: a0 * c0.
DC_FACTOR = _A0 * _C0


def sh_basis(normals: jax.Array) -> jax.Array:
  """The 9 Lambertian-convolved SH basis values of unit normals. (..., 3) -> (..., 9)."""
  x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
  return jnp.stack(
    [
      jnp.full_like(x, _A0 * _C0),
      -_A1 * _C1 * y,
      _A1 * _C1 * z,
      -_A1 * _C1 * x,
      _A2 * _C2 * x * y,
      -_A2 * _C2 * y * z,
      _A2 * _C2 * 0.5 / math.sqrt(3.0) * (3 * z * z - 1),
      -_A2 * _C2 * x * z,
      _A2 * _C2 * 0.5 * (x * x - y * y),
    ],
    axis=-1,
  )


def sh_irradiance(normals: jax.Array, coefficients: jax.Array) -> jax.Array:
  """RGB irradiance for normals (..., 3) and coefficients (..., 27) -> (..., 3).

  Coefficients broadcast against the normals' leading dimensions, e.g.
  normals (B, H, W, 3) with coefficients (B, 1, 1, 27) or (27,).
  """
  coefficients = jnp.asarray(coefficients)
  if coefficients.shape[-1] != NUM_SH_COEFFICIENTS:
    raise ValueError(f"SH coefficients must have shape (..., 27), got {coefficients.shape}")
  gamma = coefficients.reshape(*coefficients.shape[:-1], 3, 9)  # channel-major
  return jnp.einsum("...k,...ck->...c", sh_basis(normals), gamma)


def lambertian(albedo: jax.Array, normals: jax.Array, coefficients: jax.Array) -> jax.Array:
  """Lambertian image formation under SH lighting: albedo * irradiance. (..., 3)."""
  return albedo * sh_irradiance(normals, coefficients)


def dc_only_coefficients(intensity: float | jax.Array = 1.0) -> jax.Array:
  """(27,) coefficients of uniform white light whose irradiance is `intensity`."""
  gamma = jnp.zeros((3, 9)).at[:, 0].set(jnp.asarray(intensity) / DC_FACTOR)
  return gamma.reshape(NUM_SH_COEFFICIENTS)
