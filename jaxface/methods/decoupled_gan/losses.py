"""The decoupled GAN's own loss terms (paper eqs. 6-12), as plain functions: the class-balanced
classification terms (eqs. 7, 9), the feature loss (eqs. 10-11), the Laplacian energy (eq. 12).

The L_GAN of eqs. 6 and 8, a Wasserstein loss with gradient penalty, is
shared with 3DFaceFill and lives in `jaxface.nets.adversarial`.

Sign conventions: every function returns a quantity to *minimise*. The
paper's classification terms are log-likelihoods to maximise, so here they
are cross-entropies; L_G's "- lambda2 (L_CL^id + L_CL^exp)" becomes
"+ lambda2 * cross-entropy".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def balanced_class_weights(labels, num_classes: int):
  """King & Zeng style weights n / (C * n_c) from labels (-1 = unlabelled is skipped).

  A class without examples gets weight 0 (it can never be a target).
  Host-side (numpy) helper run once on the training labels.
  """
  import numpy as np

  labels = np.asarray(labels)
  labelled = labels[labels >= 0]
  if labelled.size and labelled.max() >= num_classes:
    raise ValueError(f"label {labelled.max()} out of range for {num_classes} classes")
  counts = np.bincount(labelled, minlength=num_classes).astype(np.float64)  # (C,)
  present = counts > 0
  weights = np.zeros(num_classes)
  weights[present] = labelled.size / (present.sum() * counts[present])
  return weights.astype(np.float32)


def weighted_cross_entropy(
  logits: jax.Array, labels: jax.Array, class_weights: jax.Array | None = None
) -> jax.Array:
  """Class-weighted mean cross-entropy; labels < 0 (unlabelled) contribute nothing.

  The weighted mean sum_i w_i CE_i / sum_i w_i (PyTorch's convention for
  class weights); 0 when no example in the batch is labelled.
  """
  labelled = labels >= 0
  safe = jnp.where(labelled, labels, 0)
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, safe)  # (N,)
  weights = labelled.astype(logits.dtype)
  if class_weights is not None:
    weights = weights * class_weights[safe]
  return jnp.sum(weights * losses) / jnp.maximum(jnp.sum(weights), 1e-12)


def classification_accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Accuracy over labelled examples (NaN-free: 0 when none is labelled)."""
  labelled = labels >= 0
  correct = (jnp.argmax(logits, axis=-1) == labels) & labelled
  return jnp.sum(correct) / jnp.maximum(jnp.sum(labelled), 1)


def feature_loss(features: jax.Array, pair_index: jax.Array) -> jax.Array:
  """Eq. 10: 2/N sum over pairs of (1 - cos(f_1, f_2)).

  Args:
    features: (N, D) classifier features of N generated samples.
    pair_index: (N/2, 2) rows of the two samples generated with a shared code.
  """
  first, second = features[pair_index[:, 0]], features[pair_index[:, 1]]  # (N/2, D)
  cosine = jnp.sum(first * second, axis=-1) / (
    jnp.linalg.norm(first, axis=-1) * jnp.linalg.norm(second, axis=-1) + 1e-8
  )
  return 2.0 / features.shape[0] * jnp.sum(1.0 - cosine)


def laplacian_energy(laplacian, displacements: jax.Array) -> jax.Array:
  """Eq. 12, ||L v||^2 per mesh: sum over xyz, mean over vertices, mean over the batch.

  Args:
    laplacian: a `LaplacianOperator` of the template.
    displacements: (N, V, 3) generator outputs.
  """
  smoothed = laplacian.apply(displacements)  # (N, V, 3)
  return jnp.mean(jnp.sum(smoothed**2, axis=-1))
