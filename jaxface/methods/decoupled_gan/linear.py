"""The linear baseline: identity PCA + expression PCA of displacements (DeepFLAME-style split).

The paper compares against COMA in its DeepFLAME form: a PCA identity space
from one neutral face per subject plus an expression model of displacements
from that subject's neutral face. jaxface's baseline keeps the split and
makes both parts linear:

    v(z) = mean + sum_k z_id,k s_k U_k + sum_j z_exp,j t_j W_j,   z ~ N(0, I)

with U (identity) the principal components of the per-identity shapes and
W (expression) those of each mesh's displacement from its identity's shape.
The "neutral face" of an identity is the mean of all its meshes (identity
labels are complete while only a few meshes carry a neutral-expression
label, as in the paper's data). Codes are whitened by the component
standard deviations s, t, so the metrics sample every model's codes from
N(0, I).
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from jaxface.metrics.shape import ShapeGenerator


@dataclasses.dataclass(frozen=True)
class LinearModel:
  """Attributes: mean (V, 3) mm; identity/expression (K, V, 3) components scaled by their std."""

  mean: np.ndarray
  identity: np.ndarray
  expression: np.ndarray

  def decode(self, codes: dict[str, jax.Array]) -> jax.Array:
    """{"identity": (N, Ki), "expression": (N, Ke)} -> (N, V, 3) mm."""
    shape = jnp.einsum("nk,kvd->nvd", codes["identity"], jnp.asarray(self.identity))
    shape += jnp.einsum("nk,kvd->nvd", codes["expression"], jnp.asarray(self.expression))
    return jnp.asarray(self.mean) + shape

  def shape_generator(self, triangles: np.ndarray) -> ShapeGenerator:
    return ShapeGenerator(
      code_dims={"identity": len(self.identity), "expression": len(self.expression)},
      decode=self.decode,
      triangles=np.asarray(triangles),
    )

  def save(self, path: str | pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    np.savez(path, mean=self.mean, identity=self.identity, expression=self.expression)
    return path

  @classmethod
  def load(cls, path: str | pathlib.Path) -> LinearModel:
    with np.load(path) as data:
      return cls(mean=data["mean"], identity=data["identity"], expression=data["expression"])


def _principal_components(rows: np.ndarray, count: int) -> np.ndarray:
  """(n, D) centred rows -> (count, D) components scaled by their standard deviation."""
  if count > min(rows.shape):
    raise ValueError(f"cannot take {count} components from {rows.shape[0]} samples of {rows.shape}")
  _, singular, components = np.linalg.svd(rows.astype(np.float64), full_matrices=False)
  std = singular[:count] / np.sqrt(max(rows.shape[0] - 1, 1))
  return (components[:count] * std[:, None]).astype(np.float32)


def fit_linear_model(
  vertices: np.ndarray,
  identity_labels: np.ndarray,
  num_identity: int = 65,
  num_expression: int = 15,
  max_expression_samples: int = 4000,
  seed: int = 0,
) -> LinearModel:
  """Fits the baseline to training meshes.

  Args:
    vertices: (N, V, 3) registered meshes, mm.
    identity_labels: (N,) int identity of each mesh (all labelled).
    num_identity, num_expression: code sizes (the GAN's 65 and 15).
    max_expression_samples: displacements used for the expression PCA (a
      random subset bounds the SVD's cost).
    seed: picks that subset.
  """
  vertices = np.asarray(vertices, np.float32)
  labels = np.asarray(identity_labels)
  if vertices.ndim != 3 or vertices.shape[-1] != 3:
    raise ValueError(f"vertices must have shape (N, V, 3), got {vertices.shape}")
  if labels.shape != (len(vertices),) or (labels < 0).any():
    raise ValueError(f"identity_labels must be ({len(vertices)},) labels >= 0, got {labels.shape}")
  identities, inverse = np.unique(labels, return_inverse=True)
  flat = vertices.reshape(len(vertices), -1)  # (N, 3V)
  sums = np.zeros((len(identities), flat.shape[1]))
  np.add.at(sums, inverse, flat)
  identity_shapes = sums / np.bincount(inverse)[:, None]  # (I, 3V) per-identity mean shape
  mean = identity_shapes.mean(axis=0)
  identity = _principal_components(identity_shapes - mean, num_identity)
  rng = np.random.default_rng(seed)
  subset = rng.permutation(len(flat))[:max_expression_samples]
  displacements = flat[subset] - identity_shapes[inverse[subset]]  # (n, 3V)
  expression = _principal_components(displacements - displacements.mean(0), num_expression)
  # The displacements' mean (the average expression) belongs to the mean shape.
  mean = mean + displacements.mean(0)
  shape = vertices.shape[1:]
  return LinearModel(
    mean=mean.reshape(shape).astype(np.float32),
    identity=identity.reshape((num_identity, *shape)),
    expression=expression.reshape((num_expression, *shape)),
  )
