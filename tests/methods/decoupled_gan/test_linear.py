"""The linear baseline (identity PCA + expression PCA of displacements) on a known linear world."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jaxface.methods.decoupled_gan.linear import LinearModel, fit_linear_model


def _world(num_identities=40, per_identity=30, vertices=50, seed=0):
  """Meshes = mean + A a_i + B b_ij with a known 3-d identity and 2-d expression subspace."""
  rng = np.random.default_rng(seed)
  mean = rng.standard_normal((vertices, 3))
  identity_modes = rng.standard_normal((3, vertices, 3))
  expression_modes = rng.standard_normal((2, vertices, 3))
  identity_codes = rng.standard_normal((num_identities, 3)) * np.array([3.0, 2.0, 1.0])
  meshes, labels = [], []
  for i in range(num_identities):
    expression = rng.standard_normal((per_identity, 2)) * np.array([0.5, 0.2])
    expression -= expression.mean(0)  # each identity's mean shape is its neutral face
    shape = mean + np.einsum("k,kvd->vd", identity_codes[i], identity_modes)
    meshes.append(shape + np.einsum("nk,kvd->nvd", expression, expression_modes))
    labels += [i] * per_identity
  return (
    np.concatenate(meshes).astype(np.float32),
    np.array(labels),
    identity_modes,
    expression_modes,
  )


def _span_error(components, modes):
  """How far each fitted component lies from the span of the true modes (0 = inside)."""
  basis, _ = np.linalg.qr(modes.reshape(len(modes), -1).T)  # (D, k)
  flat = components.reshape(len(components), -1)
  residual = flat - (flat @ basis) @ basis.T
  return np.linalg.norm(residual, axis=1) / np.linalg.norm(flat, axis=1)


def test_fit_recovers_the_identity_and_expression_subspaces():
  meshes, labels, identity_modes, expression_modes = _world()
  model = fit_linear_model(meshes, labels, num_identity=3, num_expression=2)
  assert _span_error(model.identity, identity_modes).max() < 1e-3
  assert _span_error(model.expression, expression_modes).max() < 1e-3


def test_codes_are_whitened_and_reconstruct_the_data():
  meshes, labels, _, _ = _world()
  model = fit_linear_model(meshes, labels, num_identity=3, num_expression=2)
  generator = model.shape_generator(np.zeros((1, 3), np.int32))
  samples = generator.generate(generator.sample_codes(np.random.default_rng(1), 4000))
  # Samples of N(0, I) codes have the data's per-coordinate spread.
  np.testing.assert_allclose(samples.std(0).mean(), meshes.std(0).mean(), rtol=0.08)
  codes = {"identity": jnp.zeros((1, 3)), "expression": jnp.zeros((1, 2))}
  np.testing.assert_allclose(model.decode(codes)[0], meshes.mean(0), atol=1e-4)


def test_save_load_round_trip(tmp_path):
  meshes, labels, _, _ = _world(num_identities=10, per_identity=5)
  model = fit_linear_model(meshes, labels, num_identity=3, num_expression=2)
  loaded = LinearModel.load(model.save(tmp_path / "linear.npz"))
  np.testing.assert_array_equal(loaded.identity, model.identity)
  np.testing.assert_array_equal(loaded.mean, model.mean)


def test_bad_inputs_raise():
  meshes, labels, _, _ = _world(num_identities=4, per_identity=5)
  with pytest.raises(ValueError, match="components"):
    fit_linear_model(meshes, labels, num_identity=10, num_expression=2)
  with pytest.raises(ValueError, match="identity_labels"):
    fit_linear_model(meshes, labels[:-1], num_identity=2, num_expression=2)
  with pytest.raises(ValueError, match="vertices"):
    fit_linear_model(meshes[0], labels, num_identity=2, num_expression=2)
