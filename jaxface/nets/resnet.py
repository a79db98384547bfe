"""ResNet-18 (He et al. 2016) in Flax Linen, stateless: GroupNorm instead of BatchNorm.

Used by the decoupling metric's embedding networks (`jaxface.metrics.decoupling`).

Deviation from the standard network: every BatchNorm is a GroupNorm, so the
network has no batch statistics to carry (no `batch_stats` collection, no
train/eval switch) and an embedding does not depend on the other images of
its batch. Groups hold at least 8 channels (`norm_groups`: 8 groups at 64
channels up to 32 at 256 and 512; fewer at small width multipliers):
normalising groups of 2 channels over the 1x1 maps of the last stage (32x32
inputs) reduces the features to signs and collapses the embeddings.
GroupNorm has the same per-channel scale and bias as BatchNorm, so with
`width=1` and `num_outputs=1000` the parameter count equals torchvision's
`resnet18` (11,689,512). Convolutions have no bias, as in the original.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxface.nets.layers import host_init_variables

#: Channels of the four stages of ResNet-18 at width 1.
STAGE_WIDTHS = (64, 128, 256, 512)
#: BasicBlocks per stage.
STAGE_BLOCKS = (2, 2, 2, 2)


def scaled_width(channels: int, width: float) -> int:
  """Channels of a layer at width multiplier `width` (at least 1)."""
  return max(1, round(channels * width))


def norm_groups(channels: int) -> int:
  """GroupNorm groups for a layer: at most 32, at least 8 channels each, dividing `channels`."""
  return math.gcd(32, max(1, channels // 8))


def _norm(channels: int, name: str | None = None) -> nn.GroupNorm:
  return nn.GroupNorm(num_groups=norm_groups(channels), name=name)


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with a residual connection (1x1 projection when the shape changes)."""

  channels: int
  strides: int = 1

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # (N, H, W, C) -> (N, H/s, W/s, channels)
    residual = x
    y = nn.Conv(self.channels, (3, 3), self.strides, padding=1, use_bias=False)(x)
    y = nn.relu(_norm(self.channels)(y))
    y = nn.Conv(self.channels, (3, 3), 1, padding=1, use_bias=False)(y)
    y = _norm(self.channels)(y)
    if self.strides != 1 or x.shape[-1] != self.channels:
      residual = nn.Conv(self.channels, (1, 1), self.strides, use_bias=False, name="shortcut")(x)
      residual = _norm(self.channels, name="shortcut_norm")(residual)
    return nn.relu(y + residual)


class ResNet18(nn.Module):
  """ResNet-18 with GroupNorm: (N, H, W, C) images -> (N, num_outputs).

  Attributes:
    num_outputs: size of the final linear layer.
    width: multiplier of the stage widths 64-128-256-512 (1 is the standard
      network; e.g. 0.25 for a small CPU-friendly one).
  """

  num_outputs: int
  width: float = 1.0

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    if images.ndim != 4:
      raise ValueError(f"images must have shape (N, H, W, C), got {images.shape}")
    stem = scaled_width(STAGE_WIDTHS[0], self.width)
    x = nn.Conv(stem, (7, 7), 2, padding=3, use_bias=False, name="stem")(images)
    x = nn.relu(_norm(stem, name="stem_norm")(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for stage, (channels, blocks) in enumerate(zip(STAGE_WIDTHS, STAGE_BLOCKS, strict=True)):
      for block in range(blocks):
        strides = 2 if stage > 0 and block == 0 else 1
        x = BasicBlock(scaled_width(channels, self.width), strides, name=f"stage{stage}_{block}")(x)
    x = jnp.mean(x, axis=(1, 2))  # (N, C) global average pool
    return nn.Dense(self.num_outputs, name="head")(x)


def host_init(module: nn.Module, *inputs: jax.Array, seed: int = 0):
  """Parameters of `module` drawn with numpy on the host, like Flax's defaults.

  Kernels (convolutions and dense) ~ N(0, 1 / fan_in) (LeCun normal, not
  truncated), biases 0, GroupNorm scales 1; see
  `jaxface.nets.layers.host_init_variables`, which also fills the other
  collections. Nothing is compiled: on CPU, compiling the jitted
  `module.init` costs tens of seconds for a ResNet-18, mostly the PRNG.

  Returns:
    the "params" collection, a nested dict of float32 jax arrays.
  """
  return host_init_variables(module, *inputs, seed=seed)["params"]
