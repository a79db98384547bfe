"""Convolutional building blocks shared by the methods: spectral-norm, gated and patch
convolutions, conv + GroupNorm + activation, residual units, down/up-sampling blocks and a U-Net.

All modules take NHWC images and PyTorch-style integer paddings (`padding=p`
pads p pixels on each side, for convolutions and transposed convolutions
alike), so layer tables written as `Conv(c_in, c_out, k, s, p)` translate
one to one and give the same output sizes.

Spectral normalisation (Miyato et al. 2018) is `flax.linen.SpectralNorm`:
each normalised kernel, reshaped to a (k*k*c_in, c_out) matrix, is divided
by its largest singular value, estimated by power iteration from a vector
`u` that persists between calls in the `batch_stats` collection (one
iteration per call, as in PyTorch's `spectral_norm`). The state is explicit,
so a training step stays a pure function:

    variables = model.init(rng, x, update_stats=False)  # {"params", "batch_stats"}
    # training: refine u by one power iteration and return the new state
    y, updates = model.apply(variables, x, update_stats=True, mutable=["batch_stats"])
    variables = {"params": new_params, "batch_stats": updates["batch_stats"]}
    # evaluation: read u, change nothing
    y = model.apply(variables, x, update_stats=False)

`update_stats` is a required keyword on every module here (as on
`nn.SpectralNorm`): a training step that forgot it would silently keep
restarting the power iteration and under-estimate the singular values.
The persistent vector is what keeps this cheap: a stateless variant would
need many power iterations per call, for every layer, to be as accurate.
With `update_stats=False` the layer still does one power iteration from the
stored `u` (without storing it), so evaluation is deterministic given the
variables.

GroupNorm takes `group_count(channels)` groups of 4 channels, the 3DFaceFill
tables' GN(c_out / 4), so that width multipliers keep the same rule.

`host_init_variables` builds the variables with numpy from `jax.eval_shape`:
on CPU, compiling `model.init` of a U-Net of these blocks takes about a
minute, mostly the PRNG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

Activation = Callable[[jax.Array], jax.Array] | None

#: Channels per GroupNorm group in the 3DFaceFill tables (GN(n) with n = c_out / 4).
CHANNELS_PER_GROUP = 4


def group_count(channels: int, channels_per_group: int = CHANNELS_PER_GROUP) -> int:
  """GroupNorm groups for `channels`: about `channels / channels_per_group`, dividing it."""
  if channels < 1:
    raise ValueError(f"channels must be positive, got {channels}")
  groups = max(1, channels // channels_per_group)
  while channels % groups:
    groups -= 1
  return groups


def upsample_nearest(x: jax.Array, factor: int | tuple[int, int] = 2) -> jax.Array:
  """Nearest-neighbour upsampling of (B, H, W, C) by integer factors -> (B, fH, fW, C)."""
  fh, fw = (factor, factor) if isinstance(factor, int) else factor
  return jnp.repeat(jnp.repeat(x, fh, axis=1), fw, axis=2)


def check_image(
  x: jax.Array, name: str = "x", *, channels: int | None = None, batched: bool = True
) -> None:
  """The one image-shape check: (B, H, W, C) images, or (..., H, W, C) when not `batched`.

  ValueError naming `name` and the shape; `channels` also fixes C.
  """
  shape = jnp.shape(x)
  rank_ok = len(shape) == 4 if batched else len(shape) >= 3
  if not rank_ok or (channels is not None and shape[-1] != channels):
    want = "C" if channels is None else channels
    raise ValueError(
      f"{name} must have shape ({'B' if batched else '...'}, H, W, {want}), got {shape}"
    )


def materialise(x: jax.Array) -> jax.Array:
  """x, computed once into its own buffer: x @ I over the last axis. For finite x the value
  and the gradient are bitwise x's (a non-finite entry spreads NaN across its channels).

  XLA:CPU fuses an elementwise producer into each of its consumers and recomputes it there.
  `PatchConv` reads its input through k * k slices, so in the critic the instance noise's
  erf_inv and the geometry mapping were evaluated 9 times per layer-1 call, and again in each
  derivative: 18% of the paper iteration's CPU time. `jax.lax.optimization_barrier`, the API
  meant for this, is expanded away by XLA:CPU before fusion; a dot is never fused into its
  consumers, and multiplying by the identity is exact (each output is x * 1 plus zeros).
  """
  channels = x.shape[-1]
  return x @ jnp.eye(channels, dtype=x.dtype)  # (..., C)


class PatchConv(nn.Module):
  """A square convolution computed as image patches times one matrix: `nn.Conv`'s layer, faster
  to differentiate twice on CPU.

  Same parameters as `nn.Conv(features, (k, k), strides, padding)` — a (k, k, C, F) `kernel`
  and an (F,) `bias` with nn.Conv's initialisers — so its variables, initial values included,
  are interchangeable with nn.Conv's. The output gathers the k * k strided shifts of the
  padded input into (B, H', W', k*k*C) and multiplies by the kernel reshaped to (k*k*C, F).
  Why: the WGAN-GP penalty differentiates the critic twice, and XLA:CPU's second derivative
  of a strided `lax.conv` took 3.5x as long as this one's (a 4-layer critic, batch 64, 64 px;
  `benchmarks/decoupled_gan.py`). Forward and first derivative cost about the same as nn.Conv.

  Attributes:
    features: output channels F.
    kernel_size: k.
    strides: s.
    padding: "SAME" (XLA's convention: output ceil(H / s)) or PyTorch-style p on every side.
    use_bias: add a bias.
  """

  features: int
  kernel_size: int = 3
  strides: int = 1
  padding: int | str = "SAME"
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    check_image(x)
    k, s = self.kernel_size, self.strides
    _, height, width, channels = x.shape
    kernel = self.param(
      "kernel", nn.initializers.lecun_normal(), (k, k, channels, self.features)
    )  # the default initialisers of nn.Conv
    if self.padding == "SAME":
      pads = jax.lax.padtype_to_pads((height, width), (k, k), (s, s), "SAME")  # as nn.Conv
    elif isinstance(self.padding, int):
      pads = ((self.padding, self.padding),) * 2
    else:
      raise ValueError(f'padding must be "SAME" or an int, got {self.padding!r}')
    x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    out_height = (x.shape[1] - k) // s + 1
    out_width = (x.shape[2] - k) // s + 1
    if out_height < 1 or out_width < 1:
      raise ValueError(f"input {height}x{width} is smaller than the kernel {k}x{k}")
    shifts = [
      x[:, di : di + (out_height - 1) * s + 1 : s, dj : dj + (out_width - 1) * s + 1 : s, :]
      for di in range(k)
      for dj in range(k)
    ]  # k*k of (B, H', W', C), in the kernel's (di, dj) order
    patches = jnp.concatenate(shifts, axis=-1)  # (B, H', W', k*k*C)
    y = patches @ kernel.reshape(k * k * channels, self.features)  # (B, H', W', F)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


class SpectralConv(nn.Module):
  """2D (transposed) convolution with a spectrally normalised kernel.

  Attributes:
    features: output channels.
    kernel_size: square kernel size k.
    strides: stride s.
    padding: PyTorch-style padding p on every side. For `transpose=True`
      the output is (H - 1) s - 2p + k, as for `torch.nn.ConvTranspose2d`.
    transpose: a transposed convolution (upsampling by `strides`).
    use_bias: add a bias.
    spectral: normalise the kernel; False gives a plain convolution with the
      same interface (for ablations and for the tables' plain `Conv` layers).
    power_iterations: power-iteration steps per call.
  """

  features: int
  kernel_size: int = 3
  strides: int = 1
  padding: int = 1
  transpose: bool = False
  use_bias: bool = True
  spectral: bool = True
  power_iterations: int = 1

  @nn.compact
  def __call__(self, x: jax.Array, *, update_stats: bool) -> jax.Array:
    check_image(x)
    k, s, p = self.kernel_size, self.strides, self.padding
    if self.transpose:
      # torch's ConvTranspose2d padding p trims p pixels from the full output,
      # which is flax's explicit padding k - 1 - p of the dilated input.
      pad = k - 1 - p
      if pad < 0:
        raise ValueError(f"transposed convolution needs padding <= kernel_size - 1, got {p}")
      conv = nn.ConvTranspose(
        self.features, (k, k), (s, s), ((pad, pad), (pad, pad)), use_bias=self.use_bias, name="conv"
      )
    else:
      conv = nn.Conv(
        self.features, (k, k), (s, s), ((p, p), (p, p)), use_bias=self.use_bias, name="conv"
      )
    if not self.spectral:
      return conv(x)
    return nn.SpectralNorm(conv, n_steps=self.power_iterations, name="spectral_norm")(
      x, update_stats=update_stats
    )


class ConvNormAct(nn.Module):
  """Convolution + GroupNorm + activation: the tables' `SpectralConv + GN(c/4) + ELU` unit.

  With `activation=nn.sigmoid` it is `SigGNConv` (`SigGNDeconv` with
  `transpose=True`), with `nn.leaky_relu` the discriminator's unit.

  Attributes:
    features: output channels.
    kernel_size, strides, padding, transpose, use_bias, spectral: as in `SpectralConv`.
    activation: applied after the norm; None for none.
    norm: apply GroupNorm (`group_count(features)` groups).
  """

  features: int
  kernel_size: int = 3
  strides: int = 1
  padding: int = 1
  transpose: bool = False
  use_bias: bool = True
  spectral: bool = True
  activation: Activation = nn.elu
  norm: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, *, update_stats: bool) -> jax.Array:
    x = SpectralConv(
      self.features,
      self.kernel_size,
      self.strides,
      self.padding,
      self.transpose,
      self.use_bias,
      self.spectral,
      name="conv",
    )(x, update_stats=update_stats)
    if self.norm:
      x = nn.GroupNorm(num_groups=group_count(self.features), name="norm")(x)
    return x if self.activation is None else self.activation(x)


class ResUnit(nn.Module):
  """Residual unit with GroupNorm and ELU (the tables' `ResUnit(c_in, c_out, 3, s, 1)`).

  conv3x3(s) -> GN -> ELU -> conv3x3 -> GN, plus the input (through a
  1x1 conv(s) + GN when channels or size change), then ELU.

  Attributes:
    features: output channels.
    strides: stride of the first convolution and of the shortcut.
    kernel_size: size of both convolutions (padding keeps the size at stride 1).
    spectral: spectral-normalise the convolutions.
  """

  features: int
  strides: int = 1
  kernel_size: int = 3
  spectral: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, *, update_stats: bool) -> jax.Array:
    # (B, H, W, C) -> (B, H/s, W/s, features)
    pad = self.kernel_size // 2
    common = dict(kernel_size=self.kernel_size, padding=pad, spectral=self.spectral)
    y = ConvNormAct(self.features, strides=self.strides, name="conv1", **common)(
      x, update_stats=update_stats
    )
    y = ConvNormAct(self.features, activation=None, name="conv2", **common)(
      y, update_stats=update_stats
    )
    residual = x
    if self.strides != 1 or x.shape[-1] != self.features:
      shortcut = ConvNormAct(
        self.features, 1, self.strides, 0, spectral=self.spectral, activation=None, name="shortcut"
      )
      residual = shortcut(x, update_stats=update_stats)
    return nn.elu(y + residual)


class GatedConv(nn.Module):
  """Gated convolution (Yu et al. 2019): activation(features(x)) * sigmoid(gate(x)).

  Two convolutions of the same shape read the input; the sigmoid of the
  second is a learned soft mask in [0, 1] per pixel and channel, which lets
  the network pass or block features of the valid and the missing regions.

  Attributes:
    features: output channels.
    kernel_size, strides, padding, transpose, spectral: as in `SpectralConv`
      (shared by both convolutions).
    activation: applied to the feature branch (after its norm); None for none.
    norm: GroupNorm after each convolution (before the activation / sigmoid).
  """

  features: int
  kernel_size: int = 3
  strides: int = 1
  padding: int = 1
  transpose: bool = False
  spectral: bool = True
  activation: Activation = nn.elu
  norm: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, *, update_stats: bool) -> jax.Array:
    common = dict(
      kernel_size=self.kernel_size,
      strides=self.strides,
      padding=self.padding,
      transpose=self.transpose,
      spectral=self.spectral,
      norm=self.norm,
    )
    f = ConvNormAct(self.features, activation=self.activation, name="features", **common)
    g = ConvNormAct(self.features, activation=nn.sigmoid, name="gate", **common)
    return f(x, update_stats=update_stats) * g(x, update_stats=update_stats)


class GatedResUnit(nn.Module):
  """A residual unit gated by a conv + GN + sigmoid of the same input (Table 5's down levels).

  Returns features * gate with features = `ResUnit(x)` and gate =
  `SigGNConv(x)` of the same stride. The gate is sown as `"gates"` in the
  `intermediates` collection for visualisation (pass
  `mutable=["intermediates"]` to read it).

  Attributes:
    features: output channels.
    strides: stride of both branches.
    spectral: spectral-normalise the convolutions.
  """

  features: int
  strides: int = 1
  spectral: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, *, update_stats: bool) -> jax.Array:
    f = ResUnit(self.features, self.strides, spectral=self.spectral, name="features")(
      x, update_stats=update_stats
    )
    gate = ConvNormAct(
      self.features, 3, self.strides, 1, spectral=self.spectral, activation=nn.sigmoid, name="gate"
    )
    g = gate(x, update_stats=update_stats)
    self.sow("intermediates", "gates", g)
    return f * g


class DownBlock(nn.Module):
  """Halves the resolution: a stride-2 `ResUnit` (U-Net encoder level).

  Attributes:
    features: output channels.
    spectral: spectral-normalise the convolutions.
  """

  features: int
  spectral: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, *, update_stats: bool) -> jax.Array:
    # (B, H, W, C) -> (B, H/2, W/2, features)
    return ResUnit(self.features, 2, spectral=self.spectral, name="res")(
      x, update_stats=update_stats
    )


class UpBlock(nn.Module):
  """Doubles the resolution: nearest upsampling, concat with the skip, `ResUnit`.

  Attributes:
    features: output channels.
    spectral: spectral-normalise the convolutions.
  """

  features: int
  spectral: bool = True

  @nn.compact
  def __call__(
    self, x: jax.Array, skip: jax.Array | None = None, *, update_stats: bool
  ) -> jax.Array:
    # (B, H, W, C), skip (B, 2H, 2W, C') -> (B, 2H, 2W, features)
    x = upsample_nearest(x)
    if skip is not None:
      if skip.shape[:3] != x.shape[:3]:
        raise ValueError(f"skip {skip.shape} does not match the upsampled input {x.shape}")
      x = jnp.concatenate([x, skip], axis=-1)
    return ResUnit(self.features, spectral=self.spectral, name="res")(x, update_stats=update_stats)


class GatedUpBlock(nn.Module):
  """Doubles the resolution, gated (Table 5's up levels).

  features = `ResUnit(concat(upsample(x), skip))`, gate = `SigGNDeconv(x)`
  (a 4x4 stride-2 transposed conv + GN + sigmoid); returns features * gate.

  Attributes:
    features: output channels.
    spectral: spectral-normalise the convolutions.
  """

  features: int
  spectral: bool = True

  @nn.compact
  def __call__(
    self, x: jax.Array, skip: jax.Array | None = None, *, update_stats: bool
  ) -> jax.Array:
    # (B, H, W, C), skip (B, 2H, 2W, C') -> (B, 2H, 2W, features)
    f = UpBlock(self.features, self.spectral, name="up")(x, skip, update_stats=update_stats)
    gate = ConvNormAct(
      self.features,
      kernel_size=4,
      strides=2,
      padding=1,
      transpose=True,
      spectral=self.spectral,
      activation=nn.sigmoid,
      name="gate",
    )
    return f * gate(x, update_stats=update_stats)


class UNet(nn.Module):
  """U-Net of residual units (3DFaceFill Table 7 at the defaults): (B, H, W, C) -> (B, H, W, out).

  Level 0 is a stride-1 `ResUnit` at full resolution; each further encoder
  level is a `DownBlock`; each decoder level an `UpBlock` joined with the
  encoder level of its resolution; a plain 1x1 convolution gives the
  outputs (logits, no activation). H and W must be divisible by
  2 ** (len(widths) - 1).

  Attributes:
    out_features: output channels.
    widths: encoder channels per level, full resolution first.
    up_widths: decoder channels, coarsest first, len(widths) - 1 of them.
    spectral: spectral-normalise the convolutions (not the output layer).
  """

  out_features: int
  widths: Sequence[int] = (32, 64, 128, 256, 256, 256)
  up_widths: Sequence[int] = (256, 128, 64, 32, 32)
  spectral: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, *, update_stats: bool) -> jax.Array:
    check_image(x)
    if len(self.widths) < 1 or len(self.up_widths) != len(self.widths) - 1:
      raise ValueError(
        f"need len(up_widths) == len(widths) - 1, got {len(self.up_widths)} and {len(self.widths)}"
      )
    factor = 2 ** (len(self.widths) - 1)
    if x.shape[1] % factor or x.shape[2] % factor:
      raise ValueError(f"H and W must be divisible by {factor}, got {x.shape}")
    first = ResUnit(self.widths[0], spectral=self.spectral, name="down0")
    skips = [first(x, update_stats=update_stats)]  # (B, H, W, widths[0]), ...
    for level, features in enumerate(self.widths[1:], start=1):
      down = DownBlock(features, self.spectral, name=f"down{level}")
      skips.append(down(skips[-1], update_stats=update_stats))
    y = skips.pop()  # (B, H / factor, W / factor, widths[-1])
    for level, features in enumerate(self.up_widths):
      y = UpBlock(features, self.spectral, name=f"up{level}")(
        y, skips.pop(), update_stats=update_stats
      )
    return nn.Conv(self.out_features, (1, 1), name="head")(y)  # (B, H, W, out_features)


def host_init_variables(module: nn.Module, *args, seed: int = 0, **kwargs) -> dict:
  """All variables of `module` drawn with numpy on the host, without compiling `module.init`.

  Compiling `init` of a deep network costs tens of seconds on CPU (mostly
  the PRNG). Shapes come from
  `jax.eval_shape`; kernels ~ N(0, 1 / fan_in) (fan_in = all but the last
  axis, as Flax's default LeCun normal for convolutions, transposed
  convolutions and dense layers), biases 0, GroupNorm scales 1, spectral-norm
  vectors `u` ~ N(0, 1) and `sigma` 1, as `nn.SpectralNorm` initialises them, and
  BatchNorm's running mean 0 and variance 1, as `nn.BatchNorm` does.

  Returns:
    {"params": ..., "batch_stats": ...} (the collections `module.init`
    would return), nested dicts of float32 jax arrays.
  """
  shapes = jax.eval_shape(lambda *a: module.init(jax.random.PRNGKey(0), *a, **kwargs), *args)
  rng = np.random.default_rng(seed)
  out = {}
  for path, leaf in traverse_util.flatten_dict(shapes).items():
    name = path[-1]
    if path[0] == "params" and name == "kernel":
      value = rng.standard_normal(leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))
    elif path[0] == "params" and name == "bias":
      value = np.zeros(leaf.shape)
    elif path[0] == "params" and name == "scale":
      value = np.ones(leaf.shape)
    elif path[0] == "batch_stats" and name.endswith("/u"):
      value = rng.standard_normal(leaf.shape)
    elif path[0] == "batch_stats" and name.endswith("/sigma"):
      value = np.ones(leaf.shape)
    elif path[0] == "batch_stats" and name == "mean":  # BatchNorm's running statistics
      value = np.zeros(leaf.shape)
    elif path[0] == "batch_stats" and name == "var":
      value = np.ones(leaf.shape)
    else:
      raise ValueError(f"host_init_variables does not know how to initialise {'/'.join(path)}")
    out[path] = jnp.asarray(value, leaf.dtype)
  return traverse_util.unflatten_dict(out)
