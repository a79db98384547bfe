"""The loss terms of the personalized face model, weighted as the supplement gives them.

E = lambda_ph E_ph + lambda_lm E_lm + lambda_pa E_pa + lambda_sd E_sd
  + lambda_bg E_bg + lambda_reg E_reg + lambda_gamma E_gamma,
with lambda_ph = 200, lambda_lm = 0.1, lambda_pa = 50, lambda_sd = 2.5,
lambda_bg = 1.5, lambda_reg = 1e-3, lambda_gamma = 0.02.

Only the supplement is available, which names the weights but not the
terms. What each symbol is taken to mean, and why:

- E_ph, photometric: mean over the face pixels (rendered and segmented as
  face) of the per-pixel RGB L2 norm, the robust L2,1 norm of MoFA and
  Deep3DFaceRecon. Its weight (200, the largest) fits a colour error of
  order 0.05.
- E_lm, landmark: mean squared distance of the 68 projected model
  landmarks to the detector's, in pixels of a 224-px image (the paper's
  input size), so that 0.1 balances about 0.05 of photometric error against
  a 7 px landmark error at any input size.
- E_pa, personalised (dynamic) albedo: the mean absolute value of the
  dynamic albedo maps dA_k. An expression changes the skin's colour only
  where it acts (flushing, wrinkle shading), so the maps should be sparse;
  L1 lets them be large where they are needed.
- E_sd, shape deformation: the mean squared magnitude (cm^2) of the
  per-vertex corrections dS_0 and dB_k, which keeps what the morphable
  model explains in its coefficients.
- E_bg, blendshape gradient: the mean squared difference of a correction
  dB_k across each mesh edge, relative to the edge length. It is zero when
  the personal blendshape B_k + dB_k has the generic one's local
  deformation (a constant shift), the deformation-transfer notion of
  keeping a blendshape's meaning (Sumner and Popovic 2004), so a personal
  "jawOpen" still opens the jaw.
- E_reg: the squared norm of the identity coefficients (a Gaussian prior
  on the unit-variance modes) and of the blendshape weights (a mild
  preference for the sparsest expression that explains the frame).
- E_gamma: the SH light's colour spread, the mean squared difference of
  each channel's coefficients from their mean over channels (the
  monochromatic-light prior of Tewari et al. 2018): γ is the usual symbol
  for SH lighting (Deep3DFaceRecon), and without the prior a tinted light
  and an albedo of the opposite tint explain the same pixels.

Every function is plain jnp and returns a scalar.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

#: The supplement's weights, by term name.
WEIGHTS = {
  "photometric": 200.0,
  "landmark": 0.1,
  "dynamic_albedo": 50.0,
  "shape_deformation": 2.5,
  "blendshape_gradient": 1.5,
  "coefficients": 1e-3,
  "light": 0.02,
}
#: The image size landmark distances are measured at (the paper's input size).
LANDMARK_REFERENCE_SIZE = 224.0


def photometric_loss(rendered: jax.Array, images: jax.Array, mask: jax.Array) -> jax.Array:
  """E_ph: rendered, images (N, H, W, 3); mask (N, H, W) bool face pixels -> mean RGB L2 norm."""
  norms = jnp.sqrt(jnp.sum(jnp.square(rendered - images), axis=-1) + 1e-12)  # (N, H, W)
  weights = mask.astype(norms.dtype)
  return jnp.sum(norms * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def landmark_loss(projected: jax.Array, targets: jax.Array, image_size: int) -> jax.Array:
  """E_lm: (N, 68, 2) pixels each -> mean squared distance in pixels of a 224-px image."""
  scale = LANDMARK_REFERENCE_SIZE / image_size
  return jnp.mean(jnp.sum(jnp.square(scale * (projected - targets)), axis=-1))


def dynamic_albedo_loss(dynamic_albedo: jax.Array) -> jax.Array:
  """E_pa: dA_k (..., Ke, Hu, Wu, 3) -> mean |dA_k|."""
  return jnp.mean(jnp.abs(dynamic_albedo))


def shape_deformation_loss(
  neutral_correction: jax.Array, blendshape_corrections: jax.Array, cm_per_unit
) -> jax.Array:
  """E_sd: dS_0 (..., V, 3) and dB_k (..., Ke, V, 3) in model units -> mean |d|^2 in cm^2.

  The mean over vertices of |dS_0|^2 plus the mean over blendshapes and vertices of |dB_k|^2.
  """
  squared = lambda x: jnp.mean(jnp.sum(jnp.square(cm_per_unit * x), axis=-1))
  return squared(neutral_correction) + squared(blendshape_corrections)


def blendshape_gradient_loss(
  blendshape_corrections: jax.Array, neutral: jax.Array, edges: jax.Array
) -> jax.Array:
  """E_bg: mean over blendshapes and edges (i, j) of |dB_k(i) - dB_k(j)|^2 / |x_i - x_j|^2.

  Args:
    blendshape_corrections: (..., Ke, V, 3) dB_k.
    neutral: (V, 3) the mesh whose edge lengths normalise the differences.
    edges: (E, 2) vertex ids.
  """
  length2 = jnp.sum(jnp.square(neutral[edges[:, 0]] - neutral[edges[:, 1]]), axis=-1)  # (E,)
  difference = (
    blendshape_corrections[..., edges[:, 0], :] - blendshape_corrections[..., edges[:, 1], :]
  )
  return jnp.mean(jnp.sum(jnp.square(difference), axis=-1) / jnp.maximum(length2, 1e-12))


def coefficient_loss(identity: jax.Array, weights: jax.Array) -> jax.Array:
  """E_reg: mean over users of |alpha|^2 plus mean over frames of |w|^2.

  identity (..., Ki), weights (..., Ke).
  """
  return jnp.mean(jnp.sum(jnp.square(identity), axis=-1)) + jnp.mean(
    jnp.sum(jnp.square(weights), axis=-1)
  )


def light_loss(sh: jax.Array) -> jax.Array:
  """E_gamma: SH light (..., 27), RGB-major (3, 9) -> mean squared spread over the channels."""
  colour = sh.reshape(*sh.shape[:-1], 3, 9)
  return jnp.mean(jnp.square(colour - colour.mean(axis=-2, keepdims=True)))


def total(terms: dict[str, jax.Array], weights: dict[str, float]) -> jax.Array:
  """The weighted sum of `terms` {name: value}; every name needs a weight."""
  missing = sorted(set(terms) - set(weights))
  if missing:
    raise ValueError(f"no weight for the loss terms {missing}")
  return sum(weights[name] * value for name, value in terms.items())
