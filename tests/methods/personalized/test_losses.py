"""Each loss term on a hand-made case whose value is known."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jaxface.methods.personalized import losses


def test_photometric_is_the_mean_rgb_norm_over_the_compared_pixels():
  rendered = np.zeros((2, 4, 4, 3), np.float32)
  images = np.zeros((2, 4, 4, 3), np.float32)
  images[..., 0], images[..., 1] = 0.3, 0.4  # a 0.5 RGB distance everywhere
  images[1, :2] = 5.0  # far off, but outside the mask
  mask = np.ones((2, 4, 4), bool)
  mask[1, :2] = False
  assert float(losses.photometric_loss(rendered, images, mask)) == pytest.approx(0.5, rel=1e-5)
  assert float(losses.photometric_loss(rendered, images, np.zeros_like(mask))) == 0.0


def test_landmarks_are_squared_pixels_of_a_224_pixel_image():
  targets = np.zeros((1, 68, 2), np.float32)
  projected = targets + np.array([3.0, 4.0], np.float32)  # 5 px at 112 px = 10 px at 224
  assert float(losses.landmark_loss(projected, targets, 112)) == pytest.approx(100.0)
  assert float(losses.landmark_loss(projected, targets, 224)) == pytest.approx(25.0)


def test_dynamic_albedo_is_its_mean_absolute_value():
  maps = np.zeros((2, 3, 4, 4, 3), np.float32)
  maps[0, 1, 0, 0] = [-0.3, 0.6, 0.0]
  assert float(losses.dynamic_albedo_loss(maps)) == pytest.approx(0.9 / maps.size)


def test_shape_deformation_is_mean_squared_centimetres_of_both_corrections():
  neutral = np.zeros((4, 3), np.float32)
  neutral[0] = [0.3, 0.0, 0.4]  # 0.5 mm on one of 4 vertices, in a model measured in mm
  blendshapes = np.zeros((2, 4, 3), np.float32)
  blendshapes[1, 2, 2] = 2.0  # 2 mm on one of 8 (blendshape, vertex) pairs
  value = losses.shape_deformation_loss(neutral, blendshapes, cm_per_unit=0.1)
  assert float(value) == pytest.approx(0.05**2 / 4 + 0.2**2 / 8, rel=1e-5)


def test_blendshape_gradient_ignores_shifts_and_measures_stretch_per_edge_length():
  neutral = np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0]], np.float32)
  edges = np.array([[0, 1], [0, 2], [1, 2]])
  shift = np.broadcast_to(np.array([1.0, -2.0, 0.5], np.float32), (1, 3, 3))
  assert float(losses.blendshape_gradient_loss(shift, neutral, edges)) == pytest.approx(0.0)
  one = np.zeros((1, 3, 3), np.float32)
  one[0, 1, 0] = 1.0  # vertex 1 moves by 1: edges (0, 1) of length 2 and (1, 2) of length 2 sqrt 2
  expected = (1.0 / 4.0 + 0.0 + 1.0 / 8.0) / 3.0
  assert float(losses.blendshape_gradient_loss(one, neutral, edges)) == pytest.approx(expected)


def test_coefficients_are_squared_norms_of_identity_and_weights():
  identity = np.array([[3.0, 4.0]], np.float32)  # |alpha|^2 = 25
  weights = np.array([[0.6, 0.8], [0.0, 0.0]], np.float32)  # mean |w|^2 = 0.5
  assert float(losses.coefficient_loss(identity, weights)) == pytest.approx(25.5)


def test_light_penalises_colour_not_intensity():
  grey = np.tile(np.arange(9, dtype=np.float32), 3)[None]  # the same 9 coefficients per channel
  assert float(losses.light_loss(grey)) == pytest.approx(0.0)
  tinted = grey.reshape(1, 3, 9).copy()
  tinted[0, 0, 0] += 0.3  # red DC 0.3 above: spread (0.2, -0.1, -0.1) on one of 9 coefficients
  expected = (0.2**2 + 0.1**2 + 0.1**2) / 27
  assert float(losses.light_loss(tinted.reshape(1, 27))) == pytest.approx(expected, rel=1e-4)


def test_total_weighs_every_term_and_refuses_an_unweighted_one():
  terms = {"photometric": jnp.float32(0.1), "landmark": jnp.float32(10.0)}
  assert float(losses.total(terms, losses.WEIGHTS)) == pytest.approx(200 * 0.1 + 0.1 * 10)
  with pytest.raises(ValueError, match="extra"):
    losses.total({"extra": jnp.float32(1.0)}, losses.WEIGHTS)
  assert losses.WEIGHTS == {  # the supplement's lambdas
    "photometric": 200.0, "landmark": 0.1, "dynamic_albedo": 50.0, "shape_deformation": 2.5,
    "blendshape_gradient": 1.5, "coefficients": 1e-3, "light": 0.02,
  }  # fmt: skip
