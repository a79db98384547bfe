"""Projections of hand-placed points to hand-computed pixels, for every camera."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxface.geometry import (
  OrthographicCamera,
  PerspectiveCamera,
  WeakPerspectiveCamera,
  euler_to_matrix,
  focal_from_fov,
  look_at,
  ndc_to_pixels,
  pixels_to_ndc,
)

IMAGE = (120, 160)  # H, W


def _perspective():
  # Camera 10 cm in front of the origin, looking at it along -z.
  return PerspectiveCamera(
    focal=jnp.array([100.0, 90.0]),
    principal_point=jnp.array([80.0, 60.0]),
    rotation=jnp.eye(3),
    translation=jnp.array([0.0, 0.0, -10.0]),
  )


def _from_clip(clip):
  return clip[..., :3] / clip[..., 3:]


def test_ndc_pixel_convention():
  # Pixel centres of the corner pixels, then the image corners themselves.
  pixels = jnp.array([[0.5, 0.5], [159.5, 119.5], [0.0, 0.0], [160.0, 120.0]])
  ndc = pixels_to_ndc(pixels, IMAGE)
  np.testing.assert_allclose(
    ndc, [[-1 + 1 / 160, 1 - 1 / 120], [1 - 1 / 160, -1 + 1 / 120], [-1, 1], [1, -1]], atol=1e-6
  )
  np.testing.assert_allclose(ndc_to_pixels(ndc, IMAGE), pixels, atol=1e-4)


def test_perspective_hand_computed():
  camera = _perspective()
  points = jnp.array([[0.0, 0.0, 0.0], [1.0, 2.0, 0.0], [-2.0, 1.0, 5.0]])
  pixels, depth = camera.project(points)
  # depth = 10 - z; x = cx + fx * X / depth; y = cy - fy * Y / depth.
  np.testing.assert_allclose(depth, [10.0, 10.0, 5.0])
  np.testing.assert_allclose(pixels, [[80, 60], [90, 42], [40, 42]], atol=1e-5)
  ndc = _from_clip(camera.to_clip(points, IMAGE, near=1.0, far=100.0))
  np.testing.assert_allclose(ndc_to_pixels(ndc[:, :2], IMAGE), pixels, atol=1e-4)
  # OpenGL depth: (f + n)/(f - n) - 2 f n / ((f - n) d).
  expected_z = 101 / 99 - 200 / (99 * np.array([10.0, 10.0, 5.0]))
  np.testing.assert_allclose(ndc[:, 2], expected_z, atol=1e-6)


def test_perspective_near_and_far_map_to_minus_one_and_one():
  camera = _perspective()
  points = jnp.array([[0.0, 0.0, 9.0], [0.0, 0.0, -90.0]])  # depths 1 and 100
  ndc = _from_clip(camera.to_clip(points, IMAGE, near=1.0, far=100.0))
  np.testing.assert_allclose(ndc[:, 2], [-1.0, 1.0], atol=1e-6)


def test_perspective_with_rotation():
  # Yaw the world by 90 degrees: world +x goes to camera -z (away from the camera).
  camera = _perspective()._replace(rotation=euler_to_matrix(jnp.array([0.0, np.pi / 2, 0.0])))
  pixels, depth = camera.project(jnp.array([[0.0, 0.0, 2.0]]))  # world +z -> camera +x
  np.testing.assert_allclose(depth, [10.0], atol=1e-5)
  np.testing.assert_allclose(pixels, [[80 + 100 * 2 / 10, 60]], atol=1e-4)


def test_orthographic_hand_computed():
  camera = OrthographicCamera(
    scale=jnp.array([10.0, 10.0]),
    principal_point=jnp.array([80.0, 60.0]),
    rotation=jnp.eye(3),
    translation=jnp.array([0.0, 0.0, -50.0]),
  )
  points = jnp.array([[1.0, 2.0, 0.0], [-3.0, -1.0, 10.0]])
  pixels, depth = camera.project(points)
  np.testing.assert_allclose(pixels, [[90, 40], [50, 70]], atol=1e-5)
  np.testing.assert_allclose(depth, [50, 40])
  clip = camera.to_clip(points, IMAGE, near=0.0, far=100.0)
  np.testing.assert_allclose(clip[:, 3], 1.0)
  np.testing.assert_allclose(clip[:, 2], [0.0, -0.2], atol=1e-6)  # nearer is smaller
  np.testing.assert_allclose(ndc_to_pixels(clip[:, :2], IMAGE), pixels, atol=1e-4)


def test_weak_perspective_hand_computed():
  camera = WeakPerspectiveCamera(
    scale=jnp.array(0.1), translation=jnp.array([0.2, -0.1]), rotation=jnp.eye(3)
  )
  points = jnp.array([[2.0, 3.0, 4.0]])
  ndc = camera.to_ndc(points)
  np.testing.assert_allclose(ndc, [[0.4, 0.2, -0.4]], atol=1e-6)
  pixels, _ = camera.project(points, IMAGE)
  np.testing.assert_allclose(pixels, [[(1.4) * 80, (0.8) * 60]], atol=1e-4)
  np.testing.assert_allclose(camera.to_clip(points, IMAGE), [[0.4, 0.2, -0.4, 1.0]], atol=1e-6)


def test_cameras_batch_under_vmap():
  camera = _perspective()
  batch = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), camera)
  batch = batch._replace(translation=jnp.array([[0.0, 0.0, -10.0], [0.0, 0.0, -20.0]]))
  points = jnp.array([[1.0, 0.0, 0.0]])
  pixels, depth = jax.vmap(lambda c: c.project(points))(batch)
  np.testing.assert_allclose(depth[:, 0], [10.0, 20.0])
  np.testing.assert_allclose(pixels[:, 0, 0], [90.0, 85.0])


def test_look_at_and_fov():
  rotation, translation = look_at(jnp.array([0.0, 0.0, 30.0]), jnp.zeros(3))
  np.testing.assert_allclose(rotation, np.eye(3), atol=1e-6)
  np.testing.assert_allclose(translation, [0.0, 0.0, -30.0], atol=1e-6)
  rotation, translation = look_at(jnp.array([30.0, 0.0, 0.0]), jnp.zeros(3))
  np.testing.assert_allclose(rotation @ jnp.array([1.0, 0.0, 0.0]), [0.0, 0.0, 1.0], atol=1e-6)
  np.testing.assert_allclose(focal_from_fov(90.0, 200), 100.0, rtol=1e-6)


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match=r"\(\.\.\., N, 3\)"):
    _perspective().project(jnp.zeros((4, 2)))
  with pytest.raises(ValueError, match="image_size"):
    _perspective().to_clip(jnp.zeros((4, 3)), (0, 10))


def test_unproject_inverts_project():
  rng = np.random.default_rng(0)
  points = jnp.asarray(rng.uniform(-5, 5, (20, 3)), jnp.float32)
  rotation = euler_to_matrix(jnp.array([0.2, -0.3, 0.1]))
  cameras = [
    _perspective()._replace(rotation=rotation),
    OrthographicCamera(
      jnp.array([10.0, 12.0]), jnp.array([80.0, 60.0]), rotation, jnp.array([1.0, 2.0, -50.0])
    ),
  ]
  for camera in cameras:
    pixels, depth = camera.project(points)
    np.testing.assert_allclose(camera.unproject(pixels, depth), points, atol=1e-4)
