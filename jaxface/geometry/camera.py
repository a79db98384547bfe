"""Cameras and projection to pixels and to OpenGL-style clip coordinates.

One convention for the whole library (drawn in docs/architecture.md):

- World and model frame: right-handed, y up, a frontal face looks along +z.
- Camera frame (OpenGL): x right, y up, the camera looks along -z. A world
  point p goes to the camera frame as `R @ p + t` (extrinsics R, t); its
  depth is `-z_camera`, positive in front of the camera.
- Pixels: x to the right over columns, y down over rows; pixel (row i,
  column j) covers [j, j+1] x [i, i+1] and its centre is (j + 0.5, i + 0.5).
- NDC: x in [-1, 1] maps left to right over the image width, y = +1 is the
  top edge of row 0, so `x_pix = (x_ndc + 1) W / 2`, `y_pix = (1 - y_ndc) H / 2`.
  Smaller NDC depth is nearer: near plane -> -1, far plane -> +1.
- Clip coordinates (x, y, z, w) with NDC = (x, y, z) / w, as a rasterizer
  consumes them (`jaxface.render.rasterize`).

Cameras are NamedTuples of arrays, hence pytrees: they batch under vmap and
can be optimised with grad. Leading batch dimensions broadcast.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


def _check_points(points: jax.Array) -> jax.Array:
  points = jnp.asarray(points)
  if points.shape[-1] != 3:
    raise ValueError(f"points must have shape (..., N, 3), got {points.shape}")
  return points


def _check_image_size(image_size) -> tuple[int, int]:
  if len(image_size) != 2 or min(image_size) <= 0:
    raise ValueError(f"image_size must be (H, W) with positive entries, got {image_size}")
  return int(image_size[0]), int(image_size[1])


def pixels_to_ndc(pixels: jax.Array, image_size: tuple[int, int]) -> jax.Array:
  """(..., 2) pixel (x, y) -> (..., 2) NDC (x, y) for an (H, W) image."""
  height, width = _check_image_size(image_size)
  x = 2.0 * pixels[..., 0] / width - 1.0
  y = 1.0 - 2.0 * pixels[..., 1] / height
  return jnp.stack([x, y], axis=-1)


def ndc_to_pixels(ndc: jax.Array, image_size: tuple[int, int]) -> jax.Array:
  """(..., 2) NDC (x, y) -> (..., 2) pixel (x, y) for an (H, W) image."""
  height, width = _check_image_size(image_size)
  x = (ndc[..., 0] + 1.0) * 0.5 * width
  y = (1.0 - ndc[..., 1]) * 0.5 * height
  return jnp.stack([x, y], axis=-1)


def _rigid(rotation: jax.Array, translation: jax.Array, points: jax.Array) -> jax.Array:
  """R @ p + t for points (..., N, 3)."""
  return jnp.einsum("...ij,...nj->...ni", rotation, points) + translation[..., None, :]


def _rigid_inverse(rotation: jax.Array, translation: jax.Array, points: jax.Array) -> jax.Array:
  """R^T (p - t) for camera-frame points (..., N, 3)."""
  return jnp.einsum("...ji,...nj->...ni", rotation, points - translation[..., None, :])


def _linear_depth_to_ndc(depth: jax.Array, near: float, far: float) -> jax.Array:
  return (2.0 * depth - far - near) / (far - near)


class PerspectiveCamera(NamedTuple):
  """Pinhole camera with pixel intrinsics.

  Attributes:
    focal: (..., 2) focal lengths (fx, fy) in pixels.
    principal_point: (..., 2) (cx, cy) in pixels; (W/2, H/2) is the centre.
    rotation: (..., 3, 3) world-to-camera rotation R.
    translation: (..., 3) world-to-camera translation t.
  """

  focal: jax.Array
  principal_point: jax.Array
  rotation: jax.Array
  translation: jax.Array

  def to_camera(self, points: jax.Array) -> jax.Array:
    """World (..., N, 3) -> camera frame (..., N, 3)."""
    return _rigid(self.rotation, self.translation, _check_points(points))

  def project(self, points: jax.Array) -> tuple[jax.Array, jax.Array]:
    """World (..., N, 3) -> pixels (..., N, 2) and depth (..., N) = -z_camera."""
    camera_points = self.to_camera(points)
    depth = -camera_points[..., 2]
    x = (
      self.principal_point[..., None, 0] + self.focal[..., None, 0] * camera_points[..., 0] / depth
    )
    y = (
      self.principal_point[..., None, 1] - self.focal[..., None, 1] * camera_points[..., 1] / depth
    )
    return jnp.stack([x, y], axis=-1), depth

  def unproject(self, pixels: jax.Array, depth: jax.Array) -> jax.Array:
    """Pixels (..., N, 2) at depths (..., N) -> world points (..., N, 3); inverse of `project`."""
    fx, fy = self.focal[..., None, 0], self.focal[..., None, 1]
    cx, cy = self.principal_point[..., None, 0], self.principal_point[..., None, 1]
    x = (pixels[..., 0] - cx) / fx * depth
    y = -(pixels[..., 1] - cy) / fy * depth
    camera_points = jnp.stack([x, y, -depth], axis=-1)
    return _rigid_inverse(self.rotation, self.translation, camera_points)

  def to_clip(
    self,
    points: jax.Array,
    image_size: tuple[int, int],
    near: float = 1.0,
    far: float = 1000.0,
  ) -> jax.Array:
    """World (..., N, 3) -> clip (..., N, 4); NDC z is -1 at `near`, +1 at `far`."""
    height, width = _check_image_size(image_size)
    camera_points = self.to_camera(points)
    w = -camera_points[..., 2]  # depth
    fx, fy = self.focal[..., None, 0], self.focal[..., None, 1]
    cx, cy = self.principal_point[..., None, 0], self.principal_point[..., None, 1]
    x = (2.0 * fx / width) * camera_points[..., 0] + (2.0 * cx / width - 1.0) * w
    y = (2.0 * fy / height) * camera_points[..., 1] + (1.0 - 2.0 * cy / height) * w
    # Standard OpenGL depth: z_ndc = z / w is -1 at the near plane and +1 at far.
    z = (far + near) / (far - near) * w - 2.0 * far * near / (far - near)
    return jnp.stack([x, y, z, w], axis=-1)


class OrthographicCamera(NamedTuple):
  """Parallel projection with pixel intrinsics.

  Attributes:
    scale: (..., 2) pixels per world unit along x and y.
    principal_point: (..., 2) pixel position of the camera axis.
    rotation: (..., 3, 3) world-to-camera rotation R.
    translation: (..., 3) world-to-camera translation t.
  """

  scale: jax.Array
  principal_point: jax.Array
  rotation: jax.Array
  translation: jax.Array

  def to_camera(self, points: jax.Array) -> jax.Array:
    """World (..., N, 3) -> camera frame (..., N, 3)."""
    return _rigid(self.rotation, self.translation, _check_points(points))

  def project(self, points: jax.Array) -> tuple[jax.Array, jax.Array]:
    """World (..., N, 3) -> pixels (..., N, 2) and depth (..., N) = -z_camera."""
    camera_points = self.to_camera(points)
    x = self.principal_point[..., None, 0] + self.scale[..., None, 0] * camera_points[..., 0]
    y = self.principal_point[..., None, 1] - self.scale[..., None, 1] * camera_points[..., 1]
    return jnp.stack([x, y], axis=-1), -camera_points[..., 2]

  def unproject(self, pixels: jax.Array, depth: jax.Array) -> jax.Array:
    """Pixels (..., N, 2) at depths (..., N) -> world points (..., N, 3); inverse of `project`."""
    x = (pixels[..., 0] - self.principal_point[..., None, 0]) / self.scale[..., None, 0]
    y = -(pixels[..., 1] - self.principal_point[..., None, 1]) / self.scale[..., None, 1]
    camera_points = jnp.stack([x, y, -depth], axis=-1)
    return _rigid_inverse(self.rotation, self.translation, camera_points)

  def to_clip(
    self,
    points: jax.Array,
    image_size: tuple[int, int],
    near: float = 1.0,
    far: float = 1000.0,
  ) -> jax.Array:
    """World (..., N, 3) -> clip (..., N, 4) with w = 1; depth mapped linearly."""
    pixels, depth = self.project(points)
    ndc = pixels_to_ndc(pixels, image_size)
    z = _linear_depth_to_ndc(depth, near, far)
    return jnp.concatenate([ndc, z[..., None], jnp.ones_like(z)[..., None]], axis=-1)


class WeakPerspectiveCamera(NamedTuple):
  """Scaled orthographic projection in NDC units, as DECA and 3DFaceFill use.

  `ndc_xy = scale * (R p)_xy + translation`: resolution-independent, so a
  network can regress (scale, translation) directly. NDC depth is
  `-scale * (R p)_z` (nearer is smaller, same units as x and y), within
  [-1, 1] whenever the face fits the view.

  Attributes:
    scale: (...,) NDC units per world unit.
    translation: (..., 2) NDC offset.
    rotation: (..., 3, 3) model rotation R.
  """

  scale: jax.Array
  translation: jax.Array
  rotation: jax.Array

  def to_ndc(self, points: jax.Array) -> jax.Array:
    """World (..., N, 3) -> NDC (..., N, 3)."""
    rotated = jnp.einsum("...ij,...nj->...ni", self.rotation, _check_points(points))
    scale = jnp.asarray(self.scale)[..., None, None]  # (..., 1, 1)
    xy = scale * rotated[..., :2] + self.translation[..., None, :]
    return jnp.concatenate([xy, -scale * rotated[..., 2:]], axis=-1)

  def project(self, points: jax.Array, image_size: tuple[int, int]) -> tuple[jax.Array, jax.Array]:
    """World (..., N, 3) -> pixels (..., N, 2) and NDC depth (..., N)."""
    ndc = self.to_ndc(points)
    return ndc_to_pixels(ndc[..., :2], image_size), ndc[..., 2]

  def to_clip(self, points: jax.Array, image_size: tuple[int, int]) -> jax.Array:
    """World (..., N, 3) -> clip (..., N, 4) with w = 1."""
    _check_image_size(image_size)
    ndc = self.to_ndc(points)
    return jnp.concatenate([ndc, jnp.ones_like(ndc[..., :1])], axis=-1)


def look_at(
  eye: jax.Array, target: jax.Array, up: jax.Array = (0.0, 1.0, 0.0)
) -> tuple[jax.Array, jax.Array]:
  """World-to-camera (R, t) for a camera at `eye` looking at `target`.

  Args:
    eye: (..., 3) camera centre in world units.
    target: (..., 3) point the camera looks at (maps onto the -z axis).
    up: (..., 3) world direction that should appear upwards in the image.

  Returns:
    rotation (..., 3, 3) and translation (..., 3).
  """
  eye, target, up = jnp.asarray(eye), jnp.asarray(target), jnp.asarray(up, eye.dtype)
  backward = eye - target
  backward = backward / jnp.linalg.norm(backward, axis=-1, keepdims=True)
  right = jnp.cross(up, backward)
  right = right / jnp.linalg.norm(right, axis=-1, keepdims=True)
  true_up = jnp.cross(backward, right)
  rotation = jnp.stack([right, true_up, backward], axis=-2)  # rows: camera axes in world
  translation = -jnp.einsum("...ij,...j->...i", rotation, eye)
  return rotation, translation


def focal_from_fov(fov_y_degrees: float, image_height: int) -> float:
  """Focal length in pixels for a vertical field of view in degrees."""
  return 0.5 * image_height / jnp.tan(0.5 * jnp.deg2rad(fov_y_degrees))
