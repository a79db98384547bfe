"""Shared pieces of the file loaders: errors, UV/albedo completion, model assembly."""

from __future__ import annotations

import os

import numpy as np

from jaxface.errors import InputFileError
from jaxface.geometry.symmetry import mirror_vertex_map
from jaxface.geometry.uv import harmonic_uv, uv_texel_lookup
from jaxface.morphable.albedo import procedural_albedo
from jaxface.morphable.model import MorphableModel, as_model


class ModelFileError(InputFileError):
  """A face-model file is missing, unreadable or inconsistent; names file and field."""

  def __init__(self, path: str | os.PathLike, problem: str):
    self.path = str(path)
    self.problem = problem
    super().__init__(f"{path}: {problem}")


def require(arrays, path, key: str, shape: tuple | None = None) -> np.ndarray:
  """arrays[key] as numpy, or ModelFileError naming the key (and the shape when wrong).

  `shape` may contain None for free dimensions.
  """
  try:
    value = np.asarray(arrays[key])
  except (KeyError, ValueError):
    raise ModelFileError(path, f"missing field {key!r}") from None
  if shape is not None:
    ok = value.ndim == len(shape) and all(
      e is None or e == s for e, s in zip(shape, value.shape, strict=True)
    )
    if not ok:
      expected = "(" + ", ".join("N" if e is None else str(e) for e in shape) + ")"
      raise ModelFileError(path, f"field {key!r} has shape {value.shape}, expected {expected}")
  return value


def vertex_uv_from_corners(
  triangles: np.ndarray, triangle_uv: np.ndarray, uv: np.ndarray, num_vertices: int
) -> np.ndarray:
  """One uv per vertex: the first corner that uses the vertex wins. (V, 2)."""
  vertex_uv = np.zeros((num_vertices, 2), np.float32)
  flat_vertices = triangles.ravel()[::-1]  # reversed so the first occurrence is written last
  vertex_uv[flat_vertices] = uv[triangle_uv.ravel()[::-1]]
  return vertex_uv


def bake_vertex_colours(
  colours: np.ndarray,
  triangles: np.ndarray,
  uv: np.ndarray,
  triangle_uv: np.ndarray,
  size: tuple[int, int],
) -> np.ndarray:
  """Per-vertex values (..., V, 3) -> UV textures (..., H, W, 3) by barycentric interpolation.

  Texels outside the chart copy the nearest texel inside.
  """
  import scipy.ndimage

  triangle_id, barycentric = uv_texel_lookup(uv, triangle_uv, size)
  mask = triangle_id >= 0
  corner_vertices = triangles[np.maximum(triangle_id, 0)]  # (H, W, 3)
  _, (rows, cols) = scipy.ndimage.distance_transform_edt(~mask, return_indices=True)
  corner_vertices, barycentric = corner_vertices[rows, cols], barycentric[rows, cols]
  gathered = np.take(colours, corner_vertices, axis=-2)  # (..., H, W, 3 corners, 3)
  return np.einsum("hwk,...hwkc->...hwc", barycentric, gathered).astype(np.float32)


def assemble_model(
  source: str | os.PathLike,
  *,
  name: str,
  vertices: np.ndarray,
  triangles: np.ndarray,
  identity_basis: np.ndarray,
  expression_basis: np.ndarray | None = None,
  expression_names: tuple[str, ...] = (),
  uv: np.ndarray | None = None,
  triangle_uv: np.ndarray | None = None,
  vertex_colour_mean: np.ndarray | None = None,
  vertex_colour_basis: np.ndarray | None = None,
  landmarks: np.ndarray | None = None,
  albedo_size: tuple[int, int] = (256, 256),
  num_albedo: int = 20,
) -> MorphableModel:
  """Completes what a file lacks and validates: UVs, albedo, mirror map.

  - No UVs: a harmonic parameterisation of the (disk-like) mesh.
  - Per-vertex colours (BFM): baked into UV textures; otherwise the
    procedural albedo model, placed by the landmarks when there are any.
  - The mirror map is always computed from the neutral geometry.
  """
  vertices = np.asarray(vertices, np.float64)
  triangles = np.asarray(triangles, np.int64)
  num_vertices = len(vertices)
  if triangles.size and (triangles.min() < 0 or triangles.max() >= num_vertices):
    raise ModelFileError(
      source,
      f"triangles index vertices outside [0, {num_vertices}): "
      f"range [{triangles.min()}, {triangles.max()}]",
    )
  if uv is None:
    try:
      uv = harmonic_uv(vertices, triangles)
    except ValueError as error:
      raise ModelFileError(
        source,
        f"the file has no UVs and the mesh cannot be parameterised ({error}); "
        "pass a template OBJ with UVs",
      ) from None
    triangle_uv = triangles
  uv = np.asarray(uv, np.float32)
  triangle_uv = np.asarray(triangle_uv, np.int64)
  if landmarks is None:
    landmarks = np.zeros((0,), np.int32)
  landmarks = np.asarray(landmarks).astype(np.int64)
  if landmarks.size and (
    landmarks.shape != (68,) or landmarks.min() < 0 or landmarks.max() >= num_vertices
  ):
    raise ModelFileError(
      source,
      f"landmarks must be 68 vertex ids in [0, {num_vertices}), got shape {landmarks.shape}",
    )
  if vertex_colour_mean is not None:
    albedo_mean = bake_vertex_colours(vertex_colour_mean, triangles, uv, triangle_uv, albedo_size)
    basis = np.zeros((0, num_vertices, 3)) if vertex_colour_basis is None else vertex_colour_basis
    albedo_basis = bake_vertex_colours(basis[:num_albedo], triangles, uv, triangle_uv, albedo_size)
  else:
    albedo_mean, albedo_basis = procedural_albedo(
      vertices, triangles, uv, triangle_uv, landmarks, size=albedo_size, num_modes=num_albedo
    )
  if expression_basis is None:
    expression_basis = np.zeros((0, num_vertices, 3), np.float32)
  mirror, _ = mirror_vertex_map(vertices)
  try:
    return as_model(
      str(source),
      vertices=vertices,
      triangles=triangles,
      uv=uv,
      triangle_uv=triangle_uv,
      vertex_uv=vertex_uv_from_corners(triangles, triangle_uv, uv, num_vertices),
      identity_basis=identity_basis,
      expression_basis=expression_basis,
      albedo_mean=albedo_mean,
      albedo_basis=albedo_basis,
      landmarks=landmarks,
      mirror=mirror,
      expression_names=tuple(expression_names),
      name=name,
      units="cm",
    )
  except ValueError as error:
    raise ModelFileError(source, str(error).split(": ", 1)[-1]) from None
