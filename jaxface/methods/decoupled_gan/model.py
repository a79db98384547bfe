"""The decoupled GAN's networks (paper sec. 4.2 and supplement Fig. 11).

The generator is an MLP from the concatenated codes to per-vertex
displacements from a template mesh; the discriminator is a DC-GAN style
critic on 64 x 64 geometry images with a shared trunk and one branch per
output (real/fake and one classifier per labelled factor). Every branch
returns its 2048-d penultimate features too, for the feature loss (eq. 10).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxface.nets.layers import PatchConv, materialise


class Generator(nn.Module):
  """z -> (N, V, 3) displacements from the template.

  Attributes:
    num_vertices: V.
    hidden: width of the intermediate layer (512 in the paper).
    negative_slope: LeakyReLU slope (0.2, Fig. 11).
    output_init: initialiser of the displacement layer's kernel. Zeros (the
      default; the paper does not say) start every sample at the template,
      a smooth face, instead of at per-vertex noise whose Laplacian energy
      (x lambda4 = 100) would dominate the first hundreds of steps.
  """

  num_vertices: int
  hidden: int = 512
  negative_slope: float = 0.2
  output_init: Callable = nn.initializers.zeros

  @nn.compact
  def __call__(self, codes: jax.Array) -> jax.Array:
    x = nn.Dense(self.hidden)(codes)  # (N, hidden)
    x = nn.leaky_relu(x, self.negative_slope)
    x = nn.Dense(3 * self.num_vertices, kernel_init=self.output_init)(x)  # (N, 3V)
    return x.reshape(codes.shape[0], self.num_vertices, 3)


#: How the critic's convolutions are computed; both have the same parameters and outputs.
CONVOLUTIONS = ("patches", "lax")


def _conv(features: int, slope: float, name: str, convolution: str):
  def apply(x):
    if convolution == "patches":
      x = PatchConv(features, 3, strides=2, padding="SAME", name=name)(x)
    else:
      x = nn.Conv(features, (3, 3), strides=(2, 2), padding="SAME", name=name)(x)
    return nn.leaky_relu(x, slope)

  return apply


class Discriminator(nn.Module):
  """Geometry images (N, n, n, 3) -> real/fake score and per-factor logits.

  Attributes:
    num_classes: labels of each classified factor, e.g. {"identity": 150,
      "expression": 8}; a factor without a classifier has no branch.
    trunk: channels of the shared stride-2 convolutions.
    branch: channels of each branch's stride-2 convolutions.
    negative_slope: LeakyReLU slope.
    convolution: "patches" (`jaxface.nets.PatchConv`: image patches times the kernel, whose
      second derivative, which the gradient penalty takes, is 3.5x faster on XLA:CPU) or
      "lax" (`flax.linen.Conv`). The two share parameters and agree to float rounding.
  """

  num_classes: dict[str, int]
  trunk: Sequence[int] = (16, 32)
  branch: Sequence[int] = (64, 128)
  negative_slope: float = 0.2
  convolution: str = "patches"

  @nn.compact
  def __call__(self, images: jax.Array) -> tuple[jax.Array, dict[str, jax.Array], dict]:
    """Returns (score (N,), logits {factor: (N, n_f)}, features {branch: (N, 2048)})."""
    if self.convolution not in CONVOLUTIONS:
      raise ValueError(f"convolution must be one of {CONVOLUTIONS}, got {self.convolution!r}")
    x = materialise(images)  # once, not in each of the first layer's 9 slices
    for index, features in enumerate(self.trunk):
      x = _conv(features, self.negative_slope, f"shared_{index}", self.convolution)(x)  # 64->16

    def branch(name: str) -> jax.Array:
      y = x
      for index, features in enumerate(self.branch):
        y = _conv(features, self.negative_slope, f"{name}_{index}", self.convolution)(y)  # 16->4
      return y.reshape(y.shape[0], -1)  # (N, 4 * 4 * 128 = 2048)

    features = {"real": branch("real")}
    score = nn.Dense(1, name="real_out")(features["real"])[:, 0]
    logits = {}
    for factor, count in self.num_classes.items():
      features[factor] = branch(factor)
      logits[factor] = nn.Dense(count, name=f"{factor}_out")(features[factor])
    return score, logits, features


def concatenate_codes(codes: dict[str, jax.Array], order: Sequence[str]) -> jax.Array:
  """{name: (N, d)} in `order` -> (N, sum d)."""
  return jnp.concatenate([codes[name] for name in order], axis=-1)
