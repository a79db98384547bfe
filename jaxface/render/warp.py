"""Inverse warping between views: the multi-view photo-consistency operation."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxface.render.texture import bilinear


def warp(
  image: jax.Array,
  depth: jax.Array,
  camera_source,
  camera_target,
  mask: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Warps the target view's image into the source view.

  Every source pixel centre is lifted to 3D with the source view's depth map
  and camera, projected into the target camera, and the target image is
  sampled there bilinearly. Differentiable w.r.t. the image, the depth and
  both cameras' parameters.

  Args:
    image: (H2, W2, C) image of the target view (view 2).
    depth: (H, W) camera depth of the source view (view 1), `-z_camera`.
    camera_source: PerspectiveCamera or OrthographicCamera of view 1.
    camera_target: camera of view 2 (same kinds).
    mask: optional (H, W) bool of source pixels with a valid depth.

  Returns:
    warped (H, W, C) target colours seen from view 1, and valid (H, W): the
    source pixel has a depth, and its point lands inside the target image,
    in front of the target camera.
  """
  image = jnp.asarray(image)
  depth = jnp.asarray(depth)
  if image.ndim != 3:
    raise ValueError(f"image must have shape (H, W, C), got {image.shape}")
  if depth.ndim != 2:
    raise ValueError(f"depth must have shape (H, W), got {depth.shape}")
  height, width = depth.shape
  rows, cols = jnp.meshgrid(
    jnp.arange(height, dtype=depth.dtype) + 0.5,
    jnp.arange(width, dtype=depth.dtype) + 0.5,
    indexing="ij",
  )
  pixels = jnp.stack([cols, rows], axis=-1).reshape(-1, 2)  # (H*W, 2)
  valid_depth = jnp.isfinite(depth) & (depth > 0)
  if mask is not None:
    valid_depth &= mask
  safe_depth = jnp.where(valid_depth, depth, 1.0).reshape(-1)
  points = camera_source.unproject(pixels, safe_depth)  # (H*W, 3)
  target_pixels, target_depth = camera_target.project(points)
  x, y = target_pixels[:, 0], target_pixels[:, 1]
  target_height, target_width = image.shape[:2]
  inside = (x >= 0) & (x <= target_width) & (y >= 0) & (y <= target_height) & (target_depth > 0)
  valid = valid_depth & inside.reshape(height, width)
  warped = bilinear(image, x, y).reshape(height, width, -1)
  return jnp.where(valid[..., None], warped, 0.0), jax.lax.stop_gradient(valid)
