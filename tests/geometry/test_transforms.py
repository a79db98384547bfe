"""Rotation conversions and similarity fits against scipy's Rotation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from jaxface.geometry import (
  apply_similarity,
  axis_angle_to_matrix,
  euler_to_matrix,
  euler_to_quaternion,
  fit_similarity,
  matrix_to_euler,
  matrix_to_quaternion,
  quaternion_to_euler,
  quaternion_to_matrix,
)


def _random_angles(rng, n):
  return np.stack(
    [rng.uniform(-np.pi, np.pi, n), rng.uniform(-1.5, 1.5, n), rng.uniform(-np.pi, np.pi, n)], 1
  )


def test_euler_matrix_matches_scipy_extrinsic_xyz():
  angles = _random_angles(np.random.default_rng(0), 64)
  expected = Rotation.from_euler("xyz", angles).as_matrix()  # extrinsic x, then y, then z
  with jax.enable_x64(True):
    np.testing.assert_allclose(euler_to_matrix(jnp.asarray(angles)), expected, atol=1e-12)


def test_positive_yaw_turns_nose_to_the_face_left_and_pitch_down():
  nose = jnp.array([0.0, 0.0, 1.0])
  assert (euler_to_matrix(jnp.array([0.0, 0.3, 0.0])) @ nose)[0] > 0
  assert (euler_to_matrix(jnp.array([0.3, 0.0, 0.0])) @ nose)[1] < 0


def test_round_trips_to_1e6():
  rng = np.random.default_rng(1)
  angles = _random_angles(rng, 256)
  quaternions = rng.standard_normal((256, 4))
  quaternions /= np.linalg.norm(quaternions, axis=1, keepdims=True)
  quaternions *= np.sign(quaternions[:, :1])
  # Half-turns (w = 0) are the hard case for matrix -> quaternion.
  half_turns = np.concatenate([np.zeros((3, 1)), np.eye(3)], axis=1)
  quaternions = np.concatenate([quaternions, half_turns])
  with jax.enable_x64(True):
    np.testing.assert_allclose(matrix_to_euler(euler_to_matrix(angles)), angles, atol=1e-6)
    np.testing.assert_allclose(quaternion_to_euler(euler_to_quaternion(angles)), angles, atol=1e-6)
    recovered = np.asarray(matrix_to_quaternion(quaternion_to_matrix(quaternions)))
    # q and -q are one rotation; half turns have w = 0, where the sign is free.
    aligned = recovered * np.sign(np.sum(recovered * quaternions, axis=1, keepdims=True))
    np.testing.assert_allclose(aligned, quaternions, atol=1e-6)
    scipy_q = Rotation.from_euler("xyz", angles).as_quat(scalar_first=True)
    scipy_q *= np.sign(scipy_q[:, :1])
    np.testing.assert_allclose(euler_to_quaternion(angles), scipy_q, atol=1e-6)


def test_float32_round_trip():
  angles = _random_angles(np.random.default_rng(2), 64).astype(np.float32)
  back = matrix_to_euler(euler_to_matrix(jnp.asarray(angles)))
  np.testing.assert_allclose(back, angles, atol=2e-3)  # float32 arcsin near the poles


def test_gimbal_lock_keeps_the_rotation():
  angles = np.array([[0.4, np.pi / 2, 0.1], [0.2, -np.pi / 2, -0.3]])
  with jax.enable_x64(True):
    recovered = matrix_to_euler(euler_to_matrix(angles))
    np.testing.assert_allclose(euler_to_matrix(recovered), euler_to_matrix(angles), atol=1e-6)


def test_axis_angle_matches_scipy_and_has_finite_gradient_at_zero():
  vectors = np.random.default_rng(3).standard_normal((32, 3))
  with jax.enable_x64(True):
    np.testing.assert_allclose(
      axis_angle_to_matrix(vectors), Rotation.from_rotvec(vectors).as_matrix(), atol=1e-12
    )
  gradient = jax.grad(lambda v: jnp.sum(axis_angle_to_matrix(v) * jnp.arange(9.0).reshape(3, 3)))(
    jnp.zeros(3)
  )
  assert np.all(np.isfinite(gradient))


def test_fit_similarity_recovers_a_known_transform():
  rng = np.random.default_rng(4)
  source = rng.standard_normal((50, 3))
  rotation = Rotation.random(random_state=5).as_matrix()
  target = 1.7 * source @ rotation.T + np.array([1.0, -2.0, 0.5])
  with jax.enable_x64(True):
    scale, fitted_rotation, translation = fit_similarity(source, target)
    np.testing.assert_allclose(scale, 1.7, rtol=1e-10)
    np.testing.assert_allclose(fitted_rotation, rotation, atol=1e-10)
    np.testing.assert_allclose(translation, [1.0, -2.0, 0.5], atol=1e-10)
    np.testing.assert_allclose(
      apply_similarity(source, scale, fitted_rotation, translation), target, atol=1e-10
    )


def test_fit_similarity_never_returns_a_reflection():
  source = np.random.default_rng(6).standard_normal((20, 3))
  mirrored = source * np.array([-1.0, 1.0, 1.0])
  _, rotation, _ = fit_similarity(source, mirrored)
  np.testing.assert_allclose(np.linalg.det(np.asarray(rotation)), 1.0, atol=1e-5)


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
    euler_to_matrix(jnp.zeros(4))
  with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
    quaternion_to_matrix(jnp.zeros(3))
  with pytest.raises(ValueError, match="3, 3"):
    matrix_to_euler(jnp.zeros((2, 3)))
