"""FLAME loader (`generic_model.pkl` / `flame2020.pkl` saved with plain numpy).

FLAME (MPI-IS, licence-gated) ships as a Python pickle whose arrays are
chumpy objects. jaxface does not depend on chumpy; convert the pickle once
where chumpy is installed (see `CHUMPY_HELP`). Used fields: `v_template`
(V, 3) in metres, `f` (F, 3), `shapedirs` (V, 3, K) whose first
`num_shape` (300) modes are identity and the rest expression, both
already unit-variance. Joints, pose correctives and skinning weights are
not part of a linear MorphableModel and are ignored. FLAME's UVs live in a
separate OBJ (`head_template.obj` of the FLAME texture space): pass it as
`uv_obj`, otherwise a harmonic parameterisation is attempted (works only
for disk-like meshes). Pass `landmarks` (68 vertex ids) if you have them.
"""

from __future__ import annotations

import os
import pathlib
import pickle

import numpy as np

from jaxface.morphable.assemble import ModelFileError, assemble_model, require
from jaxface.morphable.bfm import _orient_towards_viewer, read_landmarks
from jaxface.morphable.model import MorphableModel

METRE_CM = 100.0
CHUMPY_HELP = (
  "this FLAME pickle stores chumpy arrays; convert it once to plain numpy where chumpy is "
  "installed: python -c \"import pickle, numpy as np; d = pickle.load(open('IN.pkl', 'rb'), "
  "encoding='latin1'); pickle.dump({k: (np.array(v) if hasattr(v, 'r') else v) for k, v in "
  "d.items()}, open('OUT.pkl', 'wb'))\" and load OUT.pkl"
)


class _RefusingUnpickler(pickle.Unpickler):
  """Unpickles numpy/scipy objects only; a chumpy class gets the conversion hint."""

  def find_class(self, module: str, name: str):
    if module.split(".")[0] == "chumpy":
      raise ModuleNotFoundError("chumpy")
    if module.split(".")[0] in (
      "numpy",
      "scipy",
      "builtins",
      "collections",
      "copy_reg",
      "__builtin__",
    ):
      return super().find_class(module, name)
    raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def read_flame_pickle(path: pathlib.Path) -> dict:
  try:
    with open(path, "rb") as handle:
      data = _RefusingUnpickler(handle, encoding="latin1").load()
  except FileNotFoundError:
    raise ModelFileError(path, "missing") from None
  except ModuleNotFoundError:
    raise ModelFileError(path, CHUMPY_HELP) from None
  except (pickle.UnpicklingError, EOFError, ValueError, AttributeError) as error:
    raise ModelFileError(path, f"not a readable FLAME pickle ({error})") from None
  if not isinstance(data, dict):
    raise ModelFileError(path, f"expected a dict of arrays, found {type(data).__name__}")
  return data


def _read_uv_obj(path: pathlib.Path, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  from jaxface.morphable.ict import read_obj

  _, uvs, polygons, polygon_uvs = read_obj(path)
  if len(polygons) != len(triangles) or any(len(p) != 3 for p in polygons):
    raise ModelFileError(path, f"expected {len(triangles)} triangles matching the FLAME mesh")
  if not np.array_equal(np.asarray(polygons), triangles):
    raise ModelFileError(path, "its triangles differ from the FLAME model's 'f'")
  return uvs, np.asarray(polygon_uvs)


def load_flame(
  path: str | os.PathLike,
  num_shape: int = 300,
  uv_obj=None,
  landmarks=None,
  length_unit_cm: float = METRE_CM,
  **options,
) -> MorphableModel:
  """FLAME as a linear model: template + identity (shape) + expression modes."""
  path = pathlib.Path(path)
  data = read_flame_pickle(path)
  template = require(data, path, "v_template", (None, 3)).astype(np.float64)
  triangles = require(data, path, "f", (None, 3)).astype(np.int64)
  directions = require(data, path, "shapedirs", (len(template), 3, None)).astype(np.float64)
  if directions.shape[-1] < num_shape:
    raise ModelFileError(
      path,
      f"field 'shapedirs' has {directions.shape[-1]} modes, fewer than num_shape={num_shape}",
    )
  modes = np.moveaxis(directions, -1, 0) * length_unit_cm  # (K, V, 3)
  vertices = template * length_unit_cm
  uv = triangle_uv = None
  if uv_obj is not None:
    uv, triangle_uv = _read_uv_obj(pathlib.Path(uv_obj), triangles)
  else:
    triangles = _orient_towards_viewer(vertices, triangles)
  num_expression = modes.shape[0] - num_shape
  return assemble_model(
    path,
    name=path.name,
    vertices=vertices,
    triangles=triangles,
    identity_basis=modes[:num_shape],
    expression_basis=modes[num_shape:],
    expression_names=tuple(f"expression_pca_{k:03d}" for k in range(num_expression)),
    uv=uv,
    triangle_uv=triangle_uv,
    landmarks=read_landmarks(landmarks),
    **options,
  )
