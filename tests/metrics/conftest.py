"""Small linear shape generators built from the procedural model's bases, in mm."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jaxface.metrics.shape import ShapeGenerator

NUM_IDENTITY = 8
NUM_EXPRESSION = 6
NUM_NOISE = 2


class LinearParts:
  """Truncated procedural bases in mm: mean (V, 3), identity (Ki, V, 3), expression (Ke, V, 3)."""

  def __init__(self, model):
    self.mean = 10 * np.asarray(model.vertices, np.float32)
    # Scale the modes up so identities and expressions differ by millimetres.
    self.identity = 30 * np.asarray(model.identity_basis[:NUM_IDENTITY], np.float32)
    self.expression = 30 * np.asarray(model.expression_basis[:NUM_EXPRESSION], np.float32)
    self.triangles = np.asarray(model.triangles)

  def shape(self, identity=None, expression=None) -> np.ndarray:
    """Numpy reference: (N, Ki), (N, Ke) -> (N, V, 3)."""
    out = self.mean[None]
    if identity is not None:
      out = out + np.einsum("nk,kvd->nvd", identity, self.identity)
    if expression is not None:
      out = out + np.einsum("nk,kvd->nvd", expression, self.expression)
    return out

  def generator(self, mode: str = "linear") -> ShapeGenerator:
    """ "linear": exp code drives expression, noise unused; "no_expression": exp code ignored;
    "entangled": the noise code drives the expression and the exp code is ignored."""
    identity, expression = jnp.asarray(self.identity), jnp.asarray(self.expression)
    mean = jnp.asarray(self.mean)

    def decode(codes):
      out = mean + jnp.einsum("nk,kvd->nvd", codes["identity"], identity)
      if mode == "linear":
        out = out + jnp.einsum("nk,kvd->nvd", codes["expression"], expression)
      elif mode == "entangled":
        drive = jnp.tile(codes["noise"], (1, NUM_EXPRESSION // NUM_NOISE))  # (N, Ke)
        out = out + jnp.einsum("nk,kvd->nvd", drive, expression)
      return out

    return ShapeGenerator(
      code_dims={"identity": NUM_IDENTITY, "expression": NUM_EXPRESSION, "noise": NUM_NOISE},
      decode=decode,
      triangles=self.triangles,
    )

  def expression_oracle(self, vertices: np.ndarray) -> np.ndarray:
    """Exact expression coefficients of a mesh of this model: (N, V, 3) -> (N, Ke).

    Joint least squares on the identity and expression modes (they are not
    orthogonal), keeping the expression part.
    """
    basis = np.concatenate([self.identity, self.expression]).reshape(
      NUM_IDENTITY + NUM_EXPRESSION, -1
    )
    residual = (np.asarray(vertices) - self.mean).reshape(len(vertices), -1)
    coefficients, *_ = np.linalg.lstsq(basis.T.astype(np.float64), residual.T, rcond=None)
    return coefficients.T[:, NUM_IDENTITY:]


@pytest.fixture(scope="session")
def linear_parts(procedural) -> LinearParts:
  return LinearParts(procedural)
