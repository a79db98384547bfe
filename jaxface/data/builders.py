"""tfds builders for the synthetic datasets: written once as array_record, read by random access.

No TensorFlow is needed: tfds writes `array_record` files and
`builder.as_data_source(split)` returns a random-access source (`len`,
`[index]`) that `jaxface.training.InputPipeline` batches deterministically.
Datasets are prepared on first use under `data_dir` (a progress bar shows)
and reused afterwards; the builder's config name encodes every setting, so
changing a size or the model prepares a new dataset instead of reusing a
stale one. Examples keep their generation order (no shuffling on write), so
example i of a split is generated from index i.
"""

from __future__ import annotations

import abc
import hashlib
import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import shuffle as tfds_shuffle

from jaxface.data import multiview, synthetic
from jaxface.logs import absl_quiet
from jaxface.morphable.loaders import load as load_model

#: The folder for what jaxface generates (datasets, trained evaluators); default ~/.cache/jaxface.
CACHE_ENV = "JAXFACE_CACHE"
EVAL_INDEX_OFFSET = 10_000_000  # eval examples come from a disjoint index range
_SHUFFLE_BUFFER_BYTES = 64 << 30  # a split up to 64 GB is written without TensorFlow


def cache_dir() -> pathlib.Path:
  """$JAXFACE_CACHE when set, else ~/.cache/jaxface: where jaxface writes what it generates.

  Never $JAXFACE_DATA, the user's (possibly shared, read-only) face-model
  folder, which jaxface only reads.
  """
  root = os.environ.get(CACHE_ENV)
  return pathlib.Path(root).expanduser() if root else pathlib.Path.home() / ".cache" / "jaxface"


def default_data_dir() -> pathlib.Path:
  """Where generated datasets are prepared: <cache_dir()>/datasets."""
  return cache_dir() / "datasets"


def _tag(text: str) -> str:
  return hashlib.sha1(text.encode()).hexdigest()[:8]


class _SyntheticBuilder(tfds.core.GeneratorBasedBuilder):
  """Common plumbing: settings -> config name, train/eval splits by index range."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}  # noqa: RUF012 - tfds reads a class attribute

  def __init__(
    self, *, model_spec: str, num_train: int, num_eval: int, seed: int, settings: dict, **kwargs
  ):
    self.model_spec = str(model_spec)
    self.num_train, self.num_eval, self.seed = int(num_train), int(num_eval), int(seed)
    self.settings = dict(settings)
    settings_text = sorted(self.settings.items())
    description = f"{self.model_spec}|{self.num_train}|{self.num_eval}|{self.seed}|{settings_text}"
    name = f"{pathlib.Path(self.model_spec).stem.replace(':', '-')}_{_tag(description)}"
    super().__init__(config=tfds.core.BuilderConfig(name=name, description=description), **kwargs)

  def model(self):
    return load_model(self.model_spec)

  def _split_generators(self, dl_manager):
    del dl_manager
    splits = {"train": (0, self.num_train), "eval": (EVAL_INDEX_OFFSET, self.num_eval)}
    # A split of 0 examples is left out (an evaluation-only dataset has no "train").
    return {
      name: self._generate_examples(first, count)
      for name, (first, count) in splits.items()
      if count > 0
    }

  def _generate_examples(self, first: int, count: int):
    model = self.model()
    for index in range(first, first + count):
      yield index, self.example(model, index)

  @abc.abstractmethod
  def example(self, model, index: int) -> dict:
    """Example `index` of the dataset (a dict matching the features)."""


class RegisteredMeshes(_SyntheticBuilder):
  """Registered meshes with identity labels and sparse expression labels (dataset (a)).

  With the setting `viseme_fraction` > 0 the examples also hold viseme labels
  (`viseme_label`, `viseme_true`); without it (or with 0) the dataset and its
  config name are those of the viseme-free dataset. Likewise `personal_strength`
  > 0 gives identity-specific expressions and 0 the generic rig's dataset.
  """

  def __init__(self, *, settings: dict, **kwargs):
    settings = dict(settings)
    if not settings.get("viseme_fraction", 0.0) > 0:
      # No viseme factor: the viseme settings change nothing, so they must
      # not change the config name either (prepared datasets stay valid).
      settings.pop("viseme_fraction", None)
      settings.pop("viseme_labelled_fraction", None)
    if not settings.get("personal_strength", 0.0) > 0:
      settings.pop("personal_strength", None)
    super().__init__(settings=settings, **kwargs)

  def _info(self):
    model = self.model()
    scalar = lambda: tfds.features.Tensor(shape=(), dtype=np.int32)
    features = {
      "vertices": tfds.features.Tensor(shape=(model.num_vertices, 3), dtype=np.float32),
      "identity_label": scalar(),
      "expression_label": scalar(),
      "expression_true": scalar(),
      "identity": tfds.features.Tensor(shape=(model.num_identity,), dtype=np.float32),
      "expression": tfds.features.Tensor(shape=(model.num_expression,), dtype=np.float32),
    }
    if self.settings.get("viseme_fraction", 0.0) > 0:
      features.update(viseme_label=scalar(), viseme_true=scalar())
    return tfds.core.DatasetInfo(
      builder=self,
      description=synthetic.__doc__,
      disable_shuffling=True,
      features=tfds.features.FeaturesDict(features),
    )

  def example(self, model, index: int) -> dict:
    return synthetic.registered_mesh_example(model, index, seed=self.seed, **self.settings)


class FaceImages(_SyntheticBuilder):
  """Rendered faces with exact ground truth (dataset (b))."""

  def _info(self):
    model = self.model()
    size = self.settings["image_size"]
    vector = lambda n: tfds.features.Tensor(shape=(n,), dtype=np.float32)
    return tfds.core.DatasetInfo(
      builder=self,
      description=synthetic.__doc__,
      disable_shuffling=True,
      features=tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=(size, size, 3), dtype=np.uint8),
        "segmentation": tfds.features.Tensor(shape=(size, size), dtype=np.uint8),
        "face_mask": tfds.features.Tensor(shape=(size, size), dtype=np.uint8),
        "depth": tfds.features.Tensor(shape=(size, size), dtype=np.float32),
        "normals": tfds.features.Tensor(shape=(size, size, 3), dtype=np.float32),
        "landmarks": tfds.features.Tensor(shape=(68, 2), dtype=np.float32),
        "landmarks_3d": tfds.features.Tensor(shape=(68, 3), dtype=np.float32),
        "identity": vector(model.num_identity),
        "expression": vector(model.num_expression),
        "albedo_coefficients": vector(model.num_albedo),
        "pose": vector(3),
        "translation": vector(3),
        "focal": tfds.features.Tensor(shape=(), dtype=np.float32),
        "sh": vector(27),
      }),
    )  # fmt: skip

  def example(self, model, index: int) -> dict:
    return synthetic.face_image_example(model, index, seed=self.seed, **self.settings)


class MultiViewPairs(_SyntheticBuilder):
  """Two views of one face under one world-fixed light (dataset (c))."""

  def _info(self):
    model = self.model()
    size = self.settings["image_size"]
    tensor = lambda shape, dtype=np.float32: tfds.features.Tensor(shape=shape, dtype=dtype)
    features = {
      "identity": tensor((model.num_identity,)),
      "expression": tensor((model.num_expression,)),
      "albedo_coefficients": tensor((model.num_albedo,)),
      "sh": tensor((27,)),
      "focal": tensor(()),
    }
    for view in (1, 2):
      features.update({
        f"image_{view}": tensor((size, size, 3), np.uint8),
        f"mask_{view}": tensor((size, size), np.uint8),
        f"depth_{view}": tensor((size, size)),
        f"landmarks_{view}": tensor((68, 2)),
        f"pose_{view}": tensor((3,)),
        f"translation_{view}": tensor((3,)),
      })  # fmt: skip
    return tfds.core.DatasetInfo(
      builder=self, description=synthetic.__doc__, disable_shuffling=True,
      features=tfds.features.FeaturesDict(features),
    )  # fmt: skip

  def example(self, model, index: int) -> dict:
    return synthetic.multiview_pair_example(model, index, seed=self.seed, **self.settings)


class Sequences(_SyntheticBuilder):
  """Per-identity frame sequences (dataset (d))."""

  def _info(self):
    model = self.model()
    size, frames = self.settings["image_size"], self.settings["num_frames"]
    tensor = lambda shape, dtype=np.float32: tfds.features.Tensor(shape=shape, dtype=dtype)
    return tfds.core.DatasetInfo(
      builder=self, description=synthetic.__doc__, disable_shuffling=True,
      features=tfds.features.FeaturesDict({
        "image": tensor((frames, size, size, 3), np.uint8),
        "segmentation": tensor((frames, size, size), np.uint8),
        "landmarks": tensor((frames, 68, 2)),
        "expression": tensor((frames, model.num_expression)),
        "pose": tensor((frames, 3)),
        "sh": tensor((frames, 27)),
        "identity": tensor((model.num_identity,)),
        "albedo_coefficients": tensor((model.num_albedo,)),
        "translation": tensor((3,)),
        "focal": tensor(()),
      }),
    )  # fmt: skip

  def example(self, model, index: int) -> dict:
    return synthetic.sequence_example(model, index, seed=self.seed, **self.settings)


class FaceViews(_SyntheticBuilder):
  """One face at one instant from several views: `jaxface.data.multiview` (its kinds and fields)."""

  def _info(self):
    model = self.model()
    size, views = self.settings["image_size"], multiview.num_views(self.settings["face_kind"])
    tensor = lambda shape, dtype=np.float32: tfds.features.Tensor(shape=shape, dtype=dtype)
    return tfds.core.DatasetInfo(
      builder=self, description=multiview.__doc__, disable_shuffling=True,
      features=tfds.features.FeaturesDict({
        "image": tensor((views, size, size, 3), np.uint8),
        "mask": tensor((views, size, size), np.uint8),
        "depth": tensor((views, size, size)),
        "specular": tensor((views, size, size), np.uint8),
        "landmarks": tensor((views, 68, 2)),
        "landmarks_3d": tensor((68, 3)),
        "rotation": tensor((views, 3, 3)),
        "translation": tensor((views, 3)),
        "camera": tensor((views,), np.int32),
        "identity": tensor((model.num_identity,)),
        "expression": tensor((model.num_expression,)),
        "identity_estimate": tensor((self.settings["fit_identity"],)),
        "emotion": tensor((), np.int32),
        "fit_depth": tensor((views, size, size)),
        "focal": tensor(()),
      }),
    )  # fmt: skip

  def example(self, model, index: int) -> dict:
    return multiview.face_views_example(model, index, seed=self.seed, **self.settings)


BUILDERS = {
  "registered_meshes": RegisteredMeshes,
  "face_images": FaceImages,
  "multiview_pairs": MultiViewPairs,
  "sequences": Sequences,
  "face_views": FaceViews,
}


def load_synthetic(
  kind: str, *, model: str, num_train: int, num_eval: int, seed: int = 0,
  data_dir: str | os.PathLike | None = None, split: str = "train", **settings,
):  # fmt: skip
  """A random-access source of a synthetic dataset, prepared on first use.

  Args:
    kind: "registered_meshes", "face_images", "multiview_pairs", "sequences" or "face_views".
    model: a `jaxface.morphable.load` spec ("procedural", "ict", a path).
    num_train, num_eval: split sizes (a split of 0 examples is not made).
    seed: generation seed.
    data_dir: where tfds keeps prepared datasets (`default_data_dir()`).
    split: "train" or "eval".
    **settings: the generator's own settings (e.g. `image_size`, or
      `num_identities`, `labelled_fraction` and optionally `viseme_fraction`,
      `viseme_labelled_fraction`).
  """
  if kind not in BUILDERS:
    raise ValueError(f"unknown synthetic dataset {kind!r}; known: {sorted(BUILDERS)}")
  with absl_quiet():  # tfds warns "Using custom data configuration": our configs name settings
    builder = BUILDERS[kind](
      model_spec=model, num_train=num_train, num_eval=num_eval, seed=seed, settings=settings,
      data_dir=str(data_dir or default_data_dir()), file_format="array_record",
    )  # fmt: skip
  # tfds spills a split larger than its 1 GB shuffle buffer to temporary
  # files through TensorFlow, which jaxface does not require; the examples
  # are written in index order anyway, so keep the whole split in memory.
  buffer_size = tfds_shuffle.MAX_MEM_BUFFER_SIZE
  tfds_shuffle.MAX_MEM_BUFFER_SIZE = max(buffer_size, _SHUFFLE_BUFFER_BYTES)
  try:
    builder.download_and_prepare()
  finally:
    tfds_shuffle.MAX_MEM_BUFFER_SIZE = buffer_size
  return builder.as_data_source(split)
