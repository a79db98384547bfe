"""DenseNet (Huang et al., CVPR 2017) as an image encoder: (B, H, W, C) -> (B, features).

The DenseNet-BC layout: a stride-2 stem, dense blocks whose layers see the
concatenation of every earlier layer's output (bottleneck 1x1 conv to
`bottleneck * growth` channels, then a 3x3 conv to `growth`), and between
blocks a transition that compresses the channels by `compression` and
halves the resolution. GroupNorm stands in for BatchNorm so the network has
no batch statistics (a training step stays a function of its batch alone)
and behaves the same at any batch size.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxface.nets.layers import check_image, group_count


class DenseLayer(nn.Module):
  """GN-ReLU-Conv1x1(bottleneck * growth)-GN-ReLU-Conv3x3(growth), concatenated to the input."""

  growth: int
  bottleneck: int = 4

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    # (B, H, W, C) -> (B, H, W, C + growth)
    y = nn.relu(nn.GroupNorm(num_groups=group_count(x.shape[-1]), name="norm1")(x))
    y = nn.Conv(self.bottleneck * self.growth, (1, 1), use_bias=False, name="conv1")(y)
    y = nn.relu(nn.GroupNorm(num_groups=group_count(y.shape[-1]), name="norm2")(y))
    y = nn.Conv(self.growth, (3, 3), padding=1, use_bias=False, name="conv2")(y)
    return jnp.concatenate([x, y], axis=-1)


class Transition(nn.Module):
  """GN-ReLU-Conv1x1(channels * compression)-AvgPool(2): between dense blocks."""

  compression: float = 0.5

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    # (B, H, W, C) -> (B, H/2, W/2, floor(C * compression))
    features = max(1, int(x.shape[-1] * self.compression))
    y = nn.relu(nn.GroupNorm(num_groups=group_count(x.shape[-1]), name="norm")(x))
    y = nn.Conv(features, (1, 1), use_bias=False, name="conv")(y)
    return nn.avg_pool(y, (2, 2), strides=(2, 2))


class DenseNet(nn.Module):
  """DenseNet-BC encoder ending in global average pooling.

  Attributes:
    blocks: dense layers per block (DenseNet-121: (6, 12, 24, 16)).
    growth: channels each dense layer adds (k; 32 in DenseNet-121).
    stem_features: channels of the stride-2 stem convolution (2k in the paper).
    compression: channel factor of each transition (theta).
    bottleneck: the bottleneck's width in multiples of `growth`.
  """

  blocks: Sequence[int] = (6, 12, 24, 16)
  growth: int = 32
  stem_features: int = 64
  compression: float = 0.5
  bottleneck: int = 4

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    # (B, H, W, C) -> (B, channels after the last block)
    check_image(x)
    factor = 2 ** len(self.blocks)
    if x.shape[1] < factor or x.shape[2] < factor:
      raise ValueError(f"images must be at least {factor} px on each side, got {x.shape}")
    y = nn.Conv(self.stem_features, (3, 3), strides=2, padding=1, use_bias=False, name="stem")(x)
    for block, layers in enumerate(self.blocks):
      for layer in range(layers):
        y = DenseLayer(self.growth, self.bottleneck, name=f"block{block}_layer{layer}")(y)
      if block < len(self.blocks) - 1:
        y = Transition(self.compression, name=f"transition{block}")(y)
    y = nn.relu(nn.GroupNorm(num_groups=group_count(y.shape[-1]), name="norm")(y))
    return y.mean(axis=(1, 2))
