"""Normalised depth (eq. 7) round trip, finite-difference normals on analytic surfaces, 3DMM
landmark projection against the camera, depth renders of a fit."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxface.data.multiview import focal_length
from jaxface.methods.multiview_depth import geometry, networks
from jaxface.methods.multiview_depth.networks import Fit


def test_normalized_depth_round_trips_and_maps_the_nose_tip_to_c():
  rng = np.random.default_rng(0)
  depth = jnp.asarray(rng.uniform(80.0, 95.0, (2, 5, 6)), jnp.float32)
  distance = jnp.asarray([82.0, 90.0])
  mask = jnp.asarray(rng.uniform(size=(2, 5, 6)) < 0.7)
  a, c = -0.085, 0.9
  normalized = geometry.normalize_depth(depth, distance, mask, a, c)
  assert (np.asarray(normalized)[~np.asarray(mask)] == 0).all()  # background is 0
  back = geometry.denormalize_depth(normalized, distance, a, c)
  inside = np.asarray(mask)
  np.testing.assert_allclose(np.asarray(back)[inside], np.asarray(depth)[inside], rtol=1e-6)
  at_nose = geometry.normalize_depth(
    jnp.full((2, 1, 1), 1.0) * distance[:, None, None], distance, jnp.ones((2, 1, 1), bool), a, c
  )
  np.testing.assert_allclose(at_nose, c)
  # a < 0: a point 9.4 units behind the nose tip (the procedural face's depth) stays above 0.
  assert 0.0 < c + a * 9.4 < 0.15


def test_depth_normals_of_a_tilted_plane_are_its_normal():
  # The plane n . p = -d in the camera frame, seen by the fixed-focal camera.
  size, focal = 32, focal_length(32)
  normal = np.array([0.3, -0.2, 1.0]) / np.linalg.norm([0.3, -0.2, 1.0])
  rows, cols = np.mgrid[0:size, 0:size] + 0.5
  rays = np.stack([(cols - size / 2) / focal, -(rows - size / 2) / focal, -np.ones_like(cols)], -1)
  # p = depth * ray (ray z = -1); n . p = -50 -> depth = -50 / (n . ray)
  depth = -50.0 / (rays @ normal)
  normals, valid = geometry.depth_normals(
    jnp.asarray(depth[None], jnp.float32), jnp.ones((1, size, size), bool), focal, size
  )
  valid = np.asarray(valid)[0]
  assert valid[:-1, :-1].all() and not valid[-1].any() and not valid[:, -1].any()
  expected = np.broadcast_to(normal, (valid.sum(), 3))
  np.testing.assert_allclose(np.asarray(normals)[0][valid], expected, atol=1e-4)


def test_fit_depth_and_landmarks_follow_the_camera(procedural):
  arrays = networks.face_arrays(procedural, 4, 3)
  size = 48
  height = float(arrays.face_height)
  fit = Fit(
    identity=jnp.zeros((1, 4)), expression=jnp.zeros((1, 3)),
    rotation=jnp.eye(3)[None], translation=jnp.asarray([[0.0, 0.0, -4.4 * height]]),
  )  # fmt: skip
  depth, mask = geometry.render_fit_depth(arrays, fit, focal_length(size), size)
  depth, mask = np.asarray(depth)[0], np.asarray(mask)[0]
  # The nose tip sits at the origin of the face frame: on the axis, at the camera distance.
  landmarks = np.asarray(geometry.project_landmarks(arrays, fit, focal_length(size), size))[0]
  np.testing.assert_allclose(landmarks[30], [size / 2, size / 2], atol=1e-3)
  centre = depth[size // 2 - 1 : size // 2 + 1, size // 2 - 1 : size // 2 + 1]
  assert mask[size // 2, size // 2]
  np.testing.assert_allclose(centre.min(), 4.4 * height, rtol=5e-3)
  assert depth[mask].max() > 4.4 * height + 0.2 * height  # the cheeks lie behind the nose
