"""`load(spec)`: one entry point for every face model, plus jaxface's own `.npz`.

Specs:
- "procedural": built by code, no files (`procedural.py`).
- "ict" or "ict:narrow": ICT-FaceKit found through the `JAXFACE_DATA`
  environment variable (see `find_ict`), face or narrow-face area.
- a path: a FaceXModel folder or the compact ICT npz, a BFM 2009 `.mat`, a
  BFM 2017 `.h5`, a FLAME `.pkl`, or a jaxface `.npz` (`save_npz`).
Loaded models are cached per process.
"""

from __future__ import annotations

import functools
import os
import pathlib

import numpy as np

from jaxface.errors import NotFoundError
from jaxface.morphable import bfm, flame, ict
from jaxface.morphable.assemble import ModelFileError
from jaxface.morphable.model import ARRAY_FIELDS, MorphableModel, as_model
from jaxface.morphable.procedural import procedural_model

DATA_ENV = "JAXFACE_DATA"
NPZ_FORMAT = "jaxface-morphable-model-v1"
ICT_CANDIDATES = (
  "ict-facekit/ict_face_area.npz",
  "ict_face_area.npz",
  "ict-facekit/raw",
  "ict-facekit/FaceXModel",
  "FaceXModel",
)
ICT_HELP = (
  "download ICT-FaceKit (MIT licence) from its public GitHub repository (USC ICT), "
  "convert its FaceXModel folder with `python -m jaxface.morphable.ict FaceXModel "
  "ict_face_area.npz`, put the npz in $JAXFACE_DATA/ict-facekit/, or pass a path"
)


def data_dir() -> pathlib.Path | None:
  """The folder named by $JAXFACE_DATA, if set."""
  value = os.environ.get(DATA_ENV)
  return pathlib.Path(value).expanduser() if value else None


def find_ict(data: str | os.PathLike | None = None) -> pathlib.Path:
  """The ICT-FaceKit npz or FaceXModel folder under `data` (default $JAXFACE_DATA).

  Looks for, in order: {ICT_CANDIDATES}.
  """
  root = pathlib.Path(data) if data is not None else data_dir()
  if root is None:
    raise NotFoundError(f"ICT-FaceKit not found: ${DATA_ENV} is not set; {ICT_HELP}")
  for candidate in ICT_CANDIDATES:
    path = root / candidate
    if path.is_file() or ict.is_raw_folder(path):
      return path
  raise NotFoundError(
    f"ICT-FaceKit not found under {root} (looked for {', '.join(ICT_CANDIDATES)}); {ICT_HELP}"
  )


find_ict.__doc__ = find_ict.__doc__.format(ICT_CANDIDATES=", ".join(ICT_CANDIDATES))


def ict_available(data: str | os.PathLike | None = None) -> bool:
  try:
    find_ict(data)
  except FileNotFoundError:
    return False
  return True


def save_npz(model: MorphableModel, path: str | os.PathLike) -> pathlib.Path:
  """Writes a model as jaxface `.npz` (every array and the metadata); never overwrites."""
  path = pathlib.Path(path)
  if path.exists():
    raise FileExistsError(f"{path} exists; remove it or choose another name")
  arrays = {field: np.asarray(getattr(model, field)) for field in ARRAY_FIELDS}
  temporary = path.with_name(path.name + ".partial.npz")
  np.savez_compressed(
    temporary,
    format=np.asarray(NPZ_FORMAT),
    expression_names=np.asarray(model.expression_names, dtype=str).reshape(-1),
    name=np.asarray(model.name),
    units=np.asarray(model.units),
    **arrays,
  )
  temporary.replace(path)
  return path


def load_npz(path: str | os.PathLike) -> MorphableModel:
  """Reads a jaxface `.npz` written by `save_npz`."""
  path = pathlib.Path(path)
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {key: data[key] for key in data.files}
  except FileNotFoundError:
    raise ModelFileError(path, "missing") from None
  except (OSError, ValueError) as error:
    raise ModelFileError(path, f"not a readable npz file ({error})") from None
  if str(arrays.get("format", "")) != NPZ_FORMAT:
    raise ModelFileError(path, f"field 'format' is not {NPZ_FORMAT!r}: not a jaxface model file")
  missing = [field for field in ARRAY_FIELDS if field not in arrays]
  if missing:
    raise ModelFileError(path, f"missing field {missing[0]!r}")
  if "units" in arrays and str(arrays["units"]) != "cm":
    raise ModelFileError(
      path, f"field 'units' is {str(arrays['units'])!r}; jaxface models are in cm"
    )
  fields = {field: arrays[field] for field in ARRAY_FIELDS}
  try:
    return as_model(
      str(path),
      **fields,
      expression_names=tuple(str(n) for n in arrays.get("expression_names", [])),
      name=str(arrays.get("name", path.name)),
      units="cm",
    )
  except ValueError as error:
    raise ModelFileError(path, str(error).split(": invalid morphable model: ", 1)[-1]) from None


def _is_jaxface_npz(path: pathlib.Path) -> bool:
  with np.load(path, allow_pickle=False) as data:
    return "format" in data.files


@functools.lru_cache(maxsize=8)
def _load_path(path: pathlib.Path, area: str, options: tuple) -> MorphableModel:
  kwargs = dict(options)
  if ict.is_raw_folder(path):
    return ict.load_ict(path, area=area, **kwargs)
  if path.is_dir():
    raise ModelFileError(path, f"a folder, but not an ICT FaceXModel folder (no {ict.INDEX_FILE})")
  if not path.exists():
    raise ModelFileError(path, "missing")
  suffix = path.suffix.lower()
  if suffix == ".npz":
    try:
      if _is_jaxface_npz(path):
        return load_npz(path)
    except (OSError, ValueError) as error:
      raise ModelFileError(path, f"not a readable npz file ({error})") from None
    return ict.load_ict(path, area=area, **kwargs)
  if suffix == ".mat":
    return bfm.load_bfm2009(path, **kwargs)
  if suffix in (".h5", ".hdf5"):
    return bfm.load_bfm2017(path, **kwargs)
  if suffix == ".pkl":
    return flame.load_flame(path, **kwargs)
  raise ModelFileError(
    path, "unknown model format; expected .npz, .mat, .h5, .pkl or a FaceXModel folder"
  )


def load(spec: str | os.PathLike = "procedural", **options) -> MorphableModel:
  """Loads a face model by spec (see the module docstring).

  Args:
    spec: "procedural", "ict", "ict:narrow", or a path.
    **options: passed to the loader, e.g. `albedo_size=(128, 128)`,
      `num_albedo=10`, `landmarks=...` (BFM/FLAME), `uv_obj=...` (FLAME),
      `num_identity=...` (procedural).

  Raises:
    FileNotFoundError: "ict" was asked for and cannot be found.
    ModelFileError: a file is missing, unreadable or inconsistent; the
      message names the file and the field.
  """
  text = os.fspath(spec)
  if text == "procedural":
    return procedural_model(**options)
  area = "face"
  if text in ("ict", "ict:face", "ict:narrow"):
    area = text.partition(":")[2] or "face"
    path = find_ict()
  else:
    path = pathlib.Path(text).expanduser()
  frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
  return _load_path(path.resolve(), area, frozen)
