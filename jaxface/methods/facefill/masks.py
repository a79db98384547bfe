"""Random face masks for 3DFaceFill: training occluders and the fixed evaluation set.

3DFaceFill inpaints only the face (supplement sec. 4.3: "we restrict the
image masks to lie on the face region"), so every mask here is a rectangle
intersected with a face region `face (H, W)`: whatever the caller counts as
face; the public code uses 1 - background of its segmenter (face plus hair
and occluders). Convention: mask True = pixel hidden from the network.

Two generators:
- `random_rectangle_mask` reproduces the public code's sampler: one
  axis-aligned rectangle whose top-left corner lies in [1/4, 1/2) of the
  image height/width and whose height/width lie in [1/4, 3/4) (train) or
  [1/3, 3/4) (test) of it, clipped to the image, then intersected with the
  face. These are the ranges of its train.py / test.py; they suit images
  aligned like CelebA-HQ (face centred), which jaxface's synthetic faces are.
  The mask-to-face ratio is whatever falls out (roughly 0-80%).
- `bucket_mask` / `evaluation_masks` give masks whose mask-to-face ratio lies
  in a requested range, for reporting metrics per ratio bucket (10-20%, ...,
  40-50%) as the paper's PSNR/SSIM/LPIPS-vs-mask-ratio plots do. The public
  code has no such generator; ours centres a rectangle on a random face pixel
  with a random aspect ratio in [1/2, 2] and bisects its size: growing a
  rectangle about a fixed centre only adds pixels, so the ratio is monotone
  in the size and the sizes that land in the bucket form an interval, from
  which one is drawn uniformly. A summed-area table makes each ratio O(1).

Everything in jax is jit-safe and vmaps over a batch; `evaluation_masks`
draws its random numbers with numpy from a seed, so the evaluation set does
not change with jax's PRNG implementation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# Fractions of the image size, [low, high) as torch.randint(size * low, size * high).
ORIGIN_RANGE = (1 / 4, 1 / 2)
SIZE_RANGES = {"train": (1 / 4, 3 / 4), "test": (1 / 3, 3 / 4)}
# Mask-to-face ratio buckets of the evaluation set, [low, high).
EVAL_BUCKETS = ((0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5))

_MIN_SIZE = 8
_BISECTION_STEPS = 40


def _check_face(face, name: str = "face") -> None:
  if face.ndim not in (2, 3):
    raise ValueError(f"{name} must have shape (H, W) or (B, H, W), got {face.shape}")
  height, width = face.shape[-2:]
  if min(height, width) < _MIN_SIZE:
    raise ValueError(f"{name} must be at least {_MIN_SIZE}x{_MIN_SIZE} pixels, got {face.shape}")


def rectangle_ranges(size: int, split: str = "train") -> tuple[int, int, int, int]:
  """Integer [low, high) ranges (origin_low, origin_high, extent_low, extent_high) along an axis.

  `size` is the image height (for rows) or width (for columns); `split`
  picks the public code's train or test extent range.
  """
  if split not in SIZE_RANGES:
    raise ValueError(f"split must be one of {sorted(SIZE_RANGES)}, got {split!r}")
  low, high = SIZE_RANGES[split]
  return (
    int(size * ORIGIN_RANGE[0]),
    int(size * ORIGIN_RANGE[1]),
    int(size * low),
    int(size * high),
  )


def rectangle(top, left, height, width, shape: tuple[int, int]) -> jax.Array:
  """(H, W) bool, True on rows [top, top + height) and columns [left, left + width).

  The arguments may be traced scalars; parts outside the image are dropped.
  """
  rows = jnp.arange(shape[0])[:, None]  # (H, 1)
  cols = jnp.arange(shape[1])[None, :]  # (1, W)
  return (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)


def mask_ratio(mask, face) -> jax.Array:
  """Fraction of face pixels that are masked: |mask ∩ face| / |face| over the last two axes.

  mask, face: (..., H, W) bool (or 0/1). A face with no pixels gives 0.
  Returns (...) float32.
  """
  mask, face = jnp.asarray(mask, bool), jnp.asarray(face, bool)
  if mask.shape != face.shape or mask.ndim < 2:
    raise ValueError(f"mask {mask.shape} and face {face.shape} must share shape (..., H, W)")
  covered = jnp.sum(mask & face, axis=(-2, -1)).astype(jnp.float32)
  area = jnp.sum(face, axis=(-2, -1)).astype(jnp.float32)
  return covered / jnp.maximum(area, 1.0)


# --------------------------------------------------------------------------- public-code sampler


def _random_rectangle(rng: jax.Array, face: jax.Array, split: str) -> jax.Array:
  height, width = face.shape
  row_range, col_range = rectangle_ranges(height, split), rectangle_ranges(width, split)
  keys = jax.random.split(rng, 4)
  top = jax.random.randint(keys[0], (), row_range[0], row_range[1])
  left = jax.random.randint(keys[1], (), col_range[0], col_range[1])
  extent_h = jax.random.randint(keys[2], (), row_range[2], row_range[3])
  extent_w = jax.random.randint(keys[3], (), col_range[2], col_range[3])
  return rectangle(top, left, extent_h, extent_w, (height, width)) & face


def random_rectangle_mask(rng: jax.Array, face, *, split: str = "train") -> jax.Array:
  """The public code's random occluder: one rectangle (see module docstring) ∩ face.

  Args:
    rng: PRNG key (one for the whole batch; it is split per sample).
    face: (H, W) or (B, H, W) bool face region.
    split: "train" (extent [1/4, 3/4) of the image) or "test" ([1/3, 3/4)).

  Returns:
    mask of face's shape, bool, True on hidden pixels (always inside face).
  """
  face = jnp.asarray(face, bool)
  _check_face(face)
  rectangle_ranges(face.shape[-1], split)  # validates split before tracing
  if face.ndim == 2:
    return _random_rectangle(rng, face, split)
  keys = jax.random.split(rng, face.shape[0])
  return jax.vmap(lambda key, f: _random_rectangle(key, f, split))(keys, face)


def random_rectangle_mask_numpy(
  rng: np.random.Generator, face: np.ndarray, *, split: str = "train"
) -> np.ndarray:
  """Host-side twin of `random_rectangle_mask` for numpy input pipelines: (H, W) bool."""
  face = np.asarray(face, bool)
  if face.ndim != 2:
    raise ValueError(f"face must have shape (H, W), got {face.shape}")
  _check_face(face)
  height, width = face.shape
  row_range, col_range = rectangle_ranges(height, split), rectangle_ranges(width, split)
  top = rng.integers(row_range[0], row_range[1])
  left = rng.integers(col_range[0], col_range[1])
  extent_h = rng.integers(row_range[2], row_range[3])
  extent_w = rng.integers(col_range[2], col_range[3])
  mask = np.zeros_like(face)
  mask[top : top + extent_h, left : left + extent_w] = True
  return mask & face


# --------------------------------------------------------------------------- ratio buckets


def _candidate(face, table, area, low, high, uniforms):
  """One centred-rectangle candidate from 3 uniforms: (bounds (4,) int32, ratio, ok)."""
  height, width = face.shape
  flat = jnp.cumsum(face.reshape(-1).astype(jnp.int32))  # (H*W,)
  pick = jnp.clip(jnp.floor(uniforms[0] * area), 0, jnp.maximum(area - 1, 0))
  index = jnp.argmax(flat > pick)  # the pick-th face pixel in raster order
  centre_y = (index // width).astype(jnp.float32) + 0.5
  centre_x = (index % width).astype(jnp.float32) + 0.5
  stretch = jnp.exp(
    (2.0 * uniforms[1] - 1.0) * 0.5 * jnp.log(2.0)
  )  # sqrt(aspect), aspect in [1/2, 2]

  def bounds(size):
    # Pixels whose centres lie within the half-extent: nested as size grows.
    half_h, half_w = size * stretch, size / stretch
    top = jnp.clip(jnp.ceil(centre_y - half_h - 0.5), 0, height - 1).astype(jnp.int32)
    bottom = jnp.clip(jnp.floor(centre_y + half_h - 0.5), 0, height - 1).astype(jnp.int32)
    left = jnp.clip(jnp.ceil(centre_x - half_w - 0.5), 0, width - 1).astype(jnp.int32)
    right = jnp.clip(jnp.floor(centre_x + half_w - 0.5), 0, width - 1).astype(jnp.int32)
    return top, bottom, left, right  # inclusive

  def ratio(size):
    top, bottom, left, right = bounds(size)
    covered = (
      table[bottom + 1, right + 1]
      - table[top, right + 1]
      - table[bottom + 1, left]
      + table[top, left]
    )
    return covered / jnp.maximum(area, 1.0)

  largest = 2.0 * (height + width)  # covers the image for any aspect in [1/2, 2]

  def smallest_reaching_low(_, interval):
    a, b = interval
    mid = 0.5 * (a + b)
    return jnp.where(ratio(mid) >= low, jnp.stack([a, mid]), jnp.stack([mid, b]))

  def largest_below_high(_, interval):
    a, b = interval
    mid = 0.5 * (a + b)
    return jnp.where(ratio(mid) < high, jnp.stack([mid, b]), jnp.stack([a, mid]))

  start = jnp.array([0.0, largest], jnp.float32)
  size_low = jax.lax.fori_loop(0, _BISECTION_STEPS, smallest_reaching_low, start)[1]
  size_high = jax.lax.fori_loop(0, _BISECTION_STEPS, largest_below_high, start)[0]
  size = size_low + uniforms[2] * jnp.maximum(size_high - size_low, 0.0)
  value = ratio(size)
  ok = (value >= low) & (value < high) & (area > 0)
  return jnp.stack(bounds(size)), value, ok


def _bucket_from_uniforms(face, low, high, uniforms):
  """(mask (H, W) bool, ratio, ok) from (K, 3) uniforms: the first candidate that fits."""
  face = jnp.asarray(face, bool)
  height, width = face.shape
  table = jnp.pad(jnp.cumsum(jnp.cumsum(face.astype(jnp.float32), 0), 1), ((1, 0), (1, 0)))
  area = jnp.sum(face).astype(jnp.float32)
  low, high = jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32)
  bounds, ratios, oks = jax.vmap(lambda u: _candidate(face, table, area, low, high, u))(uniforms)
  chosen = jnp.argmax(oks)  # first fitting candidate (0 when none fits)
  top, bottom, left, right = bounds[chosen]
  mask = rectangle(top, left, bottom - top + 1, right - left + 1, (height, width)) & face
  return mask, ratios[chosen], oks[chosen]


def bucket_mask(
  rng: jax.Array, face, low, high, *, num_candidates: int = 16
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """A rectangle ∩ face whose mask-to-face ratio lies in [low, high) (module docstring).

  Draws `num_candidates` (centre, aspect) pairs and keeps the first whose
  size interval for the bucket is not empty (it can be only when one row or
  column of face pixels spans the whole bucket, i.e. for tiny faces).

  Args:
    rng: PRNG key (split per sample for a batch).
    face: (H, W) or (B, H, W) bool face region.
    low, high: the ratio bucket, 0 <= low < high <= 1 (may be traced).
    num_candidates: candidates tried per mask.

  Returns:
    mask (face's shape) bool, ratio (...) float32 (= mask_ratio(mask, face)),
    ok (...) bool: False when no candidate fitted (the mask is then not in
    the bucket and should be discarded).
  """
  face = jnp.asarray(face, bool)
  _check_face(face)
  if num_candidates < 1:
    raise ValueError(f"num_candidates must be >= 1, got {num_candidates}")
  if isinstance(low, int | float) and isinstance(high, int | float) and not 0 <= low < high <= 1:
    raise ValueError(
      f"the bucket [low, high) must satisfy 0 <= low < high <= 1, got [{low}, {high})"
    )
  if face.ndim == 2:
    uniforms = jax.random.uniform(rng, (num_candidates, 3))
    return _bucket_from_uniforms(face, low, high, uniforms)
  uniforms = jax.random.uniform(rng, (face.shape[0], num_candidates, 3))
  return jax.vmap(lambda f, u: _bucket_from_uniforms(f, low, high, u))(face, uniforms)


@jax.jit
def _bucket_set(faces, lows, highs, uniforms):
  # faces (N, H, W), lows/highs (K,), uniforms (N, K, C, 3) -> masks (N, K, H, W), ...
  per_bucket = jax.vmap(_bucket_from_uniforms, in_axes=(None, 0, 0, 0))
  return jax.vmap(per_bucket, in_axes=(0, None, None, 0))(faces, lows, highs, uniforms)


def evaluation_masks(
  faces,
  *,
  buckets: tuple[tuple[float, float], ...] = EVAL_BUCKETS,
  seed: int = 0,
  num_candidates: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
  """The fixed evaluation masks: one mask per face and ratio bucket, reproducible from `seed`.

  Args:
    faces: (N, H, W) bool face regions of the evaluation images.
    buckets: K ratio ranges [low, high); default 10-20%, 20-30%, 30-40%, 40-50%.
    seed: numpy seed of every random draw (same seed, same faces: same masks).
    num_candidates: candidates tried per mask (see `bucket_mask`).

  Returns:
    masks (N, K, H, W) bool, True on hidden pixels, inside the face;
    ratios (N, K) float32, each inside its bucket.

  Raises:
    ValueError: for bad arguments, or naming the face and bucket when no
      mask fits (an empty or few-pixel face).
  """
  faces = np.asarray(faces, bool)
  if faces.ndim != 3:
    raise ValueError(f"faces must have shape (N, H, W), got {faces.shape}")
  _check_face(faces, "faces")
  buckets = tuple((float(low), float(high)) for low, high in buckets)
  if not buckets:
    raise ValueError("buckets must name at least one [low, high) range")
  for low, high in buckets:
    if not 0 <= low < high <= 1:
      raise ValueError(f"bucket [{low}, {high}) must satisfy 0 <= low < high <= 1")
  if num_candidates < 1:
    raise ValueError(f"num_candidates must be >= 1, got {num_candidates}")
  uniforms = np.random.default_rng(seed).uniform(
    size=(faces.shape[0], len(buckets), num_candidates, 3)
  )
  lows = np.array([low for low, _ in buckets], np.float32)
  highs = np.array([high for _, high in buckets], np.float32)
  masks, ratios, oks = _bucket_set(
    jnp.asarray(faces), jnp.asarray(lows), jnp.asarray(highs), jnp.asarray(uniforms, jnp.float32)
  )
  oks = np.asarray(oks)
  if not oks.all():
    face_index, bucket_index = np.argwhere(~oks)[0]
    raise ValueError(
      f"no mask of face {face_index} ({int(faces[face_index].sum())} face pixels) fits bucket "
      f"{buckets[bucket_index]} in {num_candidates} candidates; the face region is too small"
    )
  return np.asarray(masks), np.asarray(ratios, np.float32)
