"""Inverse warping between views: the multi-view photo-consistency operation.

`warp` resamples view 2's image at the pixels where view 1's depth sends
view 1's pixels; `reproject` is that mapping itself (pixels and depth in
view 2); `covisibility` uses it on two depth maps of one surface to find the
pixels of view 1 that view 2 also sees (Shu et al. FG 2020, eq. 13: the
occlusion mask, from warping one view's depth into the other).
"""

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
  if image.ndim != 3:
    raise ValueError(f"image must have shape (H, W, C), got {image.shape}")
  target_pixels, _, valid = reproject(depth, camera_source, camera_target, image.shape[:2], mask)
  height, width = valid.shape
  warped = bilinear(image, target_pixels[..., 0].reshape(-1), target_pixels[..., 1].reshape(-1))
  warped = warped.reshape(height, width, -1)
  return jnp.where(valid[..., None], warped, 0.0), valid


def reproject(
  depth: jax.Array,
  camera_source,
  camera_target,
  target_size: tuple[int, int],
  mask: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Where each source pixel's surface point lands in the target view.

  Args:
    depth: (H, W) camera depth of the source view, `-z_camera`.
    camera_source, camera_target: Perspective or Orthographic cameras.
    target_size: (H2, W2) of the target image.
    mask: optional (H, W) bool of source pixels with a valid depth.

  Returns:
    pixels (H, W, 2) in the target image (x, y; centres at +0.5), the
    point's depth (H, W) in the target camera, and valid (H, W) bool (under
    `stop_gradient`): the source pixel has a positive finite depth and its
    point lands inside the target image, in front of the target camera.
  """
  depth = jnp.asarray(depth)
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
  target_height, target_width = int(target_size[0]), int(target_size[1])
  inside = (x >= 0) & (x <= target_width) & (y >= 0) & (y <= target_height) & (target_depth > 0)
  valid = jax.lax.stop_gradient(valid_depth & inside.reshape(height, width))
  return target_pixels.reshape(height, width, 2), target_depth.reshape(height, width), valid


def covisibility(
  depth_source: jax.Array,
  depth_target: jax.Array,
  camera_source,
  camera_target,
  threshold: float,
  mask_source: jax.Array | None = None,
  mask_target: jax.Array | None = None,
) -> jax.Array:
  """(H, W) bool: the source pixels whose surface point the target view also sees.

  Each source pixel is lifted with its depth, moved into the target camera
  and compared with the target's own depth map sampled there (bilinearly):
  the point is seen when the two depths differ by at most `threshold`; a
  nearer target surface means it is hidden (self-occlusion), and a point
  outside the target image or off its mask is not seen either.

  Args:
    depth_source: (H, W) depth of view 1; depth_target: (H2, W2) of view 2,
      the same surface (e.g. both rendered from one 3DMM fit).
    camera_source, camera_target: their cameras.
    threshold: the largest depth discrepancy still counted as the same
      point, in depth units.
    mask_source, mask_target: optional bool masks of pixels with a depth
      (default: depth > 0).

  Returns:
    (H, W) bool under `stop_gradient`.
  """
  depth_target = jnp.asarray(depth_target)
  if depth_target.ndim != 2:
    raise ValueError(f"depth_target must have shape (H, W), got {depth_target.shape}")
  if mask_target is None:
    mask_target = depth_target > 0
  pixels, depth_in_target, valid = reproject(
    depth_source, camera_source, camera_target, depth_target.shape, mask_source
  )
  x, y = pixels[..., 0].reshape(-1), pixels[..., 1].reshape(-1)
  # Near a silhouette plain bilinear sampling would mix in the background's 0: average only
  # the neighbours on the target mask (a normalised convolution); none of them: not seen.
  weight = mask_target.astype(depth_target.dtype)
  stacked = jnp.stack([depth_target * weight, weight], axis=-1)  # (H2, W2, 2)
  total, coverage = jnp.moveaxis(bilinear(stacked, x, y), -1, 0)
  sampled = jnp.where(coverage > 1e-3, total / jnp.maximum(coverage, 1e-3), jnp.inf)
  sampled = sampled.reshape(valid.shape)
  seen = valid & (jnp.abs(depth_in_target - sampled) <= threshold)
  return jax.lax.stop_gradient(seen)
