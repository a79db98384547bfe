"""The personal rig: identity-specific blendshape corrections and expression-dependent albedo."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

from jaxface.data import personal
from jaxface.data.synthetic import emotion_vector, identity_codes


@pytest.fixture(scope="module")
def codes(procedural):
  return identity_codes(procedural, 3, seed=0)


@pytest.fixture(scope="module")
def rig(procedural, codes):
  return personal.personal_rig(procedural, codes[0])


def test_expression_response_stays_in_range_and_depends_on_identity(procedural, codes):
  weights = emotion_vector(procedural, "happiness")
  responses = [personal.expression_response(code, weights, 0.8) for code in codes]
  for response in responses:
    assert response.min() >= 0.0 and response.max() <= 1.0
    np.testing.assert_array_equal(response[weights == 0], 0.0)  # no blendshape appears
  assert not np.allclose(responses[0], responses[1])
  stronger = personal.expression_response(codes[0], weights, 1.0)
  assert np.all(stronger >= responses[0])  # monotone in intensity


def test_rig_shapes_and_the_neutral_face_is_unchanged(procedural, codes, rig):
  ke, v = procedural.num_expression, procedural.num_vertices
  assert rig.shape_corrections.shape == (ke, v, 3)
  assert rig.albedo_changes.shape == (ke, *procedural.albedo_mean.shape)
  neutral = np.zeros(ke, np.float32)
  np.testing.assert_array_equal(
    personal.personal_shape(procedural, rig, codes[0], neutral),
    np.asarray(procedural.shape(codes[0], neutral)),
  )
  np.testing.assert_allclose(
    personal.personal_albedo(procedural, rig, None, neutral),
    np.clip(np.asarray(procedural.albedo_mean), 0, 1),
  )


def test_composition_is_the_sum_over_blendshapes_of_generic_plus_correction(procedural, codes, rig):
  weights = emotion_vector(procedural, "surprise")
  expected = np.asarray(procedural.vertices) + np.einsum(
    "k,kvd->vd", codes[0], np.asarray(procedural.identity_basis)
  )
  for k in np.flatnonzero(weights):  # one blendshape at a time, as a loop
    expected = expected + weights[k] * (
      np.asarray(procedural.expression_basis)[k] + rig.shape_corrections[k]
    )
  np.testing.assert_allclose(
    personal.personal_shape(procedural, rig, codes[0], weights), expected, atol=1e-4
  )


def test_corrections_live_where_the_blendshape_moves_and_are_smooth(procedural, rig):
  basis = np.asarray(procedural.expression_basis)
  magnitude = np.linalg.norm(basis, axis=-1)  # (Ke, V)
  correction = np.linalg.norm(rig.shape_corrections, axis=-1)
  # |g - 1| and |h| are at most 0.35 sqrt(J) (J fields of weight <= 0.35 / sqrt(J)), so
  # |dB_k| <= sqrt(2) 0.35 sqrt(J) |B_k|: nothing where B_k does not move.
  bound = np.sqrt(2.0) * 0.35 * np.sqrt(personal.NUM_FIELDS)
  assert np.all(correction <= bound * magnitude * (1 + 1e-5) + 1e-12)
  assert (magnitude < 1e-9).any()
  # The correction relative to the blendshape's motion changes little across a mesh edge.
  relative = correction / np.maximum(magnitude, 1e-9)  # (Ke, V)
  edges = np.asarray(procedural.triangles)[:, [0, 1]]
  moving = (magnitude[:, edges[:, 0]] > 1e-3) & (magnitude[:, edges[:, 1]] > 1e-3)
  jumps = np.abs(relative[:, edges[:, 0]] - relative[:, edges[:, 1]])[moving]
  assert np.percentile(jumps, 99) < 0.1 * relative[magnitude > 1e-3].max()
  assert 0.05 < np.linalg.norm(rig.shape_corrections) / np.linalg.norm(basis) < 0.5


def test_rig_is_deterministic_identity_specific_and_smooth_in_the_code(procedural, codes, rig):
  again = personal.personal_rig(procedural, codes[0].copy())
  np.testing.assert_array_equal(again.shape_corrections, rig.shape_corrections)
  other = personal.personal_rig(procedural, codes[1])
  assert np.linalg.norm(other.shape_corrections - rig.shape_corrections) > 0.3 * np.linalg.norm(
    rig.shape_corrections
  )
  nudged = personal.personal_rig(procedural, codes[0] + 1e-3)
  change = np.linalg.norm(nudged.shape_corrections - rig.shape_corrections)
  assert change < 1e-2 * np.linalg.norm(rig.shape_corrections)
  none = personal.personal_rig(procedural, codes[0], shape_strength=0.0, albedo_strength=0.0)
  assert not none.shape_corrections.any() and not none.albedo_changes.any()


def test_albedo_changes_flush_and_crease_only_where_the_expression_acts(procedural, rig):
  basis_magnitude = np.linalg.norm(np.asarray(procedural.expression_basis), axis=-1).max(-1)
  k = int(np.argmax(basis_magnitude))
  change = rig.albedo_changes[k]  # (Hu, Wu, 3)
  active = np.abs(change).sum(-1) > 1e-6
  assert 0.0 < active.mean() < 0.9  # a region of the face, not all of it
  # flush: red rises relative to green wherever the blendshape acts; creases darken all channels.
  assert np.all(change[..., 0][active] >= change[..., 1][active] - 1e-6)
  assert change[..., 1].min() < -0.5 * personal.CREASE_DEPTH * 0.1
  weights = np.zeros(procedural.num_expression, np.float32)
  weights[k] = 1.0
  albedo = personal.personal_albedo(procedural, rig, None, weights)
  assert albedo.min() >= 0.0 and albedo.max() <= 1.0
  untouched = ~active
  np.testing.assert_allclose(
    albedo[untouched], np.clip(np.asarray(procedural.albedo_mean), 0, 1)[untouched], atol=1e-6
  )


def test_generic_fit_residual_on_cases_with_known_answers(procedural, codes):
  basis = np.asarray(procedural.expression_basis, np.float64)
  weights = 0.5 * emotion_vector(procedural, "happiness")
  inside = personal.PersonalRig(0.5 * basis.astype(np.float32), np.zeros(1, np.float32))
  # B + 0.5 B at weight w is the generic rig at weight 1.5 w, still within [0, 1]
  assert personal.generic_fit_residual(procedural, inside, weights) < 1e-5

  flat = basis.reshape(len(basis), -1)
  noise = np.random.default_rng(0).normal(size=flat.shape)
  coefficients, *_ = np.linalg.lstsq(flat.T, noise.T, rcond=None)
  orthogonal = (noise - (flat.T @ coefficients).T) * 1e-3  # outside the generic rig's span
  outside = personal.PersonalRig(orthogonal.reshape(basis.shape).astype(np.float32), None)
  generic_part = np.linalg.norm(weights @ flat)
  missed = np.linalg.norm(weights @ orthogonal)
  expected = missed / np.hypot(generic_part, missed)
  assert personal.generic_fit_residual(procedural, outside, weights) == pytest.approx(
    expected, rel=1e-3
  )
  assert personal.generic_fit_residual(procedural, outside, np.zeros_like(weights)) == 0.0


def test_the_default_rig_leaves_a_share_of_each_emotion_to_personalisation(procedural, rig):
  residuals = [
    personal.generic_fit_residual(procedural, rig, emotion_vector(procedural, name))
    for name in ("happiness", "surprise", "anger")
  ]
  assert min(residuals) > 0.02 and max(residuals) < 0.5


def test_a_code_of_the_wrong_size_is_named(procedural):
  with pytest.raises(ValueError, match=r"identity code must have shape \(50,\)"):
    personal.personal_rig(procedural, np.zeros(3))


def test_generic_fit_reaches_the_residual_of_the_full_bounded_least_squares(procedural, rig):
  weights = 0.7 * emotion_vector(procedural, "surprise")
  basis = np.asarray(procedural.expression_basis, np.float64).reshape(procedural.num_expression, -1)
  target = weights @ (basis + np.asarray(rig.shape_corrections, np.float64).reshape(basis.shape))
  full = scipy.optimize.lsq_linear(basis.T, target, bounds=(0.0, 1.0), tol=1e-12).x
  fitted = personal.generic_fit(procedural, rig, weights)
  assert fitted.min() >= 0.0 and fitted.max() <= 1.0
  residual = lambda x: np.linalg.norm(basis.T @ x - target)
  assert residual(fitted) == pytest.approx(residual(full), rel=1e-6)


def test_separable_residual_energy_is_what_a_least_squares_fit_on_both_bases_misses(
  procedural, codes, rig
):
  weights = emotion_vector(procedural, "happiness")
  outside, total = personal.separable_residual_energy(procedural, rig, weights)
  # The reference: numpy's least squares on the stacked identity and expression bases.
  bases = np.concatenate([
    np.asarray(procedural.identity_basis, np.float64).reshape(procedural.num_identity, -1),
    np.asarray(procedural.expression_basis, np.float64).reshape(procedural.num_expression, -1),
  ]).T  # fmt: skip
  corrections = np.asarray(rig.shape_corrections, np.float64).reshape(procedural.num_expression, -1)
  target = weights @ (bases[:, procedural.num_identity :].T + corrections)
  fit = np.linalg.lstsq(bases, target, rcond=None)[0]
  np.testing.assert_allclose(outside, np.sum((bases @ fit - target) ** 2), rtol=1e-6)
  np.testing.assert_allclose(total, target @ target, rtol=1e-6)
  assert 0 < outside < total
  # The generic rig is separable: nothing outside.
  generic = personal.personal_rig(procedural, codes[0], shape_strength=0.0)
  outside, total = personal.separable_residual_energy(procedural, generic, weights)
  assert outside < 1e-9 * total
