"""Mesh files through trimesh: export shapes with UVs and an albedo texture, load them back.

OBJ files get UVs, an MTL and the texture as PNG beside them; PLY files get
per-vertex colours sampled from the texture (what PLY viewers show). Vertices
with several UVs (seams) are duplicated on export, and `load_mesh` merges
exact duplicates again, so a registered mesh comes back with its own vertex
order and triangles.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import trimesh
from PIL import Image

SUFFIXES = (".obj", ".ply")


def _split_seams(
  vertices: np.ndarray, triangles: np.ndarray, uv: np.ndarray, triangle_uv: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """One vertex per (vertex, uv) pair; sorted by vertex id so merging restores the order."""
  pairs = np.stack([triangles.ravel(), triangle_uv.ravel()], axis=1)
  unique_pairs, inverse = np.unique(pairs, axis=0, return_inverse=True)
  return vertices[unique_pairs[:, 0]], inverse.reshape(triangles.shape), uv[unique_pairs[:, 1]]


def sample_texture_nearest(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
  """Texel values (N, C) at uv (N, 2) (v up, row 0 at the top), nearest texel."""
  height, width = texture.shape[:2]
  rows = np.clip(((1.0 - uv[:, 1]) * height).astype(int), 0, height - 1)
  cols = np.clip((uv[:, 0] * width).astype(int), 0, width - 1)
  return texture[rows, cols]


def export_mesh(
  path: str | os.PathLike,
  vertices: np.ndarray,
  triangles: np.ndarray,
  uv: np.ndarray | None = None,
  triangle_uv: np.ndarray | None = None,
  texture: np.ndarray | None = None,
  overwrite: bool = False,
) -> pathlib.Path:
  """Writes a triangle mesh as .obj (UVs + MTL + PNG) or .ply (vertex colours).

  Args:
    path: output file; its suffix picks the format.
    vertices: (V, 3) positions.
    triangles: (F, 3) vertex ids.
    uv: (T, 2) texture coordinates, with `triangle_uv` (F, 3) corner ids;
      per-vertex UVs (V, 2) may be given without `triangle_uv`.
    texture: (H, W, 3) values in [0, 1] (written as 8-bit, clipped).
    overwrite: replace an existing file instead of raising.
  """
  path = pathlib.Path(path)
  if path.suffix.lower() not in SUFFIXES:
    raise ValueError(f"{path}: unsupported mesh format; use one of {SUFFIXES}")
  if path.exists() and not overwrite:
    raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
  vertices = np.asarray(vertices, np.float64)
  triangles = np.asarray(triangles, np.int64)
  if vertices.ndim != 2 or vertices.shape[1] != 3:
    raise ValueError(f"vertices must have shape (V, 3), got {vertices.shape}")
  if triangles.ndim != 2 or triangles.shape[1] != 3:
    raise ValueError(f"triangles must have shape (F, 3), got {triangles.shape}")
  visual = None
  if uv is not None:
    uv = np.asarray(uv, np.float64)
    if triangle_uv is None:
      if uv.shape != (len(vertices), 2):
        raise ValueError(f"per-vertex uv must have shape ({len(vertices)}, 2), got {uv.shape}")
      triangle_uv = triangles
    vertices, triangles, uv = _split_seams(vertices, triangles, uv, np.asarray(triangle_uv))
    if texture is not None:
      texture8 = (np.clip(np.asarray(texture, np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
      if path.suffix.lower() == ".ply":
        colours = sample_texture_nearest(texture8, uv)
        visual = trimesh.visual.ColorVisuals(
          vertex_colors=np.concatenate([colours, np.full((len(colours), 1), 255, np.uint8)], axis=1)
        )
      else:
        # Files named after the mesh, so meshes in one folder keep their own textures.
        material = trimesh.visual.material.SimpleMaterial(
          image=Image.fromarray(texture8), name=path.stem
        )
        visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    elif path.suffix.lower() == ".obj":
      material = trimesh.visual.material.SimpleMaterial(name=path.stem)
      visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
  mesh = trimesh.Trimesh(vertices, triangles, visual=visual, process=False)
  path.parent.mkdir(parents=True, exist_ok=True)
  if path.suffix.lower() == ".ply":
    mesh.export(path)
    return path
  text, extra_files = trimesh.exchange.obj.export_obj(
    mesh, return_texture=True, mtl_name=f"{path.stem}.mtl", include_normals=False
  )
  targets = {path.parent / name: data for name, data in extra_files.items()}
  clashes = [str(target) for target in targets if target.exists() and not overwrite]
  if clashes:
    raise FileExistsError(f"{', '.join(clashes)} exist; pass overwrite=True to replace them")
  for target, data in targets.items():
    target.write_bytes(data)
  path.write_text(text)
  return path


def load_mesh(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
  """Reads a mesh file: vertices (V, 3) float32 and triangles (F, 3) int32.

  Vertices duplicated at UV seams are merged (exact positions), restoring
  the order of a mesh written by `export_mesh`.
  """
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"{path}: no such mesh file")
  try:
    mesh = trimesh.load(path, process=False, force="mesh", maintain_order=True)
  except Exception as error:  # trimesh raises many types for bad files
    raise ValueError(f"{path}: cannot read mesh ({error})") from None
  vertices = np.asarray(mesh.vertices)
  triangles = np.asarray(mesh.faces)
  if len(vertices) == 0 or len(triangles) == 0:
    raise ValueError(f"{path}: the file has no triangles")
  _, first, inverse = np.unique(vertices, axis=0, return_index=True, return_inverse=True)
  order = np.argsort(first)  # unique rows in order of first appearance
  rank = np.empty_like(order)
  rank[order] = np.arange(len(order))
  merged_vertices = vertices[np.sort(first)]
  merged_triangles = rank[inverse.ravel()][triangles]
  return merged_vertices.astype(np.float32), merged_triangles.astype(np.int32)
