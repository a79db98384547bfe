"""The decoupled GAN's loss terms on hand-made cases."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse

from jaxface.geometry.laplacian import cotangent_laplacian
from jaxface.methods.decoupled_gan import losses
from tests.helpers import grid_mesh


def test_balanced_class_weights_equalise_classes_and_skip_unlabelled():
  labels = np.array([0, 0, 0, 1, -1, -1, 2, 2])
  weights = losses.balanced_class_weights(labels, 4)
  counts = np.array([3, 1, 2, 0])
  np.testing.assert_allclose(weights[:3], 6 / (3 * counts[:3]), rtol=1e-6)
  assert weights[3] == 0.0
  np.testing.assert_allclose(weights[:3] * counts[:3], 2.0)  # each class carries the same mass
  with pytest.raises(ValueError, match="out of range"):
    losses.balanced_class_weights(np.array([5]), 3)


def test_weighted_cross_entropy_ignores_unlabelled_and_applies_weights():
  logits = jnp.log(jnp.array([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]]))
  labels = jnp.array([0, 1, -1])
  plain = losses.weighted_cross_entropy(logits, labels)
  np.testing.assert_allclose(plain, -(np.log(0.7) + np.log(0.8)) / 2, rtol=1e-6)
  weighted = losses.weighted_cross_entropy(logits, labels, jnp.array([3.0, 1.0]))
  np.testing.assert_allclose(weighted, -(3 * np.log(0.7) + np.log(0.8)) / 4, rtol=1e-6)
  assert losses.weighted_cross_entropy(logits, jnp.array([-1, -1, -1])) == 0.0
  accuracy = losses.classification_accuracy(logits, jnp.array([1, 1, -1]))
  assert accuracy == pytest.approx(0.5)


def test_feature_loss_is_two_over_n_sum_of_one_minus_cosine():
  features = jnp.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, -3.0]])
  pairs = jnp.array([[0, 1], [2, 3]])  # cos = 1 and cos = -1
  np.testing.assert_allclose(losses.feature_loss(features, pairs), 2 / 4 * (0.0 + 2.0), rtol=1e-6)


def test_laplacian_energy_matches_scipy_and_vanishes_on_affine_fields():
  vertices, triangles = grid_mesh(5, 6)
  vertices[:, 2] = 0.1 * np.sin(vertices[:, 0] * 3)  # a curved sheet: cotangents vary
  laplacian = cotangent_laplacian(jnp.asarray(vertices, jnp.float32), triangles)
  matrix = scipy.sparse.csr_matrix(laplacian.to_scipy())
  rng = np.random.default_rng(0)
  displacements = rng.standard_normal((2, len(vertices), 3)).astype(np.float32)
  expected = np.mean([np.sum((matrix @ d) ** 2, axis=-1).mean() for d in displacements])
  energy = losses.laplacian_energy(laplacian, jnp.asarray(displacements))
  np.testing.assert_allclose(energy, expected, rtol=1e-4)
  # A translation is in the Laplacian's kernel.
  shift = jnp.broadcast_to(jnp.array([1.0, -2.0, 0.5]), (1, len(vertices), 3))
  assert float(losses.laplacian_energy(laplacian, shift)) < 1e-8
