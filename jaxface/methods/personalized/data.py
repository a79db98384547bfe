"""The method's data: a user's frames for training, held-out users' whole sequences for evaluation.

Both come from the synthetic `sequences` dataset (`jaxface.data.synthetic.
sequence_example`): one person per sequence, with smoothly varying
expression, pose and light, rendered with the person's own rig
(`jaxface.data.personal`: identity-specific blendshape corrections and
expression-dependent albedo) at `config.data.personal_strength`.
Evaluation sequences come from a disjoint index range, so their people are
never seen in training.

A training example (`UserFrames[i]`, deterministic) is K frames of one user,
drawn without replacement from the user's sequence:

| field | shape | meaning |
|---|---|---|
| `image` | (K, H, W, 3) float32 | the frames in [0, 1] |
| `face_mask` | (K, H, W) bool | the face pixels (a face parser's output on real video) |
| `landmarks` | (K, 68, 2) float32 | 2D landmarks in pixels (a detector's) |

Only what a video gives: the ground truth stays in the evaluation data.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from jaxface.data.builders import load_synthetic
from jaxface.data.synthetic import example_rng
from jaxface.errors import ConfigError


def sequence_source(config, split: str):
  """The random-access `sequences` source of a split ("train" or "eval")."""
  data = config.data
  count = int(data.num_train if split == "train" else data.num_eval)
  return load_synthetic(
    "sequences", model=str(data.model), num_train=count if split == "train" else 0,
    num_eval=count if split == "eval" else 0, seed=int(data.seed),
    data_dir=str(data.data_dir) or None, split=split, image_size=int(data.image_size),
    num_frames=int(data.num_frames), personal_strength=float(data.personal_strength),
    expression_amplitude=float(data.expression_amplitude),
  )  # fmt: skip


def frames_of(example: dict, chosen: np.ndarray) -> dict[str, np.ndarray]:
  """The training fields (module docstring) of frames `chosen` of one sequence example."""
  return {
    "image": np.asarray(example["image"], np.float32)[chosen] / 255.0,
    "face_mask": np.asarray(example["segmentation"])[chosen] > 0,
    "landmarks": np.asarray(example["landmarks"], np.float32)[chosen],
  }


class UserFrames:
  """K frames of one training user per example (module docstring); `draws` examples per user."""

  def __init__(self, sequences, frames_per_user: int, draws: int, seed: int):
    if len(sequences) == 0:
      raise ConfigError("config.data.num_train must be positive")
    self.sequences, self.frames_per_user, self.draws, self.seed = (
      sequences, int(frames_per_user), int(draws), int(seed)
    )  # fmt: skip
    first = sequences[0]
    self.num_frames = int(np.shape(first["image"])[0])
    self.image_size = int(np.shape(first["image"])[1])
    if not 1 <= self.frames_per_user <= self.num_frames:
      raise ConfigError(
        f"config.personalized.frames_per_user={frames_per_user} must be in 1..{self.num_frames} "
        "(config.data.num_frames)"
      )

  def __len__(self) -> int:
    return len(self.sequences) * self.draws

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    index = int(index)
    user = index % len(self.sequences)
    chosen = example_rng(self.seed, index, 9).choice(
      self.num_frames, self.frames_per_user, replace=False
    )
    return frames_of(self.sequences[user], np.sort(chosen))


def check_data_config(config: ml_collections.ConfigDict) -> None:
  """The `config.data` fields the method relies on; ConfigError naming the field."""
  data = config.data
  for field in ("image_size", "num_frames", "num_train", "num_eval"):
    if data[field] < 1:
      raise ConfigError(f"config.data.{field}={data[field]} must be positive")
  if data.image_size % 32:
    raise ConfigError(
      f"config.data.image_size={data.image_size} must be a multiple of 32 (the encoder's stride)"
    )
  if not 0 < data.expression_amplitude <= 1:
    raise ConfigError(
      f"config.data.expression_amplitude must be in (0, 1], got {data.expression_amplitude}"
    )
  if data.personal_strength < 0:
    raise ConfigError(f"config.data.personal_strength must be >= 0, got {data.personal_strength}")


def create_dataset(config: ml_collections.ConfigDict, split: str):
  """Protocol: "train" -> `UserFrames`; "eval" -> the held-out users' whole sequences."""
  check_data_config(config)
  if split == "train":
    pc = config.personalized
    return UserFrames(
      sequence_source(config, "train"), pc.frames_per_user, pc.draws_per_user, config.data.seed
    )
  if split == "eval":
    return sequence_source(config, "eval")
  raise ValueError(f"unknown split {split!r}; known: 'train', 'eval'")
