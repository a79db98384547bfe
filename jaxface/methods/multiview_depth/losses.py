"""The losses of Shu et al. (FG 2020), eqs. 3-16, as functions of batches.

Norms the paper leaves implicit are written as means, so a term's size does
not depend on the image size or the number of coefficients: `||x||` of a
vector of coefficients is its mean absolute value, of an image the mean
over the pixels it is defined on. Landmarks are measured in percent of the
image side, so one percent of image misplacement weighs like one unit of
coefficient error.
"""

from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp

from jaxface.methods.multiview_depth.networks import Fit


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean of `values` (B, H, W[, C]) over the pixels of `mask` (B, H, W); 0 with no pixel."""
  mask = mask.astype(values.dtype)
  if values.ndim == mask.ndim + 1:
    values = values.mean(-1)
  return (values * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def coefficient_loss(fit: Fit, identity, expression, lambda_identity: float, lambda_expression):
  """Eq. 3, E_alpha = lambda1 ||a_id - a^_id|| + lambda2 ||a_exp - a^_exp|| (L1, mean).

  `expression` may be None (no expression label: the real-like images, lambda2 = 0).
  """
  loss = lambda_identity * jnp.abs(fit.identity - identity).mean()
  if expression is not None:
    loss = loss + lambda_expression * jnp.abs(fit.expression - expression).mean()
  return loss


def pair_consistency_loss(fit_1: Fit, fit_2: Fit) -> jax.Array:
  """Eq. 4, ||g_id(I1) - g_id(I2)|| + ||g_exp(I1) - g_exp(I2)|| (L1, mean)."""
  identity = jnp.abs(fit_1.identity - fit_2.identity).mean()
  if fit_1.expression.shape[-1] == 0:
    return identity
  return identity + jnp.abs(fit_1.expression - fit_2.expression).mean()


def landmark_loss(projected: jax.Array, target: jax.Array, image_size: int) -> jax.Array:
  """Eq. 5, ||Pi(R L3D + t) - L^2D||: mean Euclidean distance in percent of the image side."""
  distance = jnp.sqrt(jnp.sum((projected - target) ** 2, axis=-1) + 1e-12)  # (B, 68)
  return 100.0 * distance.mean() / image_size


def depth_loss(predicted, target, mask) -> jax.Array:
  """Eq. 8, ||D - D^|| on the ground-truth face region (normalised depths, L1)."""
  return masked_mean(jnp.abs(predicted - target), mask)


def normal_loss(predicted_normals, target_normals, valid) -> jax.Array:
  """Eq. 9, ||N_D - N_D^||: L1 of finite-difference normals where both are defined."""
  return masked_mean(jnp.abs(predicted_normals - target_normals), valid)


def three_dmm_regularizer(predicted, fit_depth, lambda_3dmm: float) -> jax.Array:
  """Eq. 10, lambda3 ||D - D_S||^2 over the whole image (D_S' is 0 off the 3DMM render).

  D_S is under `stop_gradient`: the term trains DepthNet only, never 3DMMNet.
  """
  return lambda_3dmm * jnp.mean((predicted - jax.lax.stop_gradient(fit_depth)) ** 2)


def photometric_error(image, warped, kind: str, ssim_weight: float) -> jax.Array:
  """Per-pixel (B, H, W) error of a warped view: "l1", or "l1_ssim" = w (1 - SSIM) / 2 + (1 - w) L1.

  SSIM over 3 x 3 windows (the structure term tolerates the camera's colour
  response, which shifts and scales intensities).
  """
  l1 = jnp.abs(image - warped).mean(-1)
  if kind == "l1":
    return l1
  similarity = dm_pix.ssim(image, warped, filter_size=3, filter_sigma=0.5, return_map=True)
  similarity = jnp.pad(similarity.mean(-1), ((0, 0), (1, 1), (1, 1)), mode="edge")  # (B, H, W)
  return ssim_weight * jnp.clip(1.0 - similarity, 0.0, 2.0) / 2.0 + (1.0 - ssim_weight) * l1


def view_synthesis_loss(error, suitability, occlusion, valid) -> jax.Array:
  """Eq. 14, ||h(I1) . M_o . (I1 - I(2->1))|| (eq. 11-12 with h = 1 or M_o = 1).

  The mean runs over the pixels that can be compared (`valid`: warped
  inside view 2, on the face; `occlusion`: seen by both views), counted
  without the suitability weight, so lowering C lowers the loss and only
  the regulariser (eq. 15) stops it.
  """
  region = valid & occlusion
  return masked_mean(suitability * error, region)


def suitability_regularizer(suitability, region, weight: float) -> jax.Array:
  """Eq. 15, ||C - 1||, weighted, over the same pixels as the photo loss (L1, mean)."""
  return weight * masked_mean(jnp.abs(suitability - 1.0), region)
