"""The method's geometry: normalised depth (eq. 7), cameras, 3DMM shapes and depth renders.

All functions are plain jnp over batches, jit/grad-safe. Depth is camera
depth (-z_camera, positive in front of the camera) in model units; the face
frame has its origin at the nose tip, so a view's camera-face distance
xi_V (eq. 7) is the depth of that origin, -t_z.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxface.geometry.camera import PerspectiveCamera
from jaxface.geometry.mesh import safe_normalize
from jaxface.methods.multiview_depth.networks import FaceArrays, Fit
from jaxface.render.render import depth_map

#: Clip planes of every depth render, in face heights (the face is about 4.4 away).
NEAR, FAR = 1.0, 20.0


def camera_face_distance(translation: jax.Array) -> jax.Array:
  """xi_V of eq. 7: (..., 3) world-to-camera translations -> (...) depth of the nose tip."""
  return -translation[..., 2]


def normalize_depth(depth, distance, mask, a: float, c: float) -> jax.Array:
  """Eq. 7, D' = a (D - xi_V) + c on the face, 0 elsewhere.

  Args:
    depth: (B, H, W) camera depth D; distance: (B,) xi_V; mask: (B, H, W) bool face region.
    a, c: the config's normalisation constants (a < 0: nearer is brighter).
  """
  normalized = a * (depth - distance[:, None, None]) + c
  return jnp.where(mask, normalized, 0.0)


def denormalize_depth(normalized, distance, a: float, c: float) -> jax.Array:
  """The inverse of eq. 7: D = (D' - c) / a + xi_V, (B, H, W) from (B, H, W) and (B,)."""
  return (normalized - c) / a + distance[:, None, None]


def cameras(rotation: jax.Array, translation: jax.Array, focal, image_size: int):
  """A batched PerspectiveCamera: rotation (B, 3, 3), translation (B, 3), focal scalar or (B,)."""
  batch = rotation.shape[0]
  focal = jnp.broadcast_to(jnp.asarray(focal, rotation.dtype), (batch,))
  return PerspectiveCamera(
    jnp.stack([focal, focal], axis=-1),
    jnp.full((batch, 2), image_size / 2.0, rotation.dtype),
    rotation,
    translation,
  )


def shapes(arrays: FaceArrays, identity: jax.Array, expression: jax.Array) -> jax.Array:
  """Eq. 1: (B, Ki), (B, Ke) -> (B, V, 3) vertices in the face frame."""
  return (
    arrays.mean
    + jnp.einsum("bk,kvc->bvc", identity, arrays.identity_basis)
    + jnp.einsum("bk,kvc->bvc", expression, arrays.expression_basis)
  )


def project_landmarks(arrays: FaceArrays, fit: Fit, focal, image_size: int) -> jax.Array:
  """Eq. 2 at the landmark vertices: (B, 68, 2) pixels of a fit."""
  vertices = shapes(arrays, fit.identity, fit.expression)[:, arrays.landmarks]  # (B, 68, 3)
  return cameras(fit.rotation, fit.translation, focal, image_size).project(vertices)[0]


def render_fit_depth(arrays: FaceArrays, fit: Fit, focal, image_size: int):
  """D_S of eq. 10: the z-buffered depth of each fitted mesh in its own camera.

  Returns depth (B, H, W) (0 off the mesh) and mask (B, H, W) bool.
  """
  vertices = shapes(arrays, fit.identity, fit.expression)
  camera = cameras(fit.rotation, fit.translation, focal, image_size)
  height = arrays.face_height

  def one(args):
    v, cam = args
    return depth_map(
      v, arrays.triangles, cam, (image_size, image_size), near=NEAR * height, far=FAR * height
    )

  return jax.lax.map(one, (vertices, camera))


def depth_normals(depth: jax.Array, mask: jax.Array, focal, image_size: int):
  """Normals from a depth map by finite differences (eq. 9's N_D), in the camera frame.

  Each pixel is lifted to its camera-frame point; the normal is the cross
  product of the forward differences to the right and downward neighbours.

  Args:
    depth: (B, H, W) camera depth; mask: (B, H, W) bool where it is defined.
    focal: the focal length in pixels; image_size: H = W.

  Returns:
    normals (B, H, W, 3), and valid (B, H, W) bool: the pixel and both
    neighbours lie on the mask (the last row and column are never valid).
  """
  size = image_size
  centres = jnp.arange(size, dtype=depth.dtype) + 0.5 - size / 2.0
  x = centres[None, None, :] / focal * depth
  y = -centres[None, :, None] / focal * depth
  points = jnp.stack([x, y, -depth], axis=-1)  # (B, H, W, 3)
  right = points[:, :-1, 1:] - points[:, :-1, :-1]
  down = points[:, 1:, :-1] - points[:, :-1, :-1]
  normals = safe_normalize(jnp.cross(down, right))  # towards the camera (+z)
  valid = mask[:, :-1, :-1] & mask[:, :-1, 1:] & mask[:, 1:, :-1]
  pad = ((0, 0), (0, 1), (0, 1))
  return jnp.pad(normals, (*pad, (0, 0))), jnp.pad(valid, pad)
