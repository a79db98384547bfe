"""Basel Face Model loaders: BFM 2009 (`01_MorphableModel.mat`) and BFM 2017 (`.h5`).

Both are licence-gated downloads from the University of Basel; jaxface reads
them in their published layouts. Vertex coordinates are stored interleaved
(x1, y1, z1, x2, ...). Lengths become cm: BFM 2009 is in micrometres, BFM
2017 in millimetres (override with `length_unit_cm`). Per-vertex colours are
baked into a UV texture over a harmonic parameterisation of the face (BFM
has no UVs); BFM has no iBUG-68 annotation, so pass `landmarks` (68 vertex
ids or a .npy/.txt file of them) to get one.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from jaxface.morphable.assemble import ModelFileError, assemble_model, require
from jaxface.morphable.model import MorphableModel

MICROMETRE_CM = 1e-4
MILLIMETRE_CM = 0.1


def read_landmarks(landmarks) -> np.ndarray | None:
  """68 vertex ids from an array, a .npy file or a whitespace-separated text file."""
  if landmarks is None:
    return None
  if isinstance(landmarks, (str, os.PathLike)):
    path = pathlib.Path(landmarks)
    try:
      values = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, dtype=np.int64)
    except (OSError, ValueError) as error:
      raise ModelFileError(path, f"cannot read landmark ids ({error})") from None
    landmarks = values
  return np.asarray(landmarks).astype(np.int64).ravel()


def _orient_towards_viewer(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
  """Flips the winding when most face area points away from +z (the face's front)."""
  corners = vertices[triangles]
  normal_z = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])[:, 2]
  return triangles[:, ::-1].copy() if normal_z.sum() < 0 else triangles


def _modes(components: np.ndarray, scales: np.ndarray, num_vertices: int) -> np.ndarray:
  """(3V, K) components times per-mode scales -> (K, V, 3)."""
  return (components * scales[None, :]).T.reshape(-1, num_vertices, 3)


def load_bfm2009(
  path: str | os.PathLike, landmarks=None, length_unit_cm: float = MICROMETRE_CM, **options
) -> MorphableModel:
  """BFM 2009 from `01_MorphableModel.mat` (shapeMU/PC/EV, texMU/PC/EV, tl)."""
  import scipy.io

  path = pathlib.Path(path)
  try:
    data = scipy.io.loadmat(path)
  except FileNotFoundError:
    raise ModelFileError(path, "missing") from None
  except (
    scipy.io.matlab.MatReadError,
    ValueError,
    TypeError,
    OSError,
    NotImplementedError,
  ) as error:
    raise ModelFileError(path, f"not a readable MATLAB file ({error})") from None
  mean = require(data, path, "shapeMU", (None, 1)).ravel()
  if mean.size % 3:
    raise ModelFileError(path, f"field 'shapeMU' has {mean.size} values, not a multiple of 3")
  num_vertices = mean.size // 3
  components = require(data, path, "shapePC", (3 * num_vertices, None))
  deviations = require(data, path, "shapeEV", (components.shape[1], 1)).ravel()
  colour_mean = require(data, path, "texMU", (3 * num_vertices, 1)).ravel()
  colour_components = require(data, path, "texPC", (3 * num_vertices, None))
  colour_deviations = require(data, path, "texEV", (colour_components.shape[1], 1)).ravel()
  triangles = require(data, path, "tl", (None, 3)).astype(np.int64) - 1  # MATLAB is 1-based
  vertices = mean.reshape(-1, 3) * length_unit_cm
  # shapeEV holds standard deviations, so PC * EV gives unit-variance weights.
  return assemble_model(
    path,
    name=path.name,
    vertices=vertices,
    triangles=_orient_towards_viewer(vertices, triangles),
    identity_basis=_modes(components, deviations * length_unit_cm, num_vertices),
    vertex_colour_mean=colour_mean.reshape(-1, 3) / 255.0,
    vertex_colour_basis=_modes(colour_components, colour_deviations / 255.0, num_vertices),
    landmarks=read_landmarks(landmarks),
    **options,
  )


def load_bfm2017(
  path: str | os.PathLike, landmarks=None, length_unit_cm: float = MILLIMETRE_CM, **options
) -> MorphableModel:
  """BFM 2017 from its `.h5` (shape/expression/color, each model/{mean,pcaBasis,pcaVariance})."""
  import h5py

  path = pathlib.Path(path)
  try:
    handle = h5py.File(path, "r")
  except FileNotFoundError:
    raise ModelFileError(path, "missing") from None
  except OSError as error:
    raise ModelFileError(path, f"not a readable HDF5 file ({error})") from None
  with handle:

    def read(key, shape=None):
      try:
        value = handle[key][()]
      except KeyError:
        raise ModelFileError(path, f"missing field {key!r}") from None
      return require({key: value}, path, key, shape)

    mean = read("shape/model/mean", (None,))
    if mean.size % 3:
      raise ModelFileError(
        path, f"field 'shape/model/mean' has {mean.size} values, not a multiple of 3"
      )
    num_vertices = mean.size // 3
    cells = read("shape/representer/cells", (3, None))
    shape_basis = read("shape/model/pcaBasis", (3 * num_vertices, None))
    shape_variance = read("shape/model/pcaVariance", (shape_basis.shape[1],))
    expression_names, expression_basis = (), None
    if "expression" in handle:
      basis = read("expression/model/pcaBasis", (3 * num_vertices, None))
      variance = read("expression/model/pcaVariance", (basis.shape[1],))
      expression_mean = read("expression/model/mean", (3 * num_vertices,))
      if np.abs(expression_mean).max() > 0:
        # A non-zero expression mean is folded into the neutral shape.
        mean = mean + expression_mean
      expression_basis = _modes(basis, np.sqrt(variance) * length_unit_cm, num_vertices)
      expression_names = tuple(f"expression_pca_{k:02d}" for k in range(basis.shape[1]))
    colour_mean = colour_basis = None
    if "color" in handle:
      colour_mean = read("color/model/mean", (3 * num_vertices,)).reshape(-1, 3)
      basis = read("color/model/pcaBasis", (3 * num_vertices, None))
      variance = read("color/model/pcaVariance", (basis.shape[1],))
      colour_basis = _modes(basis, np.sqrt(variance), num_vertices)
  vertices = mean.reshape(-1, 3) * length_unit_cm
  triangles = cells.T.astype(np.int64)
  # pcaBasis columns are orthonormal; sqrt(variance) scales them to unit-variance weights.
  return assemble_model(
    path,
    name=path.name,
    vertices=vertices,
    triangles=_orient_towards_viewer(vertices, triangles),
    identity_basis=_modes(shape_basis, np.sqrt(shape_variance) * length_unit_cm, num_vertices),
    expression_basis=expression_basis,
    expression_names=expression_names,
    vertex_colour_mean=colour_mean,
    vertex_colour_basis=colour_basis,
    landmarks=read_landmarks(landmarks),
    **options,
  )
