"""Registered meshes for the decoupled GAN: the synthetic dataset (a), in mm, with labels.

`MeshDataset` wraps any random-access source of examples with `vertices`
(V, 3) in the morphable model's units and `<factor>_label` int fields (-1 =
unlabelled): jaxface's synthetic dataset, or a user's own registered scans
converted to the same fields. It converts lengths to mm (the paper's unit),
keeps only the fields the step needs, and reads all labels once (class
weights, the training-data diversity and the decoupling evaluators need them).
"""

from __future__ import annotations

import functools

import ml_collections
import numpy as np
import tqdm

from jaxface.data import personal, synthetic
from jaxface.data.builders import load_synthetic
from jaxface.morphable import load as load_model
from jaxface.morphable.model import MorphableModel, mm_per_unit


class MeshDataset:
  """Registered meshes in mm with per-factor labels (random access, deterministic).

  Attributes:
    model: the morphable model the meshes are registered to (its topology,
      UV map, template and landmarks).
    factors: names of the labelled factors ("identity", "expression", ...).
    num_classes: {factor: number of labels}.
    scale: mm per model unit.
  """

  def __init__(
    self, source, model: MorphableModel, factors, num_classes: dict[str, int], name: str = ""
  ):
    self.source = source
    self.model = model
    self.factors = tuple(factors)
    missing = [f for f in self.factors if f not in num_classes]
    if missing:
      raise ValueError(f"no label count for factors {missing}; known: {sorted(num_classes)}")
    self.num_classes = {f: int(num_classes[f]) for f in self.factors}
    self.scale = mm_per_unit(model.units)
    self.name = name
    if len(source) == 0:
      raise ValueError(f"dataset {name!r} is empty")
    first = source[0]
    for key in ["vertices"] + [f"{f}_label" for f in self.factors]:
      if key not in first:
        raise ValueError(f"dataset {name!r} examples lack the field {key!r}; have {sorted(first)}")
    if first["vertices"].shape != (model.num_vertices, 3):
      raise ValueError(
        f"dataset {name!r}: vertices have shape {first['vertices'].shape}, the model "
        f"{model.name!r} has ({model.num_vertices}, 3)"
      )

  def __len__(self) -> int:
    return len(self.source)

  def _convert(self, example: dict) -> dict[str, np.ndarray]:
    out = {"vertices": (np.asarray(example["vertices"], np.float32) * self.scale)}
    for factor in self.factors:
      out[f"{factor}_label"] = np.asarray(example[f"{factor}_label"], np.int32)
    return out

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return self._convert(self.source[int(index)])

  def __getitems__(self, indices) -> list[dict[str, np.ndarray]]:
    if hasattr(self.source, "__getitems__"):
      examples = self.source.__getitems__([int(i) for i in indices])
    else:
      examples = [self.source[int(i)] for i in indices]
    return [self._convert(example) for example in examples]

  def read(self, indices=None, fields=("vertices",), chunk: int = 512, progress: bool = False):
    """Stacked raw fields of `indices` (all by default); vertices converted to mm."""
    indices = np.arange(len(self)) if indices is None else np.asarray(indices)
    out = {field: [] for field in fields}
    starts = range(0, len(indices), chunk)
    for start in tqdm.tqdm(starts, desc=f"reading {self.name}", disable=not progress):
      part = [int(i) for i in indices[start : start + chunk]]
      if hasattr(self.source, "__getitems__"):
        examples = self.source.__getitems__(part)
      else:
        examples = [self.source[i] for i in part]
      for field in fields:
        out[field].append(np.stack([np.asarray(e[field]) for e in examples]))
    stacked = {field: np.concatenate(values) for field, values in out.items()}
    if "vertices" in stacked:
      stacked["vertices"] = stacked["vertices"].astype(np.float32) * self.scale
    return stacked

  def vertices(self, indices=None, progress: bool = False) -> np.ndarray:
    """(N, V, 3) meshes in mm."""
    return self.read(indices, ("vertices",), progress=progress)["vertices"]

  @functools.cached_property
  def labels(self) -> dict[str, np.ndarray]:
    """{factor: (N,) int32} labels of every example (-1 = unlabelled)."""
    fields = tuple(f"{f}_label" for f in self.factors)
    read = self.read(fields=fields)
    return {f: read[f"{f}_label"].astype(np.int32) for f in self.factors}

  @functools.cached_property
  def true_labels(self) -> dict[str, np.ndarray]:
    """{factor: (N,) int32} every example's true class where the data know it (synthetic data
    keep `<factor>_true` for the labels they hide), else the labels (-1 = unlabelled)."""
    first = self.source[0]
    fields = {f: f"{f}_true" if f"{f}_true" in first else f"{f}_label" for f in self.factors}
    read = self.read(fields=tuple(fields.values()))
    return {f: read[field].astype(np.int32) for f, field in fields.items()}

  @property
  def num_vertices(self) -> int:
    return self.model.num_vertices

  @property
  def template(self) -> np.ndarray:
    """(V, 3) the model's mean shape in mm: the generator's reference mesh."""
    return np.asarray(self.model.vertices, np.float32) * self.scale

  @property
  def triangles(self) -> np.ndarray:
    return np.asarray(self.model.triangles)

  @property
  def uv(self) -> np.ndarray:
    return np.asarray(self.model.uv)

  @property
  def triangle_uv(self) -> np.ndarray:
    return np.asarray(self.model.triangle_uv)


def identity_specific_energy(dataset: MeshDataset, strength: float, count: int = 256):
  """The share (%) of the expression displacement energy of the first `count` meshes that no
  separable identity + expression linear model on the morphable model's bases expresses
  (`personal.separable_residual_energy`); None for data without the generator's codes."""
  if not {"identity", "expression"} <= set(dataset.source[0]):
    return None
  fields = dataset.read(np.arange(min(count, len(dataset))), ("identity", "expression"))
  rigs, outside, total = {}, 0.0, 0.0
  for code, weights in zip(fields["identity"], fields["expression"], strict=True):
    key = code.tobytes()
    if key not in rigs:
      rigs[key] = personal.personal_rig(
        dataset.model, code, shape_strength=strength, albedo_strength=0.0
      )
    part, whole = personal.separable_residual_energy(dataset.model, rigs[key], weights)
    outside, total = outside + part, total + whole
  return 100.0 * outside / total if total > 0 else 0.0


def dataset_settings(config: ml_collections.ConfigDict) -> dict:
  """The synthetic generator's settings (they name the prepared dataset)."""
  settings = {
    "num_identities": int(config.data.num_identities),
    "labelled_fraction": float(config.data.labelled_fraction),
  }
  if float(config.data.get("personal_strength", 0.0)) > 0:
    settings["personal_strength"] = float(config.data.personal_strength)
  if float(config.data.get("viseme_fraction", 0.0)) > 0:
    settings["viseme_fraction"] = float(config.data.viseme_fraction)
    settings["viseme_labelled_fraction"] = float(config.data.viseme_labelled_fraction)
  return settings


@functools.lru_cache(maxsize=8)
def _cached_dataset(
  model: str, num_train, num_eval, seed, data_dir, split, settings, factors, name
):
  source = load_synthetic(
    "registered_meshes", model=model, num_train=num_train, num_eval=num_eval, seed=seed,
    data_dir=data_dir or None, split=split, **dict(settings),
  )  # fmt: skip
  counts = {"identity": dict(settings)["num_identities"]}
  counts["expression"] = len(synthetic.EMOTION_NAMES)
  counts["viseme"] = len(synthetic.VISEME_NAMES)
  return MeshDataset(
    source, load_model(model), factors, counts, name=f"registered_meshes/{model}/{name}"
  )


#: The generation seed of the unseen identities is the data's plus this (any other seed draws
#: other identity codes, `synthetic.identity_codes`).
UNSEEN_SEED_OFFSET = 7919


def create_dataset(config: ml_collections.ConfigDict, split: str) -> MeshDataset:
  """The synthetic registered meshes of `config.data` (prepared on first use, then cached).

  Splits: "train"; "eval", new meshes of the training identities; "unseen",
  `config.evaluation.unseen_meshes` meshes of identities never in training
  (another generation seed), on which the decoupling evaluators are validated.
  """
  if split not in ("train", "eval", "unseen"):
    raise ValueError(f"split must be 'train', 'eval' or 'unseen', got {split!r}")
  data = config.data
  counts, seed, stored = (int(data.num_train), int(data.num_eval)), int(data.seed), split
  if split == "unseen":  # the "train" split of another generation seed
    counts, seed, stored = (
      (int(config.evaluation.unseen_meshes), 0),
      seed + UNSEEN_SEED_OFFSET,
      "train",
    )
  return _cached_dataset(
    str(data.model), *counts, seed, str(data.data_dir), stored,
    tuple(sorted(dataset_settings(config).items())), tuple(config.gan.factors), split,
  )  # fmt: skip
