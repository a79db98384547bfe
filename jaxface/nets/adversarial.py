"""Adversarial objectives shared by the methods: Wasserstein and hinge losses, the WGAN-GP penalty.

Every function returns a quantity to minimise. The decoupled GAN trains a
WGAN-GP critic (Gulrajani et al.); 3DFaceFill a multi-scale hinge
discriminator (Lim & Ye) with the same gradient penalty, which is why the
penalty takes one array of scores or a sequence of logits, one per scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from jaxface.nets.layers import check_image

#: One array of scores/logits, or one per scale of a multi-scale discriminator.
Logits = jax.Array | Sequence[jax.Array]


def as_scales(logits: Logits, name: str) -> list[jax.Array]:
  """`logits` as a list of scales (an array is one scale; iterating it would split its batch)."""
  out = [logits] if hasattr(logits, "shape") else list(logits)
  if not out:
    raise ValueError(f"{name} must hold at least one scale of logits, got an empty sequence")
  return [jnp.asarray(x) for x in out]


def wasserstein_critic_loss(real_scores: jax.Array, fake_scores: jax.Array) -> jax.Array:
  """WGAN critic loss E[D(fake)] - E[D(real)] (the critic maximises the gap)."""
  return jnp.mean(fake_scores) - jnp.mean(real_scores)


def wasserstein_generator_loss(fake_scores: jax.Array) -> jax.Array:
  """WGAN generator loss -E[D(G(z))]."""
  return -jnp.mean(fake_scores)


def hinge_discriminator_loss(real_logits: Logits, fake_logits: Logits) -> jax.Array:
  """Hinge loss of a (multi-scale) discriminator, averaged over scales.

  Per scale k: E[relu(1 - D_k(real))] + E[relu(1 + D_k(fake))] (Lim & Ye;
  3DFaceFill's public code uses a PyramidGAN with 4 scales).

  Args:
    real_logits, fake_logits: one array or a sequence of arrays, one per
      scale, any shapes (e.g. (B, h_k, w_k, 1) patch logits); scale k of both
      must match.
  """
  real_logits = as_scales(real_logits, "real_logits")
  fake_logits = as_scales(fake_logits, "fake_logits")
  if len(real_logits) != len(fake_logits):
    raise ValueError(
      f"real_logits has {len(real_logits)} scales but fake_logits has {len(fake_logits)}"
    )
  total = 0.0
  for k, (real, fake) in enumerate(zip(real_logits, fake_logits, strict=True)):
    if real.shape != fake.shape:
      raise ValueError(f"scale {k}: real logits {real.shape} and fake {fake.shape} differ")
    total = total + jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))
  return total / len(real_logits)


def hinge_generator_loss(fake_logits: Logits) -> jax.Array:
  """Generator side of the hinge GAN: -E[D_k(fake)], averaged over scales."""
  fake_logits = as_scales(fake_logits, "fake_logits")
  return sum(-jnp.mean(fake) for fake in fake_logits) / len(fake_logits)


def gradient_penalty(
  critic: Callable[[jax.Array], Logits],
  real: jax.Array,
  fake: jax.Array,
  rng: jax.Array,
  *,
  per_pixel: bool = False,
  mask: jax.Array | None = None,
) -> jax.Array:
  """WGAN-GP: E[(||∇_x̂ Σ_k Σ D_k(x̂)||_2 - 1)^2] at x̂ = ε real + (1 - ε) fake, ε ~ U(0, 1)
  per example (Gulrajani et al.; their weight 10 is the caller's).

  The gradient is of the sum of every scale's logits (3DFaceFill's public
  code sums per-scale gradients); real and fake are constants, so only the
  critic's parameters, closed over by `critic`, receive gradients.

  Args:
    critic: inputs (N, ...) -> scores (N,) or a sequence of per-scale logits; must treat
      examples independently (no batch norm), so the gradient of the batch sum is per example.
    real, fake: (N, ...) critic inputs of the same shape.
    rng: PRNG key of ε (N,).
    per_pixel: False (standard): one norm per example over all its entries. True
      (3DFaceFill's public code, `gradients.norm(dim=1)`): inputs are (N, H, W, C) images,
      one norm per pixel over channels, then the (masked) mean over pixels.
    mask: (N, H, W) optional pixel weights, only with per_pixel=True.
  """
  real, fake = jnp.asarray(real), jnp.asarray(fake)
  if real.shape != fake.shape or real.ndim < 2:
    raise ValueError(f"real {real.shape} and fake {fake.shape} must be equal (N, ...) shapes")
  if mask is not None and not per_pixel:
    raise ValueError("mask needs per_pixel=True: a per-example norm has no pixels to weight")
  if per_pixel:
    check_image(real, "real")
    if mask is not None and jnp.shape(mask) != real.shape[:-1]:
      raise ValueError(f"mask must have shape {real.shape[:-1]}, got {jnp.shape(mask)}")
  real, fake = jax.lax.stop_gradient(real), jax.lax.stop_gradient(fake)
  batch = real.shape[0]
  epsilon = jax.random.uniform(rng, (batch,) + (1,) * (real.ndim - 1), real.dtype)
  mixed = epsilon * real + (1.0 - epsilon) * fake  # (N, ...)

  def total(x):
    return sum(jnp.sum(logits) for logits in as_scales(critic(x), "critic(x)"))

  gradients = jax.grad(total)(mixed)  # (N, ...)
  if per_pixel:
    norms = jnp.sqrt(jnp.sum(gradients**2, axis=-1) + 1e-12)  # (N, H, W)
    if mask is None:
      return jnp.mean((norms - 1.0) ** 2)
    weights = jnp.asarray(mask, norms.dtype)
    return jnp.sum((norms - 1.0) ** 2 * weights) / jnp.maximum(jnp.sum(weights), 1e-8)
  norms = jnp.sqrt(jnp.sum(gradients.reshape(batch, -1) ** 2, axis=-1) + 1e-12)  # (N,)
  return jnp.mean((norms - 1.0) ** 2)
