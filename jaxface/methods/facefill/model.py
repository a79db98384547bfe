"""3DFaceFill's networks (Dey & Boddeti, WACV 2022, supplement Tables 3-7).

- `Encoder` (E, Table 3): image -> pose, SH illumination, shape and
  expression coefficients and albedo features.
- `AlbedoDecoder` (D_A, Table 4): albedo features -> UV albedo map.
- `SymUNet` (G, Table 5): partial UV albedo + visibility mask -> completed
  albedo and a log-variance (uncertainty) map; `symmetry="none"` is the
  plain gated U-Net of the `no_sym` ablation.
- `PyramidDiscriminator` (D, Table 6): image -> 4 PatchGAN logit maps.
- `Segmenter` (S, Table 7): image -> face / occlusion / background logits.

Every convolution is spectrally normalised, as the supplement says (sec.
4.1), except the tables' plain `Conv` output layers, so every module takes
the keyword `update_stats` and keeps the power-iteration state in the
`batch_stats` collection (see `jaxface.nets.layers` for how a training step
threads it). Norms are GroupNorm with 4 channels per group (the tables'
GN(c/4)). Widths are the tables' times a `width` multiplier (1 is the paper).

Where the tables disagree with themselves or the public code, the choice:
- Table 3's rows "SpectralConv(64, 64, 3, 2, 1) + GN(10)" (a second stride
  2 at 56x56) then "SpectralConv(96, 128, ...)", and "(128, 196) + GN(48)",
  read as a stride-1 64 -> 96 (GN(24)) and 128 -> 192 (GN(48)), as the
  output sizes, the channel chain and the public code have it. The albedo
  branch is two 3x3 SpectralConv(512, 512) rows; with that the encoder has
  the table's 17.4M parameters (the garbled 5x5 row would give 21.6M).
- Pose: the table's Linear(160, 6) + Tanh gives a scale, Euler angles and a
  2D translation. Here it gives a positive scale, a tanh-bounded 2D (or 3D)
  translation and a unit quaternion: the paper's rotation loss compares
  quaternions anyway, and a quaternion has no gimbal lock or angle bound.
- Albedo values are in [0, 1] (sigmoid) where the paper's Tanh gives
  [-1, 1]; jaxface's UV albedo maps live in [0, 1].
- Table 4 gives GN(32) to some 96-channel layers; the c/4 rule (24) is used
  everywhere, as in the public code.
- Table 5's decoder gates SigGNDeconv(128, 64) at the two finest skip
  levels read their 64-channel inputs (64 -> 64), as the channel chain
  requires. The public code's self-attention layer (not in the table) is
  left out. `SymUNet` defaults to the exactly mirror-equivariant "exact"
  mode (twice the compute); "branch" is the table's network as it stands.
- Table 6 is followed (GN in every discriminator unit), though the public
  code's units skip their norm.
- Table 7 as written (stride-2 ResUnits, nearest upsampling) has 6.70M
  parameters, not its stated 7.18M, which matches the public code's
  max-pool / 2x2-transposed-conv U-Net instead. Its Softmax2d is left to
  the loss: the segmenter returns logits.
- Convolutions have biases except the encoder trunk's (bias-free before
  GN, as in the public code). Parameter counts at the paper's sizes:
  E 17,392,102 (table 17.4M), D_A 5,543,667 (5.54M), G 11,693,060 (11.xM),
  D 2,790,756 (2.79M), S 6,702,339 (7.18M, see above).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxface.nets.layers import (
  ConvNormAct,
  GatedResUnit,
  GatedUpBlock,
  SpectralConv,
  UNet,
  check_image,
  upsample_nearest,
)
from jaxface.nets.resnet import scaled_width

#: Encoder trunk (Table 3): (channels, kernel, stride) per SpectralConv + GN + ELU row.
ENCODER_TRUNK = (
  (32, 7, 2),
  (64, 3, 1),
  (64, 3, 2),
  (96, 3, 1),
  (128, 3, 1),
  (128, 3, 2),
  (192, 3, 1),
  (256, 3, 1),
  (256, 3, 2),
  (256, 3, 1),
  (256, 3, 1),
  (512, 3, 2),
  (512, 3, 1),
)
#: Channels of the encoder's pose / illumination heads and of its shape / albedo heads.
ENCODER_SMALL_HEAD, ENCODER_LARGE_HEAD = 160, 512
#: Albedo decoder (Table 4): conv channels per resolution, coarsest first; each stage
#: after the first starts with a 2x nearest upsampling.
DECODER_STAGES = (
  (512, 256),
  (256, 128, 128),
  (160, 96, 128),
  (128, 64, 96),
  (96, 64, 64),
  (64, 32, 32),
  (32, 16, 16),
)
#: Sym-UNet (Table 5): encoder level channels (the first per branch), bottleneck, decoder.
SYM_DOWN, SYM_MIDDLE, SYM_UP = (32, 64, 128, 256, 512), 256, (128, 64, 64, 64, 32)
#: PyramidGAN discriminator (Table 6): channels of the stride-2 4x4 convolutions.
DISCRIMINATOR_WIDTHS = (32, 64, 128, 256, 512)
#: Face segmenter (Table 7): encoder and decoder channels.
SEGMENTER_DOWN, SEGMENTER_UP = (32, 64, 128, 256, 256, 256), (256, 128, 64, 32, 32)
#: The segmenter's classes, in output-channel order.
SEGMENT_CLASSES = ("face", "occlusion", "background")
#: Symmetry modes of `SymUNet`.
SYMMETRY_MODES = ("exact", "branch", "none")


def hflip(x: jax.Array) -> jax.Array:
  """Horizontal flip of (B, H, W, C) images (the UV maps' left-right mirror)."""
  return x[:, :, ::-1, :]


class Factors(NamedTuple):
  """The encoder's outputs, batch first.

  scale (B,) positive; translation (B, T) in [-1, 1], normalised by the image
  size; rotation (B, 4) unit quaternion (w, x, y, z); illumination (B, 27)
  SH coefficients, channel-major as in `jaxface.render.shading`; identity
  (B, Ki) and expression (B, Ke) coefficients; albedo_features (B, F).
  """

  scale: jax.Array
  translation: jax.Array
  rotation: jax.Array
  illumination: jax.Array
  identity: jax.Array
  expression: jax.Array
  albedo_features: jax.Array


class Encoder(nn.Module):
  """3DMM encoder E (Table 3): (B, H, W, C) image -> `Factors`.

  13 SpectralConv + GN + ELU layers downsample by 32 (224 -> 7); four heads
  read the features, each through its own convolutions, a global average
  pool and a linear layer. No landmark head: the paper's landmark loss
  projects the mesh's landmark vertices with the predicted pose.

  Attributes:
    num_identity: shape coefficients Ki (199 for the paper's BFM).
    num_expression: expression coefficients Ke (29 for the paper's model).
    translation_dims: 2 (weak perspective, the paper) or 3.
    feature_dim: albedo features F (512).
    num_illumination: SH coefficients (27 = 9 bands x RGB).
    max_scale: the scale is max_scale * sigmoid(.), so it starts near
      max_scale / 2.
    width: channel multiplier (1 is the paper's network).
    spectral: spectral-normalise the convolutions.
  """

  num_identity: int = 199
  num_expression: int = 29
  translation_dims: int = 2
  feature_dim: int = 512
  num_illumination: int = 27
  max_scale: float = 2.0
  width: float = 1.0
  spectral: bool = True

  @nn.compact
  def __call__(self, images: jax.Array, *, update_stats: bool) -> Factors:
    check_image(images, "images")
    if self.translation_dims not in (2, 3):
      raise ValueError(f"translation_dims must be 2 or 3, got {self.translation_dims}")
    if (
      self.num_identity < 0
      or self.num_expression < 0
      or self.num_identity + self.num_expression < 1
    ):
      raise ValueError(
        f"need non-negative coefficient counts, at least one in all, got {self.num_identity}"
        f" identity and {self.num_expression} expression"
      )
    if self.feature_dim < 1 or self.num_illumination < 1:
      raise ValueError("feature_dim and num_illumination must be positive")

    def unit(x, channels, kernel=3, stride=1, bias=True, name=None):
      layer = ConvNormAct(
        channels, kernel, stride, kernel // 2, use_bias=bias, spectral=self.spectral, name=name
      )
      return layer(x, update_stats=update_stats)

    x = images
    for index, (channels, kernel, stride) in enumerate(ENCODER_TRUNK):
      # bias-free: the GroupNorm offset that follows makes a bias redundant
      x = unit(
        x, scaled_width(channels, self.width), kernel, stride, bias=False, name=f"trunk{index}"
      )
    features = x  # (B, H/32, W/32, 512 w)

    def head(names: Sequence[str], channels: Sequence[int]) -> jax.Array:
      y = features
      for name, c in zip(names, channels, strict=True):
        y = unit(y, c, name=name)
      return jnp.mean(y, axis=(1, 2))  # (B, c) global average pool

    small = scaled_width(ENCODER_SMALL_HEAD, self.width)
    large = scaled_width(ENCODER_LARGE_HEAD, self.width)
    t = self.translation_dims
    pose = nn.Dense(1 + t + 4, name="pose")(head(["pose_conv"], [small]))  # (B, 1 + T + 4)
    scale = self.max_scale * nn.sigmoid(pose[:, 0])  # (B,)
    translation = jnp.tanh(pose[:, 1 : 1 + t])  # (B, T)
    # Offset to the identity rotation so the untrained encoder starts frontal.
    quaternion = pose[:, 1 + t :] + jnp.array([1.0, 0.0, 0.0, 0.0], pose.dtype)  # (B, 4)
    rotation = quaternion * jax.lax.rsqrt(jnp.sum(quaternion**2, -1, keepdims=True) + 1e-12)

    illumination = nn.Dense(self.num_illumination, name="illumination")(
      head(["illumination_conv"], [small])
    )  # (B, 27)
    coefficients = nn.Dense(self.num_identity + self.num_expression, name="shape")(
      head(["shape_conv0", "shape_conv1"], [large, large])
    )  # (B, Ki + Ke)
    albedo_features = head(["albedo_conv0", "albedo_conv1"], [large, self.feature_dim])  # (B, F)
    return Factors(
      scale=scale,
      translation=translation,
      rotation=rotation,
      illumination=illumination,
      identity=coefficients[:, : self.num_identity],
      expression=coefficients[:, self.num_identity :],
      albedo_features=albedo_features,
    )


class AlbedoDecoder(nn.Module):
  """Albedo decoder D_A (Table 4): (B, F) albedo features -> (B, H, W, 3) UV albedo in [0, 1].

  The features are broadcast to (H, W) / 2**upsamplings (3 x 4 for the
  paper's 192 x 256 with 6 upsamplings), then seven stages of 2-3
  SpectralConv + GN + ELU layers, each stage but the first after a 2x
  nearest upsampling, and a plain 1x1 conv + sigmoid.

  Attributes:
    uv_size: (H, W) of the UV map, each divisible by 2**upsamplings.
    upsamplings: 2x upsamplings, 1 to 6; with fewer than 6 the first stages
      work at the same resolution (small maps such as 32 x 32).
    width: channel multiplier (1 is the paper's network).
    spectral: spectral-normalise the convolutions.
  """

  uv_size: tuple[int, int] = (192, 256)
  upsamplings: int = 6
  width: float = 1.0
  spectral: bool = True

  @nn.compact
  def __call__(self, features: jax.Array, *, update_stats: bool) -> jax.Array:
    if features.ndim != 2:
      raise ValueError(f"features must have shape (B, F), got {features.shape}")
    stages = len(DECODER_STAGES) - 1
    if not 1 <= self.upsamplings <= stages:
      raise ValueError(f"upsamplings must be in [1, {stages}], got {self.upsamplings}")
    height, width = self.uv_size
    factor = 2**self.upsamplings
    if height <= 0 or width <= 0 or height % factor or width % factor:
      raise ValueError(f"uv_size must be positive multiples of {factor}, got {self.uv_size}")
    start = (features.shape[0], height // factor, width // factor, features.shape[1])
    x = jnp.broadcast_to(features[:, None, None, :], start)  # (B, H / 2^u, W / 2^u, F)
    for stage, channels in enumerate(DECODER_STAGES):
      if stage > stages - self.upsamplings:
        x = upsample_nearest(x)
      for index, c in enumerate(channels):
        layer = ConvNormAct(
          scaled_width(c, self.width), spectral=self.spectral, name=f"stage{stage}_{index}"
        )
        x = layer(x, update_stats=update_stats)
    x = nn.Conv(3, (1, 1), name="head")(x)  # (B, H, W, 3)
    return nn.sigmoid(x)


class SymUNet(nn.Module):
  """Albedo inpainter G (Table 5): gated U-Net with a horizontally flipped input branch.

  The input X = (albedo * mask, mask) (B, H, W, 4) goes through two gated
  stride-2 residual units, one reading X and one reading hflip(X), with
  their own weights; their outputs are concatenated without flipping back,
  so at every pixel the network sees its own neighbourhood and its mirror
  image's, and the gates can copy the visible side into the missing one
  (supplement sec. 3.2). Four more gated stride-2 levels, a gated
  bottleneck and five gated upsampling levels with skips follow, then a
  1x1 conv to 3 albedo logits and 1 log-variance channel.

  `symmetry` chooses how the mirror is used:
  - "exact" (default): the flip-equivariant network
    G(X) = (U(X) + hflip(U(hflip(X)))) / 2, with U the network above, so
    a mirrored input gives exactly the mirrored completion. U runs once on
    the batch [X, hflip(X)] (twice the paper's compute), so both halves use
    the same spectral-norm state even when `update_stats=True`.
  - "branch": U alone, the paper's network (equivariant only as far as its
    training with flip augmentation made it).
  - "none": the `no_sym` ablation, a plain gated U-Net: one first-level
    branch, twice as wide, so the rest of the network is unchanged.

  The encoder levels sow their gate maps as "gates" in the `intermediates`
  collection (`mutable=["intermediates"]`; in "exact" mode for the batch
  [X, hflip(X)], 2B maps), for the paper's Fig. 13 visualisation.

  Attributes:
    symmetry: one of SYMMETRY_MODES.
    width: channel multiplier (1 is the paper's network).
    spectral: spectral-normalise the convolutions.
  """

  symmetry: str = "exact"
  width: float = 1.0
  spectral: bool = True

  def _scaled(self, channels: int) -> int:
    return scaled_width(channels, self.width)

  def _core(self, x: jax.Array, update_stats: bool) -> jax.Array:
    """U: (N, H, W, 4) -> (N, H, W, 4) logits."""
    first = self._scaled(SYM_DOWN[0])
    if self.symmetry == "none":
      x1 = GatedResUnit(2 * first, 2, self.spectral, name="down0")(x, update_stats=update_stats)
    else:
      direct = GatedResUnit(first, 2, self.spectral, name="down0")(x, update_stats=update_stats)
      mirror = GatedResUnit(first, 2, self.spectral, name="down0_flipped")(
        hflip(x), update_stats=update_stats
      )
      x1 = jnp.concatenate([direct, mirror], axis=-1)  # (N, H/2, W/2, 2 first)
    skips = [x1]
    for level, channels in enumerate(SYM_DOWN[1:], start=1):
      down = GatedResUnit(self._scaled(channels), 2, self.spectral, name=f"down{level}")
      skips.append(down(skips[-1], update_stats=update_stats))  # (N, H / 2^(level+1), ...)
    middle = GatedResUnit(self._scaled(SYM_MIDDLE), 1, self.spectral, name="middle")
    y = middle(skips.pop(), update_stats=update_stats)  # (N, H/32, W/32, 256 w)
    for level, channels in enumerate(SYM_UP):
      skip = skips.pop() if skips else None  # the finest level has no skip
      up = GatedUpBlock(self._scaled(channels), self.spectral, name=f"up{level}")
      y = up(y, skip, update_stats=update_stats)
    return nn.Conv(4, (1, 1), name="head")(y)  # (N, H, W, 4)

  @nn.compact
  def __call__(
    self, albedo: jax.Array, mask: jax.Array, *, update_stats: bool
  ) -> tuple[jax.Array, jax.Array]:
    """(B, H, W, 3) albedo, (B, H, W[, 1]) mask (1 = visible) -> albedo (B, H, W, 3) in [0, 1],
    log-variance (B, H, W, 1). Albedo outside the mask is ignored."""
    check_image(albedo, "albedo", channels=3)
    if mask.ndim == 3:
      mask = mask[..., None]
    if mask.shape != (*albedo.shape[:3], 1):
      raise ValueError(f"mask must have shape {albedo.shape[:3]} or (..., 1), got {mask.shape}")
    if self.symmetry not in SYMMETRY_MODES:
      raise ValueError(f"symmetry must be one of {SYMMETRY_MODES}, got {self.symmetry!r}")
    factor = 2 ** len(SYM_DOWN)
    if albedo.shape[1] % factor or albedo.shape[2] % factor:
      raise ValueError(f"H and W must be divisible by {factor}, got {albedo.shape}")
    mask = mask.astype(albedo.dtype)
    x = jnp.concatenate([albedo * mask, mask], axis=-1)  # (B, H, W, 4)
    if self.symmetry == "exact":
      batch = x.shape[0]
      both = self._core(jnp.concatenate([x, hflip(x)], axis=0), update_stats)  # (2B, H, W, 4)
      out = 0.5 * (both[:batch] + hflip(both[batch:]))  # G(X) = (U(X) + hflip(U(hflip X))) / 2
    else:
      out = self._core(x, update_stats)
    return nn.sigmoid(out[..., :3]), out[..., 3:]


class PyramidDiscriminator(nn.Module):
  """PyramidGAN discriminator D (Table 6): (B, H, W, C) -> 4 PatchGAN logit maps.

  Five 4x4 stride-2 SpectralConv + GN + LeakyReLU layers; the last four
  each feed a 1x1 SpectralConv to one logit channel, at 1/4, 1/8, 1/16 and
  1/32 of the input size, finest first.

  Attributes:
    width: channel multiplier (1 is the paper's network).
    negative_slope: LeakyReLU slope (0.2).
    spectral: spectral-normalise the convolutions.
  """

  width: float = 1.0
  negative_slope: float = 0.2
  spectral: bool = True

  @nn.compact
  def __call__(self, images: jax.Array, *, update_stats: bool) -> list[jax.Array]:
    check_image(images, "images")
    factor = 2 ** len(DISCRIMINATOR_WIDTHS)
    if images.shape[1] < factor or images.shape[2] < factor:
      raise ValueError(f"images must be at least {factor} x {factor}, got {images.shape}")
    activation = lambda x: nn.leaky_relu(x, self.negative_slope)
    x = images
    logits = []
    for level, channels in enumerate(DISCRIMINATOR_WIDTHS):
      c = scaled_width(channels, self.width)
      layer = ConvNormAct(
        c, 4, 2, 1, spectral=self.spectral, activation=activation, name=f"conv{level}"
      )
      x = layer(x, update_stats=update_stats)  # (B, H / 2^(level+1), W / 2^(level+1), c)
      if level > 0:
        out = SpectralConv(1, 1, 1, 0, spectral=self.spectral, name=f"out{level}")
        logits.append(out(x, update_stats=update_stats))
    return logits


class Segmenter(nn.Module):
  """Face segmenter S (Table 7): (B, H, W, C) image -> (B, H, W, 3) logits.

  A residual U-Net (`jaxface.nets.layers.UNet`); channels in SEGMENT_CLASSES
  order (face, occlusion, background). The paper's Softmax2d is left to the
  loss (focal loss on the logits). H and W must be divisible by 32.

  Attributes:
    num_classes: output channels (3).
    width: channel multiplier (1 is the paper's network).
    spectral: spectral-normalise the convolutions.
  """

  num_classes: int = len(SEGMENT_CLASSES)
  width: float = 1.0
  spectral: bool = True

  @nn.compact
  def __call__(self, images: jax.Array, *, update_stats: bool) -> jax.Array:
    check_image(images, "images")
    if self.num_classes < 1:
      raise ValueError(f"num_classes must be positive, got {self.num_classes}")
    net = UNet(
      self.num_classes,
      tuple(scaled_width(c, self.width) for c in SEGMENTER_DOWN),
      tuple(scaled_width(c, self.width) for c in SEGMENTER_UP),
      self.spectral,
      name="unet",
    )
    return net(images, update_stats=update_stats)
