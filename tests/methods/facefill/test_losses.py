"""3DFaceFill's loss terms on hand-made cases, against numpy / brute-force references."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxface.methods.facefill import losses


def _random(seed: int, shape, low=0.0, high=1.0) -> np.ndarray:
  return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def _axis_angle_quaternion(axis, angle) -> np.ndarray:
  axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
  return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])


# --------------------------------------------------------------------------- 3DMM supervised


def test_shape_loss_is_mean_squared_norm_over_the_last_axis():
  prediction, target = _random(0, (4, 7)), _random(1, (4, 7))
  expected = np.mean(np.sum((prediction - target) ** 2, axis=1))
  np.testing.assert_allclose(losses.shape_loss(prediction, target), expected, rtol=1e-6)
  vertices, target_vertices = _random(2, (2, 5, 3)), _random(3, (2, 5, 3))
  per_vertex = np.linalg.norm(vertices - target_vertices, axis=-1) ** 2
  np.testing.assert_allclose(
    losses.shape_loss(vertices, target_vertices), per_vertex.mean(), rtol=1e-5
  )
  with pytest.raises(ValueError, match="same shape"):
    losses.shape_loss(prediction, target[:, :3])


def test_rotation_loss_is_sign_invariant_and_matches_the_relative_angle():
  rng = np.random.default_rng(0)
  axes = rng.normal(size=(6, 3))
  angles = rng.uniform(0.0, np.pi, 6)
  base = np.stack(
    [_axis_angle_quaternion(a, t) for a, t in zip(rng.normal(size=(6, 3)), angles, strict=True)]
  )
  # Compose each base rotation with a rotation by `angles` about `axes`: relative angle is `angles`.
  delta = np.stack([_axis_angle_quaternion(a, t) for a, t in zip(axes, angles, strict=True)])
  w1, v1 = delta[:, :1], delta[:, 1:]
  w2, v2 = base[:, :1], base[:, 1:]
  composed = np.concatenate(
    [w1 * w2 - np.sum(v1 * v2, axis=1, keepdims=True), w1 * v2 + w2 * v1 + np.cross(v1, v2)],
    axis=1,
  )
  expected = np.mean(2.0 - 2.0 * np.cos(angles / 2.0))
  q, p = jnp.asarray(composed, jnp.float32), jnp.asarray(base, jnp.float32)
  np.testing.assert_allclose(losses.rotation_loss(q, p), expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(losses.rotation_loss(-q, p), expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(losses.rotation_loss(q, -p), expected, rtol=1e-5, atol=1e-6)
  # An unnormalised prediction of the same rotation costs nothing.
  np.testing.assert_allclose(losses.rotation_loss(-3.0 * p, p), 0.0, atol=1e-6)
  with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
    losses.rotation_loss(q[:, :3], p[:, :3])


def test_pose_loss_combines_weighted_terms_and_ignores_quaternion_sign():
  scale, target_scale = _random(0, (3,)), _random(1, (3,))
  translation, target_translation = _random(2, (3, 2)), _random(3, (3, 2))
  q = np.stack([_axis_angle_quaternion([0, 1, 0], t) for t in (0.1, 0.5, 1.0)]).astype(np.float32)
  p = np.stack([_axis_angle_quaternion([0, 1, 0], t) for t in (0.3, 0.5, 0.2)]).astype(np.float32)
  expected = (
    2.0 * np.mean((scale - target_scale) ** 2)
    + 3.0 * np.mean(np.sum((translation - target_translation) ** 2, axis=1))
    + 0.5 * np.mean(2.0 - 2.0 * np.cos(np.abs([0.1 - 0.3, 0.0, 1.0 - 0.2]) / 2.0))
  )
  weights = dict(scale_weight=2.0, translation_weight=3.0, rotation_weight=0.5)
  args = (scale, translation, q, target_scale, target_translation)
  np.testing.assert_allclose(losses.pose_loss(*args, p, **weights), expected, rtol=1e-5)
  flipped = q * np.array([[1.0], [-1.0], [-1.0]], np.float32)
  np.testing.assert_allclose(
    losses.pose_loss(scale, translation, flipped, target_scale, target_translation, p, **weights),
    expected,
    rtol=1e-5,
  )


def test_texture_loss_is_masked_l1_by_default_and_l2_on_request():
  prediction, target = _random(0, (2, 4, 5, 3)), _random(1, (2, 4, 5, 3))
  mask = _random(2, (2, 4, 5)) > 0.5
  per_texel = np.abs(prediction - target).mean(-1)
  np.testing.assert_allclose(
    losses.texture_loss(prediction, target, mask), per_texel[mask].mean(), rtol=1e-5
  )
  squared = ((prediction - target) ** 2).mean(-1)
  np.testing.assert_allclose(
    losses.texture_loss(prediction, target, mask, kind="l2"), squared[mask].mean(), rtol=1e-5
  )
  # Texels outside the mask do not matter.
  changed = np.where(mask[..., None], prediction, 100.0)
  np.testing.assert_allclose(
    losses.texture_loss(changed, target, mask), per_texel[mask].mean(), rtol=1e-5
  )
  with pytest.raises(ValueError, match="kind"):
    losses.texture_loss(prediction, target, mask, kind="l3")
  with pytest.raises(ValueError, match="mask must have shape"):
    losses.texture_loss(prediction, target, mask[..., None])


def test_landmark_loss_is_weighted_mean_squared_distance():
  prediction, target = _random(0, (2, 68, 2), 0, 64), _random(1, (2, 68, 2), 0, 64)
  weights = _random(2, (2, 68))
  squared = np.sum((prediction - target) ** 2, axis=-1)
  np.testing.assert_allclose(losses.landmark_loss(prediction, target), squared.mean(), rtol=1e-5)
  np.testing.assert_allclose(
    losses.landmark_loss(prediction, target, weights),
    np.sum(weights * squared) / np.sum(weights),
    rtol=1e-5,
  )
  with pytest.raises(ValueError, match=r"\(\.\.\., L, 2\)"):
    losses.landmark_loss(prediction[..., :1], target[..., :1])


def test_masked_l1_matches_numpy_and_is_safe_for_an_empty_mask():
  prediction, target = _random(0, (2, 6, 6, 3)), _random(1, (2, 6, 6, 3))
  mask = _random(2, (2, 6, 6)) > 0.3
  expected = np.abs(prediction - target).mean(-1)[mask].mean()
  np.testing.assert_allclose(losses.masked_l1(prediction, target, mask), expected, rtol=1e-5)
  np.testing.assert_allclose(
    losses.masked_l1(prediction, target), np.abs(prediction - target).mean(), rtol=1e-5
  )
  empty = np.zeros_like(mask)
  assert losses.masked_l1(prediction, target, empty) == 0.0
  gradient = jax.grad(losses.masked_l1)(jnp.asarray(prediction), target, empty)
  assert np.all(np.isfinite(gradient)) and np.all(gradient == 0.0)


# --------------------------------------------------------------------------- albedo regularisers


def test_albedo_symmetry_loss_is_zero_for_symmetric_albedo_and_matches_numpy():
  half = _random(0, (2, 6, 4, 3))
  symmetric = np.concatenate([half, half[:, :, ::-1]], axis=2)  # (2, 6, 8, 3)
  assert float(losses.albedo_symmetry_loss(symmetric)) == pytest.approx(0.0, abs=1e-7)
  albedo = _random(1, (2, 6, 8, 3))
  mask = _random(2, (2, 6, 8)) > 0.3
  weight = (mask & mask[:, :, ::-1]).astype(np.float32)
  per_texel = np.abs(albedo - albedo[:, :, ::-1]).mean(-1)
  np.testing.assert_allclose(
    losses.albedo_symmetry_loss(albedo, mask), np.sum(per_texel * weight) / weight.sum(), rtol=1e-5
  )


def _constancy_brute_force(albedo, texture, mask, alpha, p):
  """Σ_i Σ_{j in 4-neighbourhood(i)} ω_ij ||A_i - A_j||^p / Σ ω_ij by explicit loops."""
  numerator = denominator = 0.0
  batch, height, width, _ = albedo.shape
  chroma = texture / (texture.sum(-1, keepdims=True) + 1e-6)
  for b, i, j in itertools.product(range(batch), range(height), range(width)):
    for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
      k, m = i + di, j + dj
      if not (0 <= k < height and 0 <= m < width) or not (mask[b, i, j] and mask[b, k, m]):
        continue
      weight = np.exp(-alpha * np.linalg.norm(chroma[b, i, j] - chroma[b, k, m]))
      numerator += weight * np.linalg.norm(albedo[b, i, j] - albedo[b, k, m]) ** p
      denominator += weight
  return numerator / denominator


def test_albedo_constancy_loss_matches_a_brute_force_4_neighbourhood_sum():
  albedo = _random(0, (2, 5, 6, 3)).astype(np.float64)
  texture = _random(1, (2, 5, 6, 3), 0.05, 1.0).astype(np.float64)
  mask = _random(2, (2, 5, 6)) > 0.2
  expected = _constancy_brute_force(albedo, texture, mask, 15.0, 0.8)
  value = losses.albedo_constancy_loss(
    jnp.asarray(albedo, jnp.float32), jnp.asarray(texture, jnp.float32), mask
  )
  np.testing.assert_allclose(value, expected, rtol=1e-4)
  assert losses.ALBEDO_CONSTANCY_ALPHA == 15.0 and losses.ALBEDO_CONSTANCY_P == 0.8


def test_albedo_constancy_prefers_albedo_edges_on_chromaticity_edges():
  texture = np.full((1, 4, 6, 3), 0.5, np.float32)
  texture[:, :, 3:] = [0.6, 0.3, 0.3]  # a chromaticity edge between columns 2 and 3
  constant = np.full((1, 4, 6, 3), 0.4, np.float32)
  assert float(losses.albedo_constancy_loss(constant, texture)) == 0.0
  aligned = constant.copy()
  aligned[:, :, 3:] = 0.8
  misaligned = constant.copy()
  misaligned[:, :, 2:] = 0.8  # the same step one column off the colour edge
  assert losses.albedo_constancy_loss(aligned, texture) < losses.albedo_constancy_loss(
    misaligned, texture
  )
  # Pure shading (same chromaticity, different brightness) is not an edge.
  shaded = np.full((1, 4, 6, 3), 0.5, np.float32)
  shaded[:, :, 3:] = 0.25
  np.testing.assert_allclose(
    losses.albedo_constancy_loss(aligned, shaded),
    losses.albedo_constancy_loss(misaligned, shaded),
    rtol=1e-5,
  )


def test_albedo_constancy_gradient_matches_finite_differences():
  albedo = jnp.asarray(_random(0, (1, 3, 4, 3)))
  texture = jnp.asarray(_random(1, (1, 3, 4, 3), 0.1, 1.0))
  loss = jax.jit(lambda a: losses.albedo_constancy_loss(a, texture))
  gradient = np.asarray(jax.grad(loss)(albedo))
  step = 1e-2
  for index in [(0, 0, 0, 0), (0, 1, 2, 1), (0, 2, 3, 2)]:
    delta = jnp.zeros_like(albedo).at[index].set(step)
    numeric = (loss(albedo + delta) - loss(albedo - delta)) / (2 * step)
    np.testing.assert_allclose(gradient[index], numeric, rtol=2e-2, atol=1e-4)
  # Finite where neighbours are equal, despite ||d||^0.8.
  assert np.all(np.isfinite(jax.grad(loss)(jnp.zeros_like(albedo))))


# --------------------------------------------------------------------------- inpainting


def test_uncertainty_weighting_is_minimised_at_log_of_the_loss():
  loss_map = jnp.asarray(_random(0, (3, 4), 0.05, 2.0))
  best = jnp.log(loss_map)
  total = lambda c: jnp.sum(losses.uncertainty_weighted(loss_map, c))
  np.testing.assert_allclose(jax.grad(total)(best), 0.0, atol=1e-6)
  np.testing.assert_allclose(
    losses.uncertainty_weighted(loss_map, best), (1.0 + np.log(loss_map)) / 2, rtol=1e-5
  )
  for shift in (-0.3, 0.3):
    assert total(best + shift) > total(best)


def test_uncertainty_l1_matches_numpy():
  prediction, target = _random(0, (2, 5, 5, 3)), _random(1, (2, 5, 5, 3))
  log_uncertainty = _random(2, (2, 5, 5), -1.0, 1.0)
  mask = _random(3, (2, 5, 5)) > 0.4
  l1 = np.abs(prediction - target).mean(-1)
  weighted = (l1 * np.exp(-log_uncertainty) + log_uncertainty) / 2
  np.testing.assert_allclose(
    losses.uncertainty_l1(prediction, target, log_uncertainty, mask),
    weighted[mask].mean(),
    rtol=1e-5,
  )
  np.testing.assert_allclose(
    losses.blended_image_loss(prediction, target, mask, log_uncertainty),
    weighted[mask].mean(),
    rtol=1e-5,
  )
  np.testing.assert_allclose(
    losses.blended_image_loss(prediction, target, mask), l1[mask].mean(), rtol=1e-5
  )
  with pytest.raises(ValueError, match="log_uncertainty"):
    losses.uncertainty_l1(prediction, target, log_uncertainty[..., None], mask)


def test_inpainting_symmetry_ignores_small_differences_and_counts_masked_texels_only():
  height, width = 4, 6
  visible = np.ones((1, height, width), np.float32)
  visible[:, :, :2] = 0.0  # left columns hidden: their mirrors (right columns) are visible
  half = _random(0, (1, height, width // 2, 3))
  symmetric = np.concatenate([half, half[:, :, ::-1]], axis=2)
  assert float(losses.inpainting_symmetry_loss(symmetric, visible)) == 0.0
  # Differences of at most the threshold count as symmetric.
  small = symmetric.copy()
  small[:, :, 0] += 0.004
  assert float(losses.inpainting_symmetry_loss(small, visible)) == 0.0
  # Larger ones count, element by element, over the masked texels with visible twins.
  albedo = symmetric.copy()
  albedo[:, 1, 0, 0] += 0.3
  albedo[:, 2, 1, :] -= 0.002  # below the threshold: ignored
  difference = np.abs(albedo - albedo[:, :, ::-1])
  difference[difference <= 0.005] = 0.0
  weight = (1 - visible) * visible[:, :, ::-1]
  expected = np.sum(difference.mean(-1) * weight) / weight.sum()
  value = losses.inpainting_symmetry_loss(albedo, visible)
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  assert expected > 0
  # The mirror is a frozen target: no gradient reaches the visible twin.
  gradient = jax.grad(losses.inpainting_symmetry_loss)(jnp.asarray(albedo), visible)
  assert np.all(gradient[:, 1, width - 1] == 0.0) and gradient[0, 1, 0, 0] > 0
  # With c the per-texel loss is uncertainty-weighted.
  log_uncertainty = np.full((1, height, width), 0.5, np.float32)
  weighted = (difference.mean(-1) * np.exp(-0.5) + 0.5) / 2
  np.testing.assert_allclose(
    losses.inpainting_symmetry_loss(albedo, visible, log_uncertainty),
    np.sum(weighted * weight) / weight.sum(),
    rtol=1e-5,
  )


# --------------------------------------------------------------------------- segmentation


def _log_softmax(logits):
  shifted = logits - logits.max(-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def test_focal_loss_is_cross_entropy_at_gamma_zero():
  logits = _random(0, (2, 5, 5, 3), -3, 3)
  labels = np.random.default_rng(1).integers(0, 3, (2, 5, 5))
  log_p = np.take_along_axis(_log_softmax(logits.astype(np.float64)), labels[..., None], -1)[..., 0]
  np.testing.assert_allclose(losses.focal_loss(logits, labels, gamma=0.0), -log_p.mean(), rtol=1e-5)


def test_focal_loss_with_gamma_weights_and_mask_matches_numpy():
  logits = _random(0, (2, 4, 4, 3), -3, 3)
  labels = np.random.default_rng(1).integers(0, 3, (2, 4, 4))
  weights = np.array([0.25, 1.0, 2.0], np.float32)
  mask = _random(2, (2, 4, 4)) > 0.3
  log_p = np.take_along_axis(_log_softmax(logits.astype(np.float64)), labels[..., None], -1)[..., 0]
  terms = -weights[labels] * (1 - np.exp(log_p)) ** 2 * log_p
  np.testing.assert_allclose(
    losses.focal_loss(logits, labels, gamma=2.0, class_weights=weights, mask=mask),
    terms[mask].mean(),
    rtol=1e-5,
  )
  # Focusing: confident correct pixels weigh less than under cross-entropy.
  assert losses.focal_loss(logits, labels, gamma=2.0) < losses.focal_loss(logits, labels, gamma=0.0)
  with pytest.raises(ValueError, match="class_weights"):
    losses.focal_loss(logits, labels, class_weights=weights[:2])
  with pytest.raises(ValueError, match="labels"):
    losses.focal_loss(logits, labels[..., :2])


def test_focal_loss_gradient_is_finite_for_certain_predictions():
  logits = jnp.array([[200.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
  labels = jnp.array([0, 1])
  for gamma in (0.0, 0.5, 2.0):
    gradient = jax.grad(lambda x, g=gamma: losses.focal_loss(x, labels, gamma=g))(logits)
    assert np.all(np.isfinite(gradient)), gamma


# --------------------------------------------------------------------------- transforms


def test_losses_jit_and_vmap():
  prediction, target = _random(0, (3, 4, 4, 3)), _random(1, (3, 4, 4, 3))
  log_uncertainty, mask = _random(2, (3, 4, 4)), _random(3, (3, 4, 4)) > 0.2
  eager = losses.uncertainty_l1(prediction, target, log_uncertainty, mask)
  np.testing.assert_allclose(
    jax.jit(losses.uncertainty_l1)(prediction, target, log_uncertainty, mask), eager, rtol=1e-6
  )
  per_sample = jax.vmap(losses.uncertainty_l1)(prediction, target, log_uncertainty, mask)
  for b in range(3):
    np.testing.assert_allclose(
      per_sample[b],
      losses.uncertainty_l1(prediction[b], target[b], log_uncertainty[b], mask[b]),
      rtol=1e-6,
    )
  texture = _random(4, (3, 4, 4, 3), 0.1, 1.0)
  np.testing.assert_allclose(
    jax.jit(losses.albedo_constancy_loss)(prediction, texture, mask),
    losses.albedo_constancy_loss(prediction, texture, mask),
    rtol=1e-5,
  )
  np.testing.assert_allclose(
    jax.jit(losses.inpainting_symmetry_loss)(prediction, mask, log_uncertainty),
    losses.inpainting_symmetry_loss(prediction, mask, log_uncertainty),
    rtol=1e-6,
  )
  labels = np.random.default_rng(5).integers(0, 3, (3, 4, 4))
  focal = jax.jit(lambda x, y: losses.focal_loss(x, y, gamma=2.0))
  np.testing.assert_allclose(
    focal(prediction, labels), losses.focal_loss(prediction, labels), rtol=1e-6
  )
