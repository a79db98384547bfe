"""The method's data: pairs of views for training, labelled real-like faces for evaluation.

Training examples (`PairDataset`, random access, deterministic) hold one
ordered pair of views of a synthetic face and, unless the run is synthetic
only (`config.multiview.use_real = False`), one ordered pair of rig cameras
of a real-like face. Real-like pairs carry only what a Multi-PIE pair has:
the images, detector landmarks and the identity pseudo-label.

| field | shape | meaning |
|---|---|---|
| `syn_image` | (2, H, W, 3) float32 | the two views in [0, 1] |
| `syn_mask` | (2, H, W) bool | the face region |
| `syn_depth` | (2, H, W) float32 | ground-truth camera depth |
| `syn_distance` | (2,) float32 | xi_V of each view (eq. 7) |
| `syn_landmarks` | (2, 68, 2) float32 | exact 2D landmarks, pixels |
| `syn_identity`, `syn_expression` | (Ki,), (Ke,) | the fitted modes' true coefficients |
| `real_image` | (2, H, W, 3) float32 | a real-like pair |
| `real_landmarks` | (2, 68, 2) float32 | noisy detector landmarks |
| `real_identity` | (Ki,) float32 | the identity pseudo-label |

The evaluation data (`EvalData`) are the "test" faces (9 rig views each,
emotion labels) and the "florence" faces (20 poses each) of
`jaxface.data.multiview`, read whole by `evaluation`.
"""

from __future__ import annotations

import functools
import itertools

import ml_collections
import numpy as np

from jaxface.data.builders import load_synthetic
from jaxface.data.multiview import num_views
from jaxface.errors import ConfigError
from jaxface.morphable import load as load_model


def ordered_pairs(count: int) -> np.ndarray:
  """(count * (count - 1), 2) every ordered pair of distinct view indices."""
  return np.asarray(list(itertools.permutations(range(count), 2)), np.int32)


def _source(config, kind: str, num: int, split: str):
  data, mv = config.data, config.multiview
  settings = dict(
    face_kind=kind, image_size=int(data.image_size), fit_identity=int(mv.num_identity),
    fit_expression=int(mv.num_expression),
  )  # fmt: skip
  if kind != "synthetic":  # only real-like faces have these; synthetic caches stay shared
    settings.update(
      detail_strength=float(data.detail_strength),
      specular_strength=float(data.specular_strength),
      landmark_noise=float(data.landmark_noise),
    )
  num_train, num_eval = (num, 0) if split == "train" else (0, num)
  return load_synthetic(
    "face_views", model=str(data.model), num_train=num_train, num_eval=num_eval,
    seed=int(data.seed), data_dir=str(data.data_dir) or None, split=split, **settings,
  )  # fmt: skip


class PairDataset:
  """Ordered view pairs of synthetic faces (and of real-like faces): see the module docstring."""

  def __init__(self, synthetic, real, num_identity: int, num_expression: int):
    self.synthetic, self.real = synthetic, real
    self.num_identity, self.num_expression = num_identity, num_expression
    self.synthetic_pairs = ordered_pairs(num_views("synthetic"))
    self.real_pairs = ordered_pairs(num_views("real"))
    if len(synthetic) == 0 or (real is not None and len(real) == 0):
      raise ConfigError("config.data.num_synthetic and num_real must be positive")
    self.image_size = int(np.shape(synthetic[0]["image"])[1])

  def __len__(self) -> int:
    return len(self.synthetic) * len(self.synthetic_pairs)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    index = int(index)
    face, pair = divmod(index, len(self.synthetic_pairs))
    views = self.synthetic_pairs[pair]
    example = self.synthetic[face]
    image = lambda e, v: np.asarray(e["image"], np.float32)[v] / 255.0
    out = {
      "syn_image": image(example, views),
      "syn_mask": np.asarray(example["mask"])[views] > 0,
      "syn_depth": np.asarray(example["depth"], np.float32)[views],
      "syn_distance": -np.asarray(example["translation"], np.float32)[views, 2],
      "syn_landmarks": np.asarray(example["landmarks"], np.float32)[views],
      "syn_identity": np.asarray(example["identity"], np.float32)[: self.num_identity],
      "syn_expression": np.asarray(example["expression"], np.float32)[: self.num_expression],
    }
    if self.real is not None:
      # A fixed odd stride walks every real-like pair once per len(real) * 72 examples.
      real_index = (index * 7919) % (len(self.real) * len(self.real_pairs))
      face, pair = divmod(real_index, len(self.real_pairs))
      views, example = self.real_pairs[pair], self.real[face]
      out.update(
        real_image=image(example, views),
        real_landmarks=np.asarray(example["landmarks"], np.float32)[views],
        real_identity=np.asarray(example["identity_estimate"], np.float32),
      )
    return out


class EvalData:
  """The labelled real-like test faces and the Florence-style faces (random-access sources)."""

  def __init__(self, test, florence):
    self.test, self.florence = test, florence

  def __len__(self) -> int:
    return len(self.test)

  def __getitem__(self, index: int) -> dict:
    return self.test[int(index)]


def check_data_config(config: ml_collections.ConfigDict) -> None:
  data = config.data
  size = data.image_size
  factor = 2 ** (
    max(len(config.multiview.depth_widths), len(config.multiview.suitability_widths)) - 1
  )
  if size < 16 or size % factor:
    raise ConfigError(
      f"config.data.image_size={size} must be a multiple of {factor} (the U-Nets' downsampling)"
    )
  for field in ("num_synthetic", "num_test"):
    if data[field] < 1:
      raise ConfigError(f"config.data.{field} must be positive, got {data[field]}")
  for field in ("num_real", "num_florence"):
    if data[field] < 0:
      raise ConfigError(f"config.data.{field} must be >= 0, got {data[field]}")
  if config.multiview.use_real and data.num_real < 1:
    raise ConfigError("config.multiview.use_real needs config.data.num_real >= 1")


@functools.lru_cache(maxsize=4)
def _cached(config: ml_collections.FrozenConfigDict, split: str):
  mv = config.multiview
  model = load_model(str(config.data.model))
  num_identity, num_expression = int(mv.num_identity), int(mv.num_expression)
  if not 1 <= num_identity <= model.num_identity:
    raise ConfigError(
      f"config.multiview.num_identity={num_identity} must be in [1, {model.num_identity}] "
      f"(the identity modes of model {model.name!r})"
    )
  if not 0 <= num_expression <= model.num_expression:
    raise ConfigError(
      f"config.multiview.num_expression={num_expression} must be in [0, "
      f"{model.num_expression}] (the expression modes of model {model.name!r})"
    )
  if split == "train":
    synthetic = _source(config, "synthetic", int(config.data.num_synthetic), "train")
    real = _source(config, "real", int(config.data.num_real), "train") if mv.use_real else None
    return PairDataset(synthetic, real, num_identity, num_expression)
  test = _source(config, "test", int(config.data.num_test), "eval")
  florence = (
    _source(config, "florence", int(config.data.num_florence), "eval")
    if config.data.num_florence > 0
    else None
  )
  return EvalData(test, florence)


def create_dataset(config: ml_collections.FrozenConfigDict, split: str):
  """The training pairs ("train") or the evaluation faces ("eval"), prepared on first use."""
  if split not in ("train", "eval"):
    raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
  check_data_config(config)
  # Only the fields that shape the data key the cache (a FrozenConfigDict is hashable).
  key = ml_collections.FrozenConfigDict({
    "data": config.data.to_dict(),
    "multiview": {k: config.multiview[k] for k in ("num_identity", "num_expression", "use_real",
                                                   "depth_widths", "suitability_widths")},
  })  # fmt: skip
  return _cached(key, split)
