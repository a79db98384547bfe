"""Image-quality metrics of face completion: PSNR, SSIM, LPIPS, and mask-ratio buckets.

All metrics take float images in [0, 1], (B, H, W, 3) (or one (H, W, 3)
image), and return one value per image; they are pure jnp and jit-safe.

- PSNR and SSIM are the standard definitions (dm-pix): PSNR = 10 log10(1 /
  MSE) over all pixels and channels; SSIM with an 11-tap Gaussian window
  (sigma 1.5), K1 = 0.01, K2 = 0.03, averaged over the valid window positions
  and the channels (equal to scikit-image's `structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=1)`).
- `hole_psnr` and `hole_ssim` measure the completed region alone: PSNR
  over the hole pixels, SSIM averaged over the windows centred in the hole.
- LPIPS v0.1 (Zhang et al., CVPR 2018): an AlexNet or VGG16 backbone,
  each tapped layer's features unit-normalised over channels, squared
  differences weighted by the learned linear layer, averaged over space and
  summed over layers. The weights cannot be shipped or downloaded here, so
  `load_lpips` finds them where the user keeps them (a `path` argument or
  $JAXFACE_LPIPS) and returns `LpipsUnavailable` with the reason when they
  are absent; the metric is then reported as unavailable, never estimated.

  Accepted files: a directory holding the torchvision backbone
  (`alexnet-owt-7be5be79.pth` / `vgg16-397923af.pth`) and the LPIPS v0.1
  linear layers (`alex.pth` / `vgg.pth`, shipped in the `lpips` pip package
  under `lpips/weights/v0.1/`), which needs torch to read; or, without
  torch, one `.npz` of the same tensors (a file, or `lpips_alex.npz` /
  `lpips_vgg.npz` in the directory), made once where torch is installed:

    import numpy as np, torch
    sd = {**torch.load("alexnet-owt-7be5be79.pth"), **torch.load("alex.pth")}
    np.savez("lpips_alex.npz", **{k: v.numpy() for k, v in sd.items() if "classifier" not in k})

  Keys may be torchvision's (`features.3.weight`) or the `lpips` module's
  (`net.slice2.3.weight`), and `lin1.model.1.weight` / `lins.1.model.1.weight`.
- `metrics_by_mask_ratio` reports the per-image metrics overall and by
  mask-to-face area ratio, as 3DFaceFill plots them (PSNR/LPIPS in the main
  paper, SSIM in supplement Fig. 10): buckets of 10 points from 10% to 50%.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import pathlib
import re
from collections.abc import Mapping, Sequence

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

from jaxface.metrics import spread

# ---------------------------------------------------------------------------
# PSNR and SSIM


def _check_pair(predictions, targets) -> tuple[jax.Array, jax.Array]:
  """Raises `ValueError` unless both are equal-shape float (H, W, C) or (B, H, W, C)."""
  shape_p, shape_t = np.shape(predictions), np.shape(targets)
  if len(shape_p) not in (3, 4):
    raise ValueError(f"predictions must have shape (B, H, W, C) or (H, W, C), got {shape_p}")
  if shape_p != shape_t:
    raise ValueError(f"targets must have the shape of predictions {shape_p}, got {shape_t}")
  for name, value in (("predictions", predictions), ("targets", targets)):
    if not jnp.issubdtype(jnp.result_type(value), jnp.floating):
      raise ValueError(f"{name} must be float images in [0, 1], got dtype {jnp.result_type(value)}")
  return jnp.asarray(predictions), jnp.asarray(targets)


def psnr(predictions, targets) -> jax.Array:
  """PSNR in dB of [0, 1] images (peak 1): (B, H, W, C) x2 -> (B,), or a scalar for (H, W, C).

  Identical images give +inf.
  """
  predictions, targets = _check_pair(predictions, targets)
  return dm_pix.psnr(predictions, targets)


def ssim(predictions, targets) -> jax.Array:
  """Mean SSIM of [0, 1] images: (B, H, W, C) x2 -> (B,), or a scalar for (H, W, C).

  Gaussian window of 11 taps, sigma 1.5, K1 = 0.01, K2 = 0.03 (Wang et al.
  2004); H and W must be at least 11.
  """
  predictions, targets = _check_pair(predictions, targets)
  if min(predictions.shape[-3:-1]) < 11:
    raise ValueError(f"SSIM needs images of at least 11x11, got {predictions.shape}")
  return dm_pix.ssim(predictions, targets, max_val=1.0, filter_size=11, filter_sigma=1.5)


def _check_holes(holes, predictions) -> jax.Array:
  """(B, H, W) or (H, W) masks matching the images' leading dims, as float 0/1."""
  expected = np.shape(predictions)[:-1]
  if np.shape(holes) != expected:
    raise ValueError(f"holes must have shape {expected} (the images' without C), got "
                     f"{np.shape(holes)}")  # fmt: skip
  return (jnp.asarray(holes) > 0.5).astype(jnp.float32)


def hole_psnr(predictions, targets, holes) -> jax.Array:
  """PSNR in dB over the hole pixels only (peak 1): the MSE is averaged over the pixels where
  `holes` is set and over the channels. (B, H, W, C) x2, (B, H, W) -> (B,).

  A completion copies the unmasked pixels, so whole-image PSNR = hole PSNR +
  10 log10(pixels / hole pixels): this is the figure that measures the
  completion. An empty hole gives NaN; a perfect fill +inf.
  """
  predictions, targets = _check_pair(predictions, targets)
  weight = _check_holes(holes, predictions)[..., None]  # (..., H, W, 1)
  squared = jnp.sum(jnp.square(predictions - targets) * weight, axis=(-3, -2, -1))
  count = jnp.sum(weight, axis=(-3, -2, -1)) * predictions.shape[-1]
  return -10.0 * jnp.log10(squared / count)


def hole_ssim(predictions, targets, holes) -> jax.Array:
  """Mean SSIM over the windows centred in the holes: `ssim`'s map, (B, H - 10, W - 10, C) at
  the valid window centres, averaged over the channels and the centres where `holes` is set.
  (B, H, W, C) x2, (B, H, W) -> (B,); NaN when no hole pixel lies 5 px inside the border.

  The windows reach 5 px beyond the hole, into copied pixels, as every windowed
  SSIM of a region does; the map is scikit-image's `structural_similarity(...,
  full=True)` at the same centres.
  """
  predictions, targets = _check_pair(predictions, targets)
  weight = _check_holes(holes, predictions)
  if min(predictions.shape[-3:-1]) < 11:
    raise ValueError(f"SSIM needs images of at least 11x11, got {predictions.shape}")
  ssim_map = dm_pix.ssim(
    predictions, targets, max_val=1.0, filter_size=11, filter_sigma=1.5, return_map=True
  )  # (..., H - 10, W - 10, C)
  centres = weight[..., 5:-5, 5:-5]  # the hole at the map's window centres
  total = jnp.sum(ssim_map.mean(-1) * centres, axis=(-2, -1))
  return total / jnp.sum(centres, axis=(-2, -1))


# ---------------------------------------------------------------------------
# LPIPS weights

#: LPIPS v0.1 input constants (its `ScalingLayer`), applied to images in [-1, 1].
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


@dataclasses.dataclass(frozen=True)
class _Conv:
  index: int  # position in torchvision's `features` Sequential (names the weights)
  kernel: int
  stride: int
  padding: int


@dataclasses.dataclass(frozen=True)
class _Stage:
  """One LPIPS slice: an optional max-pool (window, stride), then conv+ReLU layers; tapped after."""

  pool: tuple[int, int] | None
  convs: tuple[_Conv, ...]


# The torchvision `features` layers up to each of LPIPS's five taps
# (lpips/pretrained_networks.py: AlexNet relu1..relu5, VGG16 relu1_2..relu5_3).
_ARCHITECTURES: dict[str, tuple[_Stage, ...]] = {
  "alex": (
    _Stage(None, (_Conv(0, 11, 4, 2),)),
    _Stage((3, 2), (_Conv(3, 5, 1, 2),)),
    _Stage((3, 2), (_Conv(6, 3, 1, 1),)),
    _Stage(None, (_Conv(8, 3, 1, 1),)),
    _Stage(None, (_Conv(10, 3, 1, 1),)),
  ),
  "vgg": (
    _Stage(None, (_Conv(0, 3, 1, 1), _Conv(2, 3, 1, 1))),
    _Stage((2, 2), (_Conv(5, 3, 1, 1), _Conv(7, 3, 1, 1))),
    _Stage((2, 2), (_Conv(10, 3, 1, 1), _Conv(12, 3, 1, 1), _Conv(14, 3, 1, 1))),
    _Stage((2, 2), (_Conv(17, 3, 1, 1), _Conv(19, 3, 1, 1), _Conv(21, 3, 1, 1))),
    _Stage((2, 2), (_Conv(24, 3, 1, 1), _Conv(26, 3, 1, 1), _Conv(28, 3, 1, 1))),
  ),
}
_BACKBONE_FILES = {"alex": "alexnet", "vgg": "vgg16"}
_ENV = "JAXFACE_LPIPS"


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LpipsWeights:
  """LPIPS v0.1 weights as a pytree (pass it through `jit` like any argument).

  Attributes:
    convs: per backbone conv in `_ARCHITECTURES[net]` order, (weight (O, I, k, k) in
      torch's OIHW layout, bias (O,)).
    lins: per tapped layer, the linear layer's (C,) channel weights.
    net: "alex" or "vgg" (static).
  """

  convs: tuple[tuple[jax.Array, jax.Array], ...]
  lins: tuple[jax.Array, ...]
  net: str = dataclasses.field(metadata={"static": True}, default="alex")


@dataclasses.dataclass(frozen=True)
class LpipsUnavailable:
  """LPIPS cannot be computed; `reason` says why (missing files, missing torch)."""

  reason: str

  def __str__(self) -> str:
    return f"LPIPS unavailable: {self.reason}"


_BACKBONE_KEY = re.compile(r"(?:^features|slice\d+)\.(\d+)\.(weight|bias)$")
_LINEAR_KEY = re.compile(r"^lins?\.?(\d+)\.model\.\d+\.weight$")


def lpips_weights_from_tensors(
  tensors: Mapping[str, np.ndarray], net: str = "alex", source: str = "tensors"
) -> LpipsWeights:
  """Builds `LpipsWeights` from torch-named tensors (torchvision/lpips state-dict keys).

  Raises `ValueError` naming `source` and the key when a tensor is missing or
  has the wrong shape; keys of other layers (the classifier) are ignored.
  """
  if net not in _ARCHITECTURES:
    raise ValueError(f"net must be one of {tuple(_ARCHITECTURES)}, got {net!r}")
  backbone, linear = {}, {}
  for key, value in tensors.items():
    if match := _BACKBONE_KEY.search(key):
      backbone[(int(match[1]), match[2])] = np.asarray(value, np.float32)
    elif match := _LINEAR_KEY.search(key):
      linear[int(match[1])] = np.asarray(value, np.float32).reshape(-1)

  convs, tap_channels, channels = [], [], 3
  for stage in _ARCHITECTURES[net]:
    for conv in stage.convs:
      for part in ("weight", "bias"):
        if (conv.index, part) not in backbone:
          raise ValueError(f"{source}: missing LPIPS-{net} tensor features.{conv.index}.{part}")
      weight, bias = backbone[(conv.index, "weight")], backbone[(conv.index, "bias")]
      if weight.ndim != 4 or weight.shape[1:] != (channels, conv.kernel, conv.kernel):
        raise ValueError(
          f"{source}: features.{conv.index}.weight must have shape (O, {channels}, "
          f"{conv.kernel}, {conv.kernel}), got {weight.shape}"
        )
      if bias.shape != weight.shape[:1]:
        raise ValueError(
          f"{source}: features.{conv.index}.bias must have shape {weight.shape[:1]}, "
          f"got {bias.shape}"
        )
      convs.append((jnp.asarray(weight), jnp.asarray(bias)))
      channels = weight.shape[0]
    tap_channels.append(channels)

  lins = []
  for layer, expected in enumerate(tap_channels):
    if layer not in linear:
      raise ValueError(f"{source}: missing LPIPS-{net} tensor lin{layer}.model.1.weight")
    if linear[layer].shape != (expected,):
      raise ValueError(
        f"{source}: lin{layer}.model.1.weight must have {expected} channels, "
        f"got {linear[layer].shape}"
      )
    lins.append(jnp.asarray(linear[layer]))
  return LpipsWeights(convs=tuple(convs), lins=tuple(lins), net=net)


def save_lpips(weights: LpipsWeights, path: str | os.PathLike) -> pathlib.Path:
  """Writes `weights` as an `.npz` of torchvision/lpips-named tensors that `load_lpips` reads."""
  tensors = {}
  convs = (conv for stage in _ARCHITECTURES[weights.net] for conv in stage.convs)
  for conv, (weight, bias) in zip(convs, weights.convs, strict=True):
    tensors[f"features.{conv.index}.weight"] = np.asarray(weight)
    tensors[f"features.{conv.index}.bias"] = np.asarray(bias)
  for layer, lin in enumerate(weights.lins):
    tensors[f"lin{layer}.model.1.weight"] = np.asarray(lin).reshape(1, -1, 1, 1)
  path = pathlib.Path(path)
  if path.suffix != ".npz":
    path = path.with_name(path.name + ".npz")  # where np.savez would put it anyway
  np.savez(path, **tensors)
  return path


_RECIPE = (
  "python -c \"import numpy as np, torch; sd = {{**torch.load('{backbone}'), "
  "**torch.load('{net}.pth')}}; np.savez('lpips_{net}.npz', **{{k: v.numpy() "
  "for k, v in sd.items() if 'classifier' not in k}})\""
)


def _load_npz(path: pathlib.Path, net: str) -> LpipsWeights:
  try:
    with np.load(path) as data:
      tensors = {key: data[key] for key in data.files}
  except (OSError, ValueError) as error:
    raise ValueError(f"{path}: not a readable .npz of LPIPS tensors ({error})") from error
  return lpips_weights_from_tensors(tensors, net, source=str(path))


def load_lpips(
  path: str | os.PathLike | None = None, net: str = "alex"
) -> LpipsWeights | LpipsUnavailable:
  """LPIPS v0.1 weights from `path` (or $JAXFACE_LPIPS), or `LpipsUnavailable` saying why.

  `path` is an `.npz` file, or a directory holding `lpips_<net>.npz`, or
  `<net>.pth` (LPIPS linear layers) beside the torchvision backbone
  `alexnet-*.pth` / `vgg16-*.pth` (read with torch when it is installed).
  Absent files give `LpipsUnavailable`; files that are there but malformed
  raise `ValueError` naming the file and the tensor.
  """
  if net not in _ARCHITECTURES:
    raise ValueError(f"net must be one of {tuple(_ARCHITECTURES)}, got {net!r}")
  if path is None:
    path = os.environ.get(_ENV) or None
    if path is None:
      return LpipsUnavailable(
        f"no weights: pass path= or set ${_ENV} to a directory or .npz holding the LPIPS "
        f"v0.1 {net} weights (see jaxface.metrics.image)"
      )
  path = pathlib.Path(path)
  if not path.exists():
    return LpipsUnavailable(f"{path} does not exist")
  if path.is_file():
    if path.suffix != ".npz":
      raise ValueError(f"path must be a directory or an .npz file, got {path}")
    return _load_npz(path, net)

  if (npz := path / f"lpips_{net}.npz").exists():
    return _load_npz(npz, net)
  name = _BACKBONE_FILES[net]
  linear = path / f"{net}.pth"
  backbones = sorted([*path.glob(f"{name}-*.pth"), *path.glob(f"{name}.pth")])
  if not linear.exists() or not backbones:
    return LpipsUnavailable(
      f"{path} holds neither lpips_{net}.npz nor {net}.pth beside a torchvision backbone "
      f"{name}-*.pth"
    )
  try:
    import torch  # optional: only .pth files need it
  except ImportError:
    recipe = _RECIPE.format(backbone=backbones[0].name, net=net)
    return LpipsUnavailable(
      f"{path} holds .pth files but torch is not installed to read them; convert them once "
      f"where torch is, in that directory: {recipe}"
    )
  tensors = {}
  for file in (backbones[0], linear):
    state = torch.load(file, map_location="cpu", weights_only=True)
    tensors.update({key: value.numpy() for key, value in state.items()})
  return lpips_weights_from_tensors(tensors, net, source=f"{backbones[0]} + {linear}")


# ---------------------------------------------------------------------------
# LPIPS forward


def _feature_sizes(net: str, height: int, width: int) -> list[tuple[int, int]]:
  """(h, w) of each tapped layer for an (H, W) input; raises `ValueError` when one is empty."""
  sizes, size = [], (height, width)
  for stage in _ARCHITECTURES[net]:
    if stage.pool is not None:
      window, stride = stage.pool
      size = tuple((n - window) // stride + 1 for n in size)
    for conv in stage.convs:
      size = tuple((n + 2 * conv.padding - conv.kernel) // conv.stride + 1 for n in size)
    if min(size) < 1:
      raise ValueError(f"images of {height}x{width} are too small for the LPIPS {net} backbone")
    sizes.append(size)
  return sizes


def _backbone(x: jax.Array, weights: LpipsWeights) -> list[jax.Array]:
  """Scaled input (N, H, W, 3) -> the five tapped ReLU features, each (N, h, w, C)."""
  features, convs = [], iter(weights.convs)
  for stage in _ARCHITECTURES[weights.net]:
    if stage.pool is not None:
      window, stride = stage.pool
      # torch MaxPool2d: no padding, floor mode, so "VALID".
      x = jax.lax.reduce_window(
        x, -jnp.inf, jax.lax.max, (1, window, window, 1), (1, stride, stride, 1), "VALID"
      )
    for conv in stage.convs:
      weight, bias = next(convs)
      x = jax.lax.conv_general_dilated(
        x,
        weight,
        window_strides=(conv.stride, conv.stride),
        padding=((conv.padding, conv.padding), (conv.padding, conv.padding)),
        dimension_numbers=("NHWC", "OIHW", "NHWC"),
        precision=jax.lax.Precision.HIGHEST,
      )
      x = jax.nn.relu(x + bias)
    features.append(x)
  return features


def _unit_normalise(features: jax.Array, eps: float = 1e-10) -> jax.Array:
  """LPIPS's `normalize_tensor`: f / (|f|_2 over channels + eps), (N, h, w, C)."""
  squared = jnp.sum(jnp.square(features), axis=-1, keepdims=True)  # (N, h, w, 1)
  # sqrt through `where` keeps the gradient finite where ReLU zeroed every channel.
  positive = squared > 0
  norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)
  return features / (norm + eps)


def lpips(predictions, targets, weights: LpipsWeights) -> jax.Array:
  """LPIPS v0.1 distance of [0, 1] images: (B, H, W, 3) x2 -> (B,), or a scalar for (H, W, 3).

  Images are mapped to [-1, 1] and through LPIPS's shift/scale before the
  backbone, as `lpips.LPIPS()(a, b, normalize=True)` does.
  """
  if isinstance(weights, LpipsUnavailable):
    raise ValueError(f"weights: {weights}")
  if not isinstance(weights, LpipsWeights):
    raise ValueError(f"weights must be LpipsWeights (see load_lpips), got {type(weights)}")
  predictions, targets = _check_pair(predictions, targets)
  single = predictions.ndim == 3
  if single:
    predictions, targets = predictions[None], targets[None]
  if predictions.shape[-1] != 3:
    raise ValueError(f"predictions must be RGB (..., 3), got {predictions.shape}")
  _feature_sizes(weights.net, *predictions.shape[1:3])
  batch = predictions.shape[0]

  shift, scale = jnp.asarray(LPIPS_SHIFT), jnp.asarray(LPIPS_SCALE)
  # Each image set through the backbone on its own: identical inputs then give
  # bit-identical features (a joint batch may be blocked differently per half).
  features = [
    _backbone((2 * images.astype(jnp.float32) - 1 - shift) / scale, weights)
    for images in (predictions, targets)
  ]
  distance = jnp.zeros((batch,), jnp.float32)
  for a, b, lin in zip(*features, weights.lins, strict=True):
    squared = jnp.square(_unit_normalise(a) - _unit_normalise(b))  # (B, h, w, C)
    layer = jnp.einsum("bhwc,c->bhw", squared, lin, precision=jax.lax.Precision.HIGHEST)
    distance = distance + jnp.mean(layer, axis=(1, 2))
  return distance[0] if single else distance


def image_metrics(
  predictions, targets, lpips_weights: LpipsWeights | LpipsUnavailable | None = None
) -> dict[str, jax.Array | LpipsUnavailable]:
  """Per-image {"psnr", "ssim"} (B,) arrays, and "lpips" when `lpips_weights` is given.

  Pass `load_lpips()`'s result as it is: `LpipsUnavailable` is carried into
  the dict so reports say why LPIPS is missing.
  """
  metrics = {"psnr": psnr(predictions, targets), "ssim": ssim(predictions, targets)}
  if isinstance(lpips_weights, LpipsUnavailable):
    metrics["lpips"] = lpips_weights
  elif lpips_weights is not None:
    metrics["lpips"] = lpips(predictions, targets, lpips_weights)
  return metrics


# ---------------------------------------------------------------------------
# Mask-ratio buckets

#: Bucket edges of the mask-to-face area ratio (3DFaceFill's 10-50% in steps of 10).
MASK_RATIO_EDGES = (0.1, 0.2, 0.3, 0.4, 0.5)


def mask_to_face_ratio(masks, face_masks=None) -> np.ndarray:
  """Fraction of each face that is masked: (B, H, W) x2 -> (B,) in [0, 1].

  `masks` are 1 where pixels are missing, `face_masks` 1 on the face (the
  whole image when None); float masks count as set above 0.5.
  """
  masks = np.asarray(masks) > 0.5
  if masks.ndim != 3:
    raise ValueError(f"masks must have shape (B, H, W), got {masks.shape}")
  face = np.ones_like(masks) if face_masks is None else np.asarray(face_masks) > 0.5
  if face.shape != masks.shape:
    raise ValueError(f"face_masks must have the shape of masks {masks.shape}, got {face.shape}")
  area = face.sum(axis=(1, 2))
  if np.any(area == 0):
    raise ValueError(f"face_masks: images {np.flatnonzero(area == 0).tolist()} have no face")
  return (masks & face).sum(axis=(1, 2)) / area


def _bucket_name(low: float, high: float) -> str:
  return f"{round(100 * low):d}-{round(100 * high):d}%"


@dataclasses.dataclass(frozen=True)
class MaskRatioReport:
  """Mean metrics overall ("all") and per mask-ratio bucket.

  Attributes:
    buckets: row names, "all" then "10-20%", "20-30%", ...
    counts: bucket -> number of images.
    means: bucket -> metric -> mean (nan for an empty bucket).
    unavailable: metric -> why it could not be computed (e.g. LPIPS without weights).
    intervals: bucket -> metric -> (low, high), the 95% percentile bootstrap interval of the
      mean over faces (`jaxface.metrics.spread.bootstrap_interval`); NaN with fewer than two
      faces or a non-finite value (a perfect fill's PSNR).
  """

  buckets: tuple[str, ...]
  counts: dict[str, int]
  means: dict[str, dict[str, float]]
  unavailable: dict[str, str]
  intervals: dict[str, dict[str, tuple[float, float]]] = dataclasses.field(default_factory=dict)

  def scalars(self) -> dict[str, float]:
    """Flat {"psnr/20-30%": ..., "psnr_ci_low/20-30%": ..., "count/20-30%": ...} for metric
    writers."""
    out = {}
    for bucket in self.buckets:
      out[f"count/{bucket}"] = float(self.counts[bucket])
      out.update({f"{name}/{bucket}": v for name, v in self.means[bucket].items()})
      for name, (low, high) in self.intervals.get(bucket, {}).items():
        out[f"{name}_ci_low/{bucket}"], out[f"{name}_ci_high/{bucket}"] = low, high
    return out

  def cell(self, bucket: str, name: str, digits: int = 4) -> str:
    """ "mean ± half the interval's width", or the mean alone when there is no interval."""
    mean = self.means[bucket][name]
    low, high = self.intervals.get(bucket, {}).get(name, (math.nan, math.nan))
    if not math.isfinite(high - low):
      return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(high - low) / 2:.{digits}f}"

  def table(self, digits: int = 4) -> str:
    """A Markdown table, one row per bucket; unavailable metrics read "n/a" with the reason."""
    names = [*self.means[self.buckets[0]], *self.unavailable]
    lines = [
      "| mask ratio | count | " + " | ".join(names) + " |",
      "|---|---:|" + "---:|" * len(names),
    ]
    for bucket in self.buckets:
      cells = [
        "n/a" if name in self.unavailable else self.cell(bucket, name, digits) for name in names
      ]
      lines.append(f"| {bucket} | {self.counts[bucket]} | " + " | ".join(cells) + " |")
    lines += [f"\n{name}: {reason}" for name, reason in self.unavailable.items()]
    return "\n".join(lines)


def metrics_by_mask_ratio(
  metrics: Mapping[str, object],
  mask_ratios,
  edges: Sequence[float] = MASK_RATIO_EDGES,
  faces=None,
) -> MaskRatioReport:
  """Means of per-image metrics over all images and per mask-to-face ratio bucket, each with
  the 95% bootstrap interval of the mean over faces.

  Args:
    metrics: name -> (N,) per-image values, or `LpipsUnavailable` (reported
      as unavailable with its reason).
    mask_ratios: (N,) mask-to-face area ratios in [0, 1] (`mask_to_face_ratio`).
    edges: increasing bucket edges; bucket i is [edges[i], edges[i+1]), the
      last one closed so a ratio of exactly edges[-1] counts. Images outside
      every bucket still count in "all".
    faces: (N,) which face each image is (default: every image its own). The
      faces are what the bootstrap resamples: an evaluation that masks each
      face once per bucket has several images per face in "all", which are
      not independent; each face's images are averaged first.

  Means are plain means: a perfect completion's PSNR (+inf) makes its
  bucket's mean +inf.
  """
  ratios = np.asarray(mask_ratios, np.float64)
  if ratios.ndim != 1:
    raise ValueError(f"mask_ratios must have shape (N,), got {ratios.shape}")
  if np.any((ratios < 0) | (ratios > 1)) or not np.all(np.isfinite(ratios)):
    raise ValueError("mask_ratios must lie in [0, 1]")
  edges = [float(e) for e in edges]
  if len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges)):
    raise ValueError(f"edges must be at least two increasing values, got {edges}")

  values, unavailable = {}, {}
  for name, value in metrics.items():
    if isinstance(value, LpipsUnavailable):
      unavailable[name] = value.reason
      continue
    array = np.asarray(value, np.float64)
    if array.shape != ratios.shape:
      raise ValueError(f"metrics[{name!r}] must have shape {ratios.shape}, got {array.shape}")
    values[name] = array

  selections = {"all": np.ones(ratios.shape, bool)}
  for i, (low, high) in enumerate(itertools.pairwise(edges)):
    upper = ratios <= high if i == len(edges) - 2 else ratios < high
    selections[_bucket_name(low, high)] = (ratios >= low) & upper

  faces = np.arange(len(ratios)) if faces is None else np.asarray(faces)
  if faces.shape != ratios.shape:
    raise ValueError(f"faces must have shape {ratios.shape}, got {faces.shape}")

  counts, means, intervals = {}, {}, {}
  for bucket, chosen in selections.items():
    counts[bucket] = int(chosen.sum())
    means[bucket] = {
      name: float(array[chosen].mean()) if counts[bucket] else math.nan
      for name, array in values.items()
    }
    intervals[bucket] = {
      name: _face_interval(array[chosen], faces[chosen]) for name, array in values.items()
    }
  return MaskRatioReport(tuple(selections), counts, means, unavailable, intervals)


def _face_interval(values: np.ndarray, faces: np.ndarray) -> tuple[float, float]:
  """The bootstrap interval of the mean over faces (each face's values averaged first)."""
  if not np.all(np.isfinite(values)):
    return math.nan, math.nan
  face_ids, index = np.unique(faces, return_inverse=True)
  if len(face_ids) < 2:
    return math.nan, math.nan
  per_face = np.bincount(index, weights=values) / np.bincount(index)
  interval = spread.bootstrap_interval(per_face)
  return interval.low, interval.high
