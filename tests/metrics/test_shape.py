"""Diversity, specificity and sparse fitting against brute-force numpy references."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.spatial
import scipy.spatial.transform

from jaxface.metrics import shape
from jaxface.metrics.shape import ShapeGenerator, aligned_vertex_error, similarity_align


def brute_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """(N, V, 3), (N, V, 3) -> (N,) with plain loops over vertices."""
  out = np.zeros(len(a))
  for n in range(len(a)):
    out[n] = np.mean([np.sqrt(np.sum((a[n, v] - b[n, v]) ** 2)) for v in range(a.shape[1])])
  return out


def random_generator(rng, num_vertices=30) -> tuple[ShapeGenerator, dict]:
  """Tiny random linear generator: mean + A_id z_id + A_exp z_exp + A_noise z_noise."""
  parts = {
    "mean": rng.normal(size=(num_vertices, 3)).astype(np.float32),
    "identity": rng.normal(size=(4, num_vertices, 3)).astype(np.float32),
    "expression": rng.normal(size=(3, num_vertices, 3)).astype(np.float32),
    "noise": 0.1 * rng.normal(size=(2, num_vertices, 3)).astype(np.float32),
  }

  def decode(codes):
    out = jnp.asarray(parts["mean"])
    for name in ("identity", "expression", "noise"):
      out = out + jnp.einsum("nk,kvd->nvd", codes[name], parts[name])
    return out

  generator = ShapeGenerator(
    code_dims={"identity": 4, "expression": 3, "noise": 2},
    decode=decode,
    triangles=np.zeros((1, 3), np.int32),
  )
  return generator, parts


def numpy_decode(parts, codes) -> np.ndarray:
  out = parts["mean"][None].astype(np.float64)
  for name in ("identity", "expression", "noise"):
    out = out + np.einsum("nk,kvd->nvd", codes[name], parts[name])
  return out


def test_mean_vertex_distance_matches_loops():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(2, 5, 7, 3))
  np.testing.assert_allclose(shape.mean_vertex_distance(a, b), brute_distance(a, b), rtol=1e-5)
  with pytest.raises(ValueError, match="b must have"):
    shape.mean_vertex_distance(a, b[:, :3])


def test_generator_sample_codes_and_generate():
  generator, parts = random_generator(np.random.default_rng(1))
  codes = generator.sample_codes(np.random.default_rng(2), 11)
  assert {k: v.shape for k, v in codes.items()} == {
    "identity": (11, 4),
    "expression": (11, 3),
    "noise": (11, 2),
  }
  assert all(v.dtype == np.float32 for v in codes.values())
  meshes = generator.generate(codes, batch_size=4)  # 3 chunks, the last padded
  assert meshes.shape == (11, 30, 3) and meshes.dtype == np.float32
  np.testing.assert_allclose(meshes, numpy_decode(parts, codes), atol=1e-4)
  with pytest.raises(ValueError, match="codes\\['expression'\\] must have shape"):
    generator.generate(dict(codes, expression=codes["expression"][:, :2]))


def test_generator_diversity_matches_brute_force():
  generator, parts = random_generator(np.random.default_rng(3))
  num_pairs = 37
  result = shape.generator_diversity(
    generator, num_pairs=num_pairs, rng=np.random.default_rng(4), batch_size=16
  )
  assert set(result) == {"global", "same_identity", "same_expression"}
  # Reference: the documented sampling (independent a, b codes; b copies the shared factor).
  rng = np.random.default_rng(4)
  for key in ["global", "same_identity", "same_expression"]:
    codes_a = generator.sample_codes(rng, num_pairs)
    codes_b = generator.sample_codes(rng, num_pairs)
    if key != "global":
      codes_b[key[5:]] = codes_a[key[5:]]
    expected = brute_distance(numpy_decode(parts, codes_a), numpy_decode(parts, codes_b)).mean()
    np.testing.assert_allclose(result[key], expected, rtol=1e-4)
  # Sharing a factor removes its variation: every "same" diversity is below the global one.
  assert result["same_identity"] < result["global"]
  assert result["same_expression"] < result["global"]


def test_same_identity_diversity_is_zero_without_expression(linear_parts):
  generator = linear_parts.generator("no_expression")
  result = shape.generator_diversity(generator, num_pairs=64, rng=0, batch_size=32)
  assert result["same_identity"] < 1e-4  # identical meshes (float32 rounding only)
  assert result["global"] > 1.0  # mm
  np.testing.assert_allclose(result["same_expression"], result["global"], rtol=0.3)


def test_sample_pairs_uniform_over_valid_pairs():
  labels = np.array([0, 0, 1, 1, 1, -1, 2, 1])  # class 2 has a single member: no pair
  i, j = shape.sample_pairs(labels, 30_000, np.random.default_rng(5))
  assert np.all(i != j) and np.all(labels[i] == labels[j]) and np.all(labels[i] >= 0)
  valid = [p for p in itertools.combinations(range(len(labels)), 2) if labels[p[0]] == labels[p[1]]]
  valid = [p for p in valid if labels[p[0]] >= 0]
  assert len(valid) == 1 + 6
  counts = {p: 0 for p in valid}
  for a, b in zip(i, j, strict=True):
    counts[(min(a, b), max(a, b))] += 1
  expected = 30_000 / len(valid)
  assert all(abs(c - expected) < 5 * np.sqrt(expected) for c in counts.values()), counts
  none = shape.sample_pairs(np.array([0, 1, -1]), 10, np.random.default_rng(0))
  assert none[0].size == 0


def test_data_diversity_exact_single_pairs():
  rng = np.random.default_rng(6)
  vertices = rng.normal(size=(5, 9, 3)).astype(np.float32)
  labels = {
    "identity": np.array([0, -1, -1, 0, 1]),  # one valid pair: (0, 3)
    "expression": np.array([-1, -1, -1, -1, -1]),  # no pair
  }
  result = shape.data_diversity(vertices, labels, num_pairs=50, rng=rng)
  np.testing.assert_allclose(
    result["same_identity"], brute_distance(vertices[[0]], vertices[[3]])[0], rtol=1e-5
  )
  assert np.isnan(result["same_expression"])
  two = shape.data_diversity(vertices[:2], {}, num_pairs=20, rng=rng)
  np.testing.assert_allclose(
    two["global"], brute_distance(vertices[:1], vertices[1:2])[0], rtol=1e-5
  )


def test_data_diversity_matches_exhaustive_mean():
  rng = np.random.default_rng(7)
  # Group 0 is tight (2 meshes), group 1 spread out (6 meshes): weighting per
  # group instead of per pair would give a very different mean.
  centre = rng.normal(size=(12, 3))
  vertices = np.stack(
    [centre + 0.01 * rng.normal(size=(12, 3)) for _ in range(2)]
    + [centre + 2.0 * rng.normal(size=(12, 3)) for _ in range(6)]
    + [rng.normal(size=(12, 3)) for _ in range(2)]
  ).astype(np.float32)
  labels = {"identity": np.array([0, 0, 1, 1, 1, 1, 1, 1, -1, -1])}
  pairs = [(a, b) for a, b in itertools.combinations(range(10), 2)]
  same = [(a, b) for a, b in pairs if labels["identity"][a] == labels["identity"][b] >= 0]
  dist = lambda ps: brute_distance(vertices[[a for a, _ in ps]], vertices[[b for _, b in ps]])
  all_d, same_d = dist(pairs), dist(same)
  num_pairs = 20_000
  result = shape.data_diversity(vertices, labels, num_pairs=num_pairs, rng=rng)
  for key, d in [("global", all_d), ("same_identity", same_d)]:
    tolerance = 5 * d.std() / np.sqrt(num_pairs)
    assert abs(result[key] - d.mean()) < tolerance, (key, result[key], d.mean())
  group_weighted = (dist(same[:1]).mean() + dist(same[1:]).mean()) / 2
  assert abs(group_weighted - same_d.mean()) > 20 * same_d.std() / np.sqrt(num_pairs)


def test_data_diversity_validates():
  with pytest.raises(ValueError, match="vertices must have shape"):
    shape.data_diversity(np.zeros((4, 5)), {})
  with pytest.raises(ValueError, match=r"labels\['identity'\] must have shape \(4,\)"):
    shape.data_diversity(np.zeros((4, 5, 3)), {"identity": np.zeros(3, int)})


def brute_specificity(samples, training) -> np.ndarray:
  return np.array([min(brute_distance(s[None], t[None])[0] for t in training) for s in samples])


def test_specificity_of_training_set_is_zero():
  training = np.random.default_rng(8).normal(size=(9, 15, 3)).astype(np.float32)
  per_sample = shape.specificity_per_sample(training[[4, 0, 8]], training, 2, 4)
  np.testing.assert_array_equal(per_sample, 0.0)
  assert shape.specificity(training, training) == 0.0


@pytest.mark.parametrize("chunks", [(1, 1), (3, 5), (7, 13), (256, 256)])
def test_specificity_matches_brute_force(chunks):
  rng = np.random.default_rng(9)
  samples = rng.normal(size=(7, 20, 3)).astype(np.float32)
  training = rng.normal(size=(13, 20, 3)).astype(np.float32)
  expected = brute_specificity(samples, training)
  per_sample = shape.specificity_per_sample(samples, training, *chunks)
  np.testing.assert_allclose(per_sample, expected, rtol=1e-5)
  np.testing.assert_allclose(
    shape.specificity(samples, training, *chunks), expected.mean(), rtol=1e-5
  )


def test_specificity_validates():
  with pytest.raises(ValueError, match="same V"):
    shape.specificity(np.zeros((2, 5, 3)), np.zeros((2, 6, 3)))
  with pytest.raises(ValueError, match="training must have shape"):
    shape.specificity(np.zeros((2, 5, 3)), np.zeros((2, 5)))


def ridge_solution(parts, keypoints, targets, regularisation) -> np.ndarray:
  """Closed-form eq. 13 for the linear generator: (N, Ki + Ke) codes (noise unused -> 0).

  Minimises (1/p) |A z - b|^2 + lambda |z|^2: (A^T A / p + lambda I) z = A^T b / p."""
  basis = np.concatenate([parts.identity, parts.expression])[:, keypoints]  # (K, p, 3)
  a = basis.reshape(len(basis), -1).T.astype(np.float64)  # (3p, K)
  rhs = (targets - parts.mean[keypoints]).reshape(len(targets), -1).T  # (3p, N)
  p = len(keypoints)
  return np.linalg.solve(a.T @ a / p + regularisation * np.eye(a.shape[1]), a.T @ rhs / p).T


@pytest.mark.parametrize("regularisation", [0.0, 0.01, 10.0])
def test_fit_sparse_matches_closed_form(linear_parts, procedural, regularisation):
  from tests.metrics.conftest import NUM_EXPRESSION, NUM_IDENTITY

  generator = linear_parts.generator("linear")
  rng = np.random.default_rng(10)
  identity = rng.standard_normal((5, NUM_IDENTITY))
  expression = rng.standard_normal((5, NUM_EXPRESSION))
  truth = linear_parts.shape(identity, expression).astype(np.float32)
  keypoints = np.asarray(procedural.landmarks)
  codes, fitted = shape.fit_sparse(
    generator,
    keypoints,
    truth[:, keypoints],
    regularisation,
    num_steps=2000,
    learning_rate=0.2,
    rng=jax.random.PRNGKey(0),
    tolerance=1e-7,
    num_starts=2 if regularisation == 0.01 else 1,
  )
  expected = ridge_solution(linear_parts, keypoints, truth[:, keypoints], regularisation)
  unregularised = ridge_solution(linear_parts, keypoints, truth[:, keypoints], 0.0)
  if regularisation > 0:  # the paper's lambdas move unit-variance codes by over 1% here
    assert np.abs(expected - unregularised).max() > 0.01
  found = np.concatenate([codes["identity"], codes["expression"]], axis=1)
  np.testing.assert_allclose(found, expected, atol=1e-3)
  # The noise code is unused by this generator: only the prior acts on it.
  noise = np.abs(codes["noise"]).max()
  assert noise < 1e-2 if regularisation > 0 else noise > 0.05
  assert fitted.shape == truth.shape
  if regularisation == 0:
    np.testing.assert_allclose(expected, np.concatenate([identity, expression], 1), atol=1e-3)


def test_sparse_reconstruction_rmse(linear_parts, procedural):
  from tests.metrics.conftest import NUM_EXPRESSION, NUM_IDENTITY

  generator = linear_parts.generator("linear")
  rng = np.random.default_rng(11)
  truth = linear_parts.shape(
    rng.standard_normal((4, NUM_IDENTITY)), rng.standard_normal((4, NUM_EXPRESSION))
  ).astype(np.float32)
  keypoints = np.asarray(procedural.landmarks)
  kwargs = dict(num_steps=1000, learning_rate=0.2, rng=jax.random.PRNGKey(1))
  exact = shape.sparse_reconstruction_rmse(generator, keypoints, truth, 0.0, **kwargs)
  assert exact < 1e-3  # mm
  # A huge lambda pulls the codes to 0: the fit is the mean face.
  mean_rmse = np.sqrt(np.mean(np.sum((truth - linear_parts.mean) ** 2, axis=-1)))
  pulled = shape.sparse_reconstruction_rmse(generator, keypoints, truth, 1e9, **kwargs)
  np.testing.assert_allclose(pulled, mean_rmse, rtol=1e-3)
  assert mean_rmse > 1.0
  with pytest.raises(ValueError, match="targets must have shape"):
    shape.fit_sparse(generator, keypoints, truth[:, :5], 0.0)


def test_similarity_align_recovers_a_known_similarity_and_matches_scipy_procrustes():
  rng = np.random.default_rng(0)
  target = rng.normal(size=(200, 3))
  rotation = scipy.spatial.transform.Rotation.from_euler("xyz", [20, -35, 50], degrees=True)
  source = 0.37 * rotation.apply(target) + np.array([4.0, -2.0, 1.0])
  np.testing.assert_allclose(similarity_align(source, target), target, atol=1e-9)
  noisy = source + 0.01 * rng.normal(size=source.shape)
  aligned = similarity_align(noisy, target)
  # scipy's procrustes standardises both sets; its disparity is our residual in those units.
  _, _, disparity = scipy.spatial.procrustes(target, noisy)
  centred = target - target.mean(0)
  ours = np.sum((aligned - target) ** 2) / np.sum(centred**2)
  assert ours == pytest.approx(disparity, rel=1e-6)
  # The rotation is scipy's orthogonal Procrustes one (no reflection needed here).
  expected, _ = scipy.linalg.orthogonal_procrustes(noisy - noisy.mean(0), centred)
  spread = noisy - noisy.mean(0)
  scale = np.sqrt(1 - disparity) * np.linalg.norm(centred) / np.linalg.norm(spread)
  np.testing.assert_allclose(aligned - target.mean(0), scale * spread @ expected, atol=1e-6)
  errors = aligned_vertex_error(np.stack([source, noisy]), np.stack([target, target]))
  assert errors[0] == pytest.approx(0.0, abs=1e-9) and errors[1] > 0
