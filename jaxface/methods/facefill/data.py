"""3DFaceFill's training and evaluation data: synthetic face images with every stage's targets.

`FaceFillDataset` wraps a random-access source of `face_image_example`s
(jaxface's synthetic dataset (b), or a user's own images converted to the
same fields) and turns each example into what the method's steps read:

| field | shape | meaning |
|---|---|---|
| `image` | (H, W, 3) float32 | the photo in [0, 1] (occluders included) |
| `segmentation` | (H, W) int32 | `SEGMENT_CLASSES` ids: 0 face, 1 occlusion, 2 background |
| `landmarks` | (68, 2) float32 | iBUG-68 landmarks in pixels (centres at +0.5) |
| `identity`, `expression` | (Ki,), (Ke,) | the first Ki / Ke ground-truth coefficients |
| `scale`, `translation`, `rotation` | (), (2,), (4,) | weak-perspective pose targets |
| `albedo` | (Hu, Wu, 3) float32 | the ground-truth UV albedo at the decoder's UV size |
| `sh` | (27,) float32 | the ground-truth SH illumination (the encoder's convention) |

The dataset's labels (0 background, 1 face, 2 occluder) are reordered to the
segmenter's channel order once, here. Pose targets (`targets.pose_targets`) and albedo are computed
with the *full* model (all identity/expression modes): truncating the
coefficients the encoder predicts must not move the targets.
"""

from __future__ import annotations

import functools

import jax
import ml_collections
import numpy as np

from jaxface.data.builders import load_synthetic
from jaxface.errors import ConfigError
from jaxface.methods.facefill import render, targets
from jaxface.methods.facefill.model import SEGMENT_CLASSES
from jaxface.morphable import load as load_model
from jaxface.morphable.model import MorphableModel

#: The synthetic dataset's segmentation ids (0 background, 1 face, 2 occluder) -> SEGMENT_CLASSES.
DATASET_TO_SEGMENT = np.array(
  [SEGMENT_CLASSES.index("background"), SEGMENT_CLASSES.index("face"),
   SEGMENT_CLASSES.index("occlusion")], np.int32,
)  # fmt: skip
FACE, OCCLUSION, BACKGROUND = (
  SEGMENT_CLASSES.index(n) for n in ("face", "occlusion", "background")
)
_REQUIRED = (
  "image", "segmentation", "landmarks", "identity", "expression", "albedo_coefficients", "pose",
  "translation", "focal", "sh",
)  # fmt: skip


class FaceFillDataset:
  """Face images with the targets of 3DFaceFill's stages (random access, deterministic).

  Attributes:
    model: the morphable model the images were rendered with (full bases).
    num_identity, num_expression: coefficients kept as targets (the encoder's Ki, Ke;
      -1 given to the constructor: all of the model's).
    uv_size: (Hu, Wu) of the albedo target.
    image_size: the square images' side in pixels.
  """

  def __init__(
    self,
    source,
    model: MorphableModel,
    num_identity: int,
    num_expression: int,
    uv_size: tuple[int, int],
    name: str = "",
  ):
    self.source = source
    self.model = model
    self.name = name
    if len(source) == 0:
      raise ValueError(f"dataset {name!r} is empty")
    first = source[0]
    missing = [key for key in _REQUIRED if key not in first]
    if missing:
      raise ValueError(f"dataset {name!r} examples lack the fields {missing}; have {sorted(first)}")
    # -1: every mode of the model.
    num_identity = model.num_identity if num_identity < 0 else num_identity
    num_expression = model.num_expression if num_expression < 0 else num_expression
    if not 1 <= num_identity <= model.num_identity:
      raise ConfigError(
        f"config.facefill.num_identity={num_identity} must be in [1, {model.num_identity}] "
        f"(the modes of model {model.name!r})"
      )
    if not 0 <= num_expression <= model.num_expression:
      raise ConfigError(
        f"config.facefill.num_expression={num_expression} must be in [0, "
        f"{model.num_expression}] (the modes of model {model.name!r})"
      )
    height, width = np.shape(first["image"])[:2]
    if height != width:
      raise ValueError(f"dataset {name!r}: images must be square, got {height} x {width}")
    self.num_identity, self.num_expression = int(num_identity), int(num_expression)
    self.uv_size = (int(uv_size[0]), int(uv_size[1]))
    self.image_size = int(width)
    # Full-model arrays for the pose targets (UV size is irrelevant to them: keep the lookup small).
    self._arrays = render.face_model_arrays(model, (8, 8))
    self._targets = jax.jit(self._targets_fn)

  def __len__(self) -> int:
    return len(self.source)

  def _targets_fn(self, pose, translation, focal, identity, expression, albedo_coefficients):
    example = {
      "pose": pose, "translation": translation, "focal": focal, "identity": identity,
      "expression": expression,
    }  # fmt: skip
    camera = targets.pose_targets(self._arrays, example, self.image_size)
    albedo = targets.ground_truth_albedo(self.model, albedo_coefficients, self.uv_size)
    return camera.scale, camera.translation, camera.rotation, albedo

  def _convert(self, examples: list[dict]) -> list[dict[str, np.ndarray]]:
    stack = lambda key: np.stack([np.asarray(e[key], np.float32) for e in examples])
    scale, translation, rotation, albedo = jax.device_get(
      self._targets(
        stack("pose"), stack("translation"), stack("focal"), stack("identity"),
        stack("expression"), stack("albedo_coefficients"),
      )
    )  # fmt: skip
    out = []
    for index, example in enumerate(examples):
      labels = DATASET_TO_SEGMENT[np.asarray(example["segmentation"], np.int64)]
      out.append({
        "image": np.asarray(example["image"], np.float32) / 255.0,  # (H, W, 3)
        "segmentation": labels.astype(np.int32),  # (H, W)
        "landmarks": np.asarray(example["landmarks"], np.float32),  # (68, 2) px
        "identity": np.asarray(example["identity"], np.float32)[: self.num_identity],
        "expression": np.asarray(example["expression"], np.float32)[: self.num_expression],
        "scale": np.asarray(scale[index], np.float32),
        "translation": np.asarray(translation[index], np.float32),  # (2,) NDC
        "rotation": np.asarray(rotation[index], np.float32),  # (4,) (w, x, y, z)
        "albedo": np.asarray(albedo[index], np.float32),  # (Hu, Wu, 3)
        "sh": np.asarray(example["sh"], np.float32),  # (27,) SH light, camera frame
      })  # fmt: skip
    return out

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return self._convert([self.source[int(index)]])[0]

  def __getitems__(self, indices) -> list[dict[str, np.ndarray]]:
    if hasattr(self.source, "__getitems__"):
      examples = self.source.__getitems__([int(i) for i in indices])
    else:
      examples = [self.source[int(i)] for i in indices]
    return self._convert(list(examples))

  def read(self, indices=None, chunk: int = 64) -> dict[str, np.ndarray]:
    """Stacked converted fields of `indices` (all by default)."""
    indices = np.arange(len(self)) if indices is None else np.asarray(indices)
    parts = [
      self.__getitems__(indices[start : start + chunk]) for start in range(0, len(indices), chunk)
    ]
    examples = [example for part in parts for example in part]
    return {key: np.stack([e[key] for e in examples]) for key in examples[0]}


def check_image_size(config: ml_collections.ConfigDict) -> None:
  """config.data.image_size: a positive multiple of 32 (the encoder, segmenter and
  discriminator downsample 32x)."""
  size = config.data.image_size
  if size < 32 or size % 32:
    raise ConfigError(
      f"config.data.image_size={size} must be a positive multiple of 32 (the encoder, "
      "segmenter and discriminator downsample 32x)"
    )


@functools.lru_cache(maxsize=8)
def _cached_dataset(
  model: str, num_train: int, num_eval: int, seed: int, data_dir: str, split: str,
  image_size: int, num_identity: int, num_expression: int, uv_size: tuple[int, int],
) -> FaceFillDataset:  # fmt: skip
  source = load_synthetic(
    "face_images", model=model, num_train=num_train, num_eval=num_eval, seed=seed,
    data_dir=data_dir or None, split=split, image_size=image_size,
  )  # fmt: skip
  return FaceFillDataset(
    source, load_model(model), num_identity, num_expression, uv_size,
    name=f"face_images/{model}/{split}",
  )  # fmt: skip


def create_dataset(config: ml_collections.ConfigDict, split: str) -> FaceFillDataset:
  """The synthetic face images of `config.data` (prepared on first use, then cached)."""
  if split not in ("train", "eval"):
    raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
  check_image_size(config)
  data, facefill = config.data, config.facefill
  return _cached_dataset(
    str(data.model), int(data.num_train), int(data.num_eval), int(data.seed),
    str(data.data_dir), split, int(data.image_size), int(facefill.num_identity),
    int(facefill.num_expression), tuple(int(s) for s in facefill.uv_size),
  )  # fmt: skip


__all__ = [
  "BACKGROUND",
  "DATASET_TO_SEGMENT",
  "FACE",
  "OCCLUSION",
  "FaceFillDataset",
  "check_image_size",
  "create_dataset",
]
