"""The shared adversarial objectives on hand-made critics with analytic gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxface.nets import adversarial


def _random(seed: int, shape, low=0.0, high=1.0) -> np.ndarray:
  return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def test_gradient_penalty_of_a_linear_critic_is_its_slope_error():
  # D(x) = w . x has gradient w everywhere: penalty (||w|| - 1)^2 whatever the inputs.
  w = jnp.array([3.0, 4.0])
  real = jax.random.normal(jax.random.PRNGKey(0), (5, 2))
  fake = jax.random.normal(jax.random.PRNGKey(1), (5, 2))
  penalty = adversarial.gradient_penalty(lambda x: x @ w, real, fake, jax.random.PRNGKey(2))
  np.testing.assert_allclose(penalty, (5.0 - 1.0) ** 2, rtol=1e-5)


def test_gradient_penalty_uses_per_example_gradients_at_interpolates():
  # D(x) = sum x^2 / 2 per example: gradient x_hat, so the penalty depends on where x_hat lies.
  real = jnp.ones((3, 2)) * jnp.array([[1.0], [2.0], [3.0]])
  fake = jnp.zeros((3, 2))
  rng = jax.random.PRNGKey(4)
  epsilon = jax.random.uniform(rng, (3, 1))
  expected = np.mean((np.linalg.norm(np.asarray(epsilon * real), axis=1) - 1.0) ** 2)
  penalty = adversarial.gradient_penalty(lambda x: 0.5 * jnp.sum(x**2, axis=1), real, fake, rng)
  np.testing.assert_allclose(penalty, expected, rtol=1e-5)


def test_wasserstein_losses():
  real, fake = jnp.array([2.0, 4.0]), jnp.array([1.0, -1.0])
  assert adversarial.wasserstein_critic_loss(real, fake) == pytest.approx(0.0 - 3.0)
  assert adversarial.wasserstein_generator_loss(fake) == pytest.approx(0.0)


def test_hinge_losses_at_known_logits():
  real = jnp.array([2.0, 0.5, -1.0])  # relu(1 - r) = 0, 0.5, 2
  fake = jnp.array([-2.0, 0.0, 1.0])  # relu(1 + f) = 0, 1, 2
  assert float(adversarial.hinge_discriminator_loss(real, fake)) == pytest.approx(2.5 / 3 + 1.0)
  assert float(adversarial.hinge_generator_loss(fake)) == pytest.approx(1.0 / 3)
  # Four scales of different sizes: the scale losses are averaged.
  reals = [
    jnp.full((2, s, s, 1), v) for s, v in zip((16, 8, 4, 2), (0.0, 2.0, 0.5, -1.0), strict=True)
  ]
  fakes = [
    jnp.full((2, s, s, 1), v) for s, v in zip((16, 8, 4, 2), (0.0, -2.0, 1.0, -0.5), strict=True)
  ]
  expected_d = ((1 + 1) + (0 + 0) + (0.5 + 2) + (2 + 0.5)) / 4
  expected_g = -(0.0 - 2.0 + 1.0 - 0.5) / 4
  assert float(adversarial.hinge_discriminator_loss(reals, fakes)) == pytest.approx(expected_d)
  assert float(adversarial.hinge_generator_loss(fakes)) == pytest.approx(expected_g)
  with pytest.raises(ValueError, match="scales"):
    adversarial.hinge_discriminator_loss(reals, fakes[:3])
  with pytest.raises(ValueError, match="at least one"):
    adversarial.hinge_generator_loss([])


def _linear_discriminator(w1, w2):
  """Two 'scales' of a linear D on (B, H, W, C): per-sample sums of w * x."""
  return lambda x: [
    jnp.einsum("bhwc,hwc->b", x, w1)[:, None, None, None],
    jnp.einsum("bhwc,hwc->b", x, w2)[:, None, None, None],
  ]


def test_gradient_penalty_of_a_linear_discriminator_is_analytic():
  w1, w2 = jnp.asarray(_random(0, (4, 4, 3), -0.3, 0.3)), jnp.asarray(_random(1, (4, 4, 3)))
  real, fake = jnp.asarray(_random(2, (3, 4, 4, 3))), jnp.asarray(_random(3, (3, 4, 4, 3)))
  rng = jax.random.PRNGKey(0)
  slope = np.asarray(w1 + w2)  # gradient of the summed scales, everywhere
  expected = (np.linalg.norm(slope) - 1.0) ** 2
  penalty = adversarial.gradient_penalty(_linear_discriminator(w1, w2), real, fake, rng)
  np.testing.assert_allclose(penalty, expected, rtol=1e-5)
  # Per-pixel variant: norms over channels, masked mean over pixels.
  mask = _random(4, (3, 4, 4)) > 0.5
  per_pixel = (np.linalg.norm(slope, axis=-1) - 1.0) ** 2  # (4, 4)
  expected_pixel = np.sum(per_pixel[None] * mask) / mask.sum()
  np.testing.assert_allclose(
    adversarial.gradient_penalty(
      _linear_discriminator(w1, w2), real, fake, rng, per_pixel=True, mask=mask
    ),
    expected_pixel,
    rtol=1e-5,
  )
  with pytest.raises(ValueError, match="per_pixel"):
    adversarial.gradient_penalty(_linear_discriminator(w1, w2), real, fake, rng, mask=mask)


def test_gradient_penalty_differentiates_into_discriminator_parameters():
  # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||, through the inner gradient.
  w = jnp.asarray(_random(0, (2, 2, 3)))
  real, fake = jnp.asarray(_random(1, (2, 2, 2, 3))), jnp.asarray(_random(2, (2, 2, 2, 3)))
  rng = jax.random.PRNGKey(1)
  penalty = lambda w: adversarial.gradient_penalty(
    lambda x: jnp.einsum("bhwc,hwc->b", x, w), real, fake, rng
  )
  norm = np.linalg.norm(np.asarray(w))
  np.testing.assert_allclose(
    jax.grad(penalty)(w), 2 * (norm - 1) * np.asarray(w) / norm, rtol=1e-4, atol=1e-6
  )


def test_gradient_penalty_evaluates_the_gradient_at_the_inputs():
  # D(x) = sum(a * x^2) / 2 has gradient a * x; with real == fake x_hat is the input itself.
  a = jnp.asarray(_random(0, (3, 3, 1), 0.5, 1.5))
  images = jnp.asarray(_random(1, (2, 3, 3, 1)))
  disc = lambda x: 0.5 * jnp.sum(a * x**2, axis=(1, 2, 3))
  expected = np.mean(
    (np.linalg.norm((np.asarray(a)[None] * np.asarray(images)).reshape(2, -1), axis=1) - 1) ** 2
  )
  np.testing.assert_allclose(
    adversarial.gradient_penalty(disc, images, images, jax.random.PRNGKey(0)), expected, rtol=1e-5
  )
