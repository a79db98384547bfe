"""Rotations (Euler angles, matrices, quaternions) and similarity transforms.

Conventions, used everywhere in jaxface:
- Euler angles are `(pitch, yaw, roll)` in radians about the x, y and z axes
  of a right-handed frame (y up, +z towards the viewer for a frontal face),
  applied in that order: `R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`. Positive yaw
  turns the nose towards the face's own left (+x); positive pitch turns the
  nose down; positive roll turns +x towards +y.
- Quaternions are `(w, x, y, z)`, scalar first, unit length; `q` and `-q`
  are the same rotation and conversions return `w >= 0`.
- Points are row vectors on the left of nothing: `p' = p @ R.T + t`, i.e.
  `R @ p + t` for column vectors.
All functions broadcast over leading batch dimensions and are jit/vmap/grad-safe.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _check_last(x: jax.Array, size: int, name: str) -> None:
  if x.shape[-1] != size:
    raise ValueError(f"{name} must have shape (..., {size}), got {x.shape}")


def _check_matrix(matrix: jax.Array) -> None:
  if matrix.ndim < 2 or matrix.shape[-2:] != (3, 3):
    raise ValueError(f"rotation matrix must have shape (..., 3, 3), got {matrix.shape}")


def euler_to_matrix(angles: jax.Array) -> jax.Array:
  """(..., 3) (pitch, yaw, roll) radians -> (..., 3, 3) matrix Rz @ Ry @ Rx."""
  angles = jnp.asarray(angles)
  _check_last(angles, 3, "angles")
  cos, sin = jnp.cos(angles), jnp.sin(angles)  # (..., 3)
  cx, cy, cz = cos[..., 0], cos[..., 1], cos[..., 2]
  sx, sy, sz = sin[..., 0], sin[..., 1], sin[..., 2]
  rows = [
    [cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx],
    [sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx],
    [-sy, cy * sx, cy * cx],
  ]
  return jnp.stack([jnp.stack(row, axis=-1) for row in rows], axis=-2)  # (..., 3, 3)


def matrix_to_euler(matrix: jax.Array) -> jax.Array:
  """(..., 3, 3) rotation -> (..., 3) (pitch, yaw, roll) with yaw in [-pi/2, pi/2].

  At gimbal lock (|yaw| = pi/2) pitch and roll are not separable; roll is set
  to 0 there and pitch carries the whole in-plane angle.
  """
  matrix = jnp.asarray(matrix)
  _check_matrix(matrix)
  r20 = jnp.clip(matrix[..., 2, 0], -1.0, 1.0)
  yaw = -jnp.arcsin(r20)
  cos_yaw = jnp.sqrt(jnp.maximum(1.0 - r20 * r20, 0.0))
  locked = cos_yaw < 1e-6
  pitch = jnp.where(
    locked,
    jnp.arctan2(-matrix[..., 1, 2], matrix[..., 1, 1]),
    jnp.arctan2(matrix[..., 2, 1], matrix[..., 2, 2]),
  )
  roll = jnp.where(locked, 0.0, jnp.arctan2(matrix[..., 1, 0], matrix[..., 0, 0]))
  return jnp.stack([pitch, yaw, roll], axis=-1)


def quaternion_to_matrix(quaternion: jax.Array) -> jax.Array:
  """(..., 4) (w, x, y, z) -> (..., 3, 3). The quaternion is normalised first."""
  quaternion = jnp.asarray(quaternion)
  _check_last(quaternion, 4, "quaternion")
  q = quaternion / jnp.linalg.norm(quaternion, axis=-1, keepdims=True)
  w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
  rows = [
    [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
    [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
    [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
  ]
  return jnp.stack([jnp.stack(row, axis=-1) for row in rows], axis=-2)


def matrix_to_quaternion(matrix: jax.Array) -> jax.Array:
  """(..., 3, 3) rotation -> (..., 4) unit (w, x, y, z) with w >= 0.

  Computes the four candidate forms (each divides by one of 4w², 4x², 4y²,
  4z²) and keeps the one with the largest divisor, so it is accurate for every
  rotation, including 180-degree turns where w = 0.
  """
  matrix = jnp.asarray(matrix)
  _check_matrix(matrix)
  m = matrix
  m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
  # 4 * (w², x², y², z²) from the diagonal.
  four_squares = jnp.stack(
    [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22],
    axis=-1,
  )  # (..., 4)
  off = {
    "zy": m[..., 2, 1] - m[..., 1, 2],
    "xz": m[..., 0, 2] - m[..., 2, 0],
    "yx": m[..., 1, 0] - m[..., 0, 1],
    "xy": m[..., 0, 1] + m[..., 1, 0],
    "xz+": m[..., 0, 2] + m[..., 2, 0],
    "yz": m[..., 1, 2] + m[..., 2, 1],
  }
  # Row k is 4 * q_k * q (unnormalised), valid when q_k is far from zero.
  candidates = jnp.stack(
    [
      jnp.stack([four_squares[..., 0], off["zy"], off["xz"], off["yx"]], axis=-1),
      jnp.stack([off["zy"], four_squares[..., 1], off["xy"], off["xz+"]], axis=-1),
      jnp.stack([off["xz"], off["xy"], four_squares[..., 2], off["yz"]], axis=-1),
      jnp.stack([off["yx"], off["xz+"], off["yz"], four_squares[..., 3]], axis=-1),
    ],
    axis=-2,
  )  # (..., 4, 4)
  best = jnp.argmax(four_squares, axis=-1)  # (...,)
  chosen = jnp.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
  quaternion = chosen / jnp.linalg.norm(chosen, axis=-1, keepdims=True)
  return jnp.where(quaternion[..., :1] < 0, -quaternion, quaternion)


def euler_to_quaternion(angles: jax.Array) -> jax.Array:
  """(..., 3) (pitch, yaw, roll) -> (..., 4) (w, x, y, z)."""
  return matrix_to_quaternion(euler_to_matrix(angles))


def quaternion_to_euler(quaternion: jax.Array) -> jax.Array:
  """(..., 4) (w, x, y, z) -> (..., 3) (pitch, yaw, roll)."""
  return matrix_to_euler(quaternion_to_matrix(quaternion))


def axis_angle_to_matrix(axis_angle: jax.Array) -> jax.Array:
  """(..., 3) rotation vector (axis * angle) -> (..., 3, 3), via Rodrigues."""
  axis_angle = jnp.asarray(axis_angle)
  _check_last(axis_angle, 3, "axis_angle")
  squared = jnp.sum(axis_angle * axis_angle, axis=-1, keepdims=True)  # (..., 1)
  small = squared < 1e-12
  angle = jnp.sqrt(jnp.where(small, 1.0, squared))
  axis = axis_angle / angle
  half = 0.5 * angle
  # sin(angle/2) / angle -> 1/2 as angle -> 0 keeps the gradient finite at zero.
  vector = jnp.where(small, 0.5 * axis_angle, axis * jnp.sin(half))
  scalar = jnp.where(small, 1.0, jnp.cos(half))
  return quaternion_to_matrix(jnp.concatenate([scalar, vector], axis=-1))


def apply_similarity(
  points: jax.Array, scale: jax.Array, rotation: jax.Array, translation: jax.Array
) -> jax.Array:
  """s * R p + t for points (..., N, 3), scale (...), rotation (..., 3, 3), t (..., 3)."""
  points = jnp.asarray(points)
  _check_last(points, 3, "points")
  scale = jnp.asarray(scale)[..., None, None]
  rotated = jnp.einsum("...ij,...nj->...ni", rotation, points)  # (..., N, 3)
  return scale * rotated + jnp.asarray(translation)[..., None, :]


def fit_similarity(
  source: jax.Array, target: jax.Array, weights: jax.Array | None = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Least-squares similarity `target ≈ s R source + t` (Umeyama 1991).

  Args:
    source: (..., N, 3) points.
    target: (..., N, 3) corresponding points.
    weights: optional (..., N) non-negative weights.

  Returns:
    scale (...), rotation (..., 3, 3) with det +1, translation (..., 3).
  """
  source, target = jnp.asarray(source), jnp.asarray(target)
  if source.shape != target.shape:
    raise ValueError(f"source {source.shape} and target {target.shape} differ in shape")
  _check_last(source, 3, "source")
  if weights is None:
    weights = jnp.ones(source.shape[:-1], source.dtype)
  weights = weights / jnp.sum(weights, axis=-1, keepdims=True)  # (..., N)
  mean_source = jnp.einsum("...n,...ni->...i", weights, source)  # (..., 3)
  mean_target = jnp.einsum("...n,...ni->...i", weights, target)
  centred_source = source - mean_source[..., None, :]
  centred_target = target - mean_target[..., None, :]
  covariance = jnp.einsum("...n,...ni,...nj->...ij", weights, centred_target, centred_source)
  u, singular, vt = jnp.linalg.svd(covariance)
  # Flip the weakest axis when the best orthogonal map would be a reflection.
  sign = jnp.sign(jnp.linalg.det(u) * jnp.linalg.det(vt))
  correction = jnp.concatenate([jnp.ones_like(singular[..., :2]), sign[..., None]], axis=-1)
  rotation = jnp.einsum("...ij,...j,...jk->...ik", u, correction, vt)
  variance = jnp.einsum("...n,...ni,...ni->...", weights, centred_source, centred_source)
  scale = jnp.sum(singular * correction, axis=-1) / variance
  translation = mean_target - scale[..., None] * jnp.einsum(
    "...ij,...j->...i", rotation, mean_source
  )
  return scale, rotation, translation
