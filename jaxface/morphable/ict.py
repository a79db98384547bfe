"""ICT-FaceKit (MIT licence): read the original FaceXModel folder or the compact npz.

The ICT-FaceKit "Light" model (USC Institute for Creative Technologies) has a
26,719-vertex head in cm with quads and triangles, 100 identity OBJs
(`identity000.obj`..., already scaled for unit-variance weights) and 53
ARKit-named expression OBJs, plus `vertex_indices.json` (expression names,
68 landmark vertex ids). jaxface uses the face area: vertices [0, 9409) and
polygons [0, 9230) of the source, quads split as (0,1,2), (0,2,3); the
"narrow" face (vertices [0, 6706), first 13,120 triangles) is seamless in UV.
ICT has no albedo: the procedural albedo model is laid into ICT's UV space.

Get the model from the public ICT-FaceKit repository (folder `FaceXModel/`),
then convert it once to the compact npz (also `jaxface-ict-convert`):

    python -m jaxface.morphable.ict path/to/FaceXModel ict_face_area.npz
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re

import numpy as np

from jaxface import cli
from jaxface.morphable.assemble import (
  ModelFileError,
  assemble_model,
  require,
  vertex_uv_from_corners,
)
from jaxface.morphable.model import MorphableModel

FACE_VERTICES = 9409
FACE_POLYGONS = 9230
NARROW_VERTICES = 6706
NARROW_TRIANGLES = 13120
AREAS = ("face", "narrow")
NEUTRAL_FILE = "generic_neutral_mesh.obj"
INDEX_FILE = "vertex_indices.json"
NPZ_KEYS = ("vertices", "triangles", "uv", "triangle_uv", "identity_basis",
            "expression_basis", "expression_names", "landmarks_68")  # fmt: skip


def _read_text(path: pathlib.Path) -> str:
  try:
    return path.read_text()
  except OSError as error:
    raise ModelFileError(path, f"cannot read: {error.strerror}") from None


def read_obj_vertices(path: pathlib.Path, text: str | None = None) -> np.ndarray:
  """The `v` lines of an OBJ as (N, 3) float64."""
  text = _read_text(path) if text is None else text
  lines = [line[2:] for line in text.splitlines() if line.startswith("v ")]
  try:
    values = np.array(" ".join(lines).split(), dtype=np.float64)
    return values.reshape(-1, 3)
  except ValueError:
    raise ModelFileError(path, "malformed 'v' lines: expected 3 numbers each") from None


def read_obj(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray, list[list[int]], list[list[int]]]:
  """Vertices (N, 3), uvs (T, 2), and 0-based polygons (vertex ids, uv ids) of an OBJ."""
  text = _read_text(path)
  vertices = read_obj_vertices(path, text)
  uvs, polygons, polygon_uvs = [], [], []
  for number, line in enumerate(text.splitlines(), start=1):
    if line.startswith("vt "):
      uvs.append(line.split()[1:3])
    elif line.startswith("f "):
      corners = [corner.split("/") for corner in line.split()[1:]]
      try:
        polygons.append([int(c[0]) - 1 for c in corners])
        polygon_uvs.append([int(c[1]) - 1 if len(c) > 1 and c[1] else -1 for c in corners])
      except ValueError:
        raise ModelFileError(path, f"line {number}: malformed face {line!r}") from None
  return vertices, np.asarray(uvs, np.float64), polygons, polygon_uvs


def _triangulate(polygons: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
  """Fan triangulation (0, k, k+1); returns triangles' corner positions and polygon ids."""
  corners, owners = [], []
  for index, polygon in enumerate(polygons):
    for k in range(1, len(polygon) - 1):
      corners.append((0, k, k + 1))
      owners.append(index)
  return np.asarray(corners, np.int64), np.asarray(owners, np.int64)


def _crop(area: str, triangles: np.ndarray) -> tuple[int, int]:
  """(vertex count, triangle count) kept for an area."""
  if area == "face":
    return FACE_VERTICES, len(triangles)
  if area == "narrow":
    return NARROW_VERTICES, NARROW_TRIANGLES
  raise ValueError(f"ICT area must be one of {AREAS}, got {area!r}")


def read_raw(folder: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a FaceXModel folder into the compact-npz arrays (face area).

  Any subset of `identityNNN.obj` and expression OBJs may be present; the
  identity basis follows the file numbers, the expression basis the order of
  `vertex_indices.json["expressions"]`.
  """
  folder = pathlib.Path(folder)
  index_path = folder / INDEX_FILE
  try:
    indices = json.loads(index_path.read_text())
  except OSError:
    raise ModelFileError(
      index_path, "missing: a FaceXModel folder needs vertex_indices.json"
    ) from None
  except json.JSONDecodeError as error:
    raise ModelFileError(index_path, f"not valid JSON ({error.msg})") from None
  names = indices.get("expressions")
  if not isinstance(names, list):
    raise ModelFileError(index_path, "missing field 'expressions' (list of names)")
  landmarks = np.asarray(indices.get("idx_to_landmark_verts", []), np.int64)
  if landmarks.shape != (68,):
    raise ModelFileError(
      index_path, f"field 'idx_to_landmark_verts' has shape {landmarks.shape}, expected (68,)"
    )

  neutral_path = folder / NEUTRAL_FILE
  if not neutral_path.exists():
    raise ModelFileError(neutral_path, "missing: the neutral mesh is required")
  neutral, uvs, polygons, polygon_uvs = read_obj(neutral_path)
  if len(polygons) < FACE_POLYGONS or len(neutral) < FACE_VERTICES:
    raise ModelFileError(
      neutral_path,
      f"has {len(neutral)} vertices and {len(polygons)} polygons; the ICT face "
      f"area needs at least {FACE_VERTICES} and {FACE_POLYGONS}",
    )
  face_polygons = polygons[:FACE_POLYGONS]
  face_polygon_uvs = polygon_uvs[:FACE_POLYGONS]
  corners, owners = _triangulate(face_polygons)
  flat_vertices = [np.asarray(p) for p in face_polygons]
  flat_uvs = [np.asarray(p) for p in face_polygon_uvs]
  triangles = np.stack(
    [flat_vertices[o][c] for o, c in zip(owners, corners, strict=True)]
  )  # (F, 3)
  triangle_uv_raw = np.stack(
    [flat_uvs[o][c] for o, c in zip(owners, corners, strict=True)]
  )  # (F, 3)
  if triangles.max() >= FACE_VERTICES:
    raise ModelFileError(neutral_path, "face-area polygons use vertices beyond the face area")
  if triangle_uv_raw.min() < 0 or triangle_uv_raw.max() >= len(uvs):
    raise ModelFileError(neutral_path, "face-area polygons lack valid 'vt' indices")
  used_uv, triangle_uv = np.unique(triangle_uv_raw, return_inverse=True)
  triangle_uv = triangle_uv.reshape(triangles.shape)
  uv = uvs[used_uv]

  def displacement(path: pathlib.Path) -> np.ndarray:
    shape = read_obj_vertices(path)
    if shape.shape != neutral.shape:
      raise ModelFileError(path, f"has {len(shape)} vertices, the neutral mesh has {len(neutral)}")
    return (shape - neutral)[:FACE_VERTICES]

  identity_files = sorted(
    (p for p in folder.glob("identity*.obj") if re.fullmatch(r"identity\d+\.obj", p.name)),
    key=lambda p: int(p.stem[len("identity") :]),
  )
  identity_basis = (
    np.stack([displacement(p) for p in identity_files])
    if identity_files
    else np.zeros((0, FACE_VERTICES, 3))
  )
  present = [n for n in names if (folder / f"{n}.obj").exists()]
  expression_basis = (
    np.stack([displacement(folder / f"{n}.obj") for n in present])
    if present
    else np.zeros((0, FACE_VERTICES, 3))
  )
  vertex_uv_pairs = np.unique(np.stack([triangles.ravel(), triangle_uv.ravel()], 1), axis=0)
  counts = np.bincount(vertex_uv_pairs[:, 0], minlength=FACE_VERTICES)
  return {
    "vertices": neutral[:FACE_VERTICES].astype(np.float32),
    "triangles": triangles.astype(np.int32),
    "triangle_polygon": owners.astype(np.int32),
    "uv": uv.astype(np.float32),
    "triangle_uv": triangle_uv.astype(np.int32),
    "vertex_uv": vertex_uv_from_corners(triangles, triangle_uv, uv, FACE_VERTICES),
    "vertex_uv_count": counts.astype(np.int32),
    "identity_basis": identity_basis.astype(np.float32),
    "expression_basis": expression_basis.astype(np.float32),
    "expression_names": np.asarray(present),
    "landmarks_68": landmarks.astype(np.int32),
    "narrow_face_vertex_count": np.int32(NARROW_VERTICES),
    "narrow_face_triangle_count": np.int32(NARROW_TRIANGLES),
    "units": np.asarray("cm"),
  }


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads and checks the compact ICT npz (layout in the module docstring)."""
  path = pathlib.Path(path)
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {key: data[key] for key in data.files}
  except FileNotFoundError:
    raise ModelFileError(path, "missing") from None
  except (OSError, ValueError) as error:
    raise ModelFileError(path, f"not a readable npz file ({error})") from None
  num_vertices = len(require(arrays, path, "vertices", (None, 3)))
  num_triangles = len(require(arrays, path, "triangles", (None, 3)))
  require(arrays, path, "uv", (None, 2))
  require(arrays, path, "triangle_uv", (num_triangles, 3))
  require(arrays, path, "identity_basis", (None, num_vertices, 3))
  expression = require(arrays, path, "expression_basis", (None, num_vertices, 3))
  names = require(arrays, path, "expression_names", (len(expression),))
  require(arrays, path, "landmarks_68", (68,))
  arrays["expression_names"] = names
  return arrays


def model_from_arrays(
  arrays: dict[str, np.ndarray],
  source,
  area: str = "face",
  albedo_size: tuple[int, int] = (256, 256),
  num_albedo: int = 20,
) -> MorphableModel:
  """A MorphableModel from the compact arrays, cropped to `area`."""
  num_vertices, num_triangles = _crop(area, arrays["triangles"])
  triangles = np.asarray(arrays["triangles"])[:num_triangles]
  triangle_uv = np.asarray(arrays["triangle_uv"])[:num_triangles]
  if triangles.max() >= num_vertices:
    raise ModelFileError(source, f"triangles of the {area} area use vertices beyond {num_vertices}")
  used_uv, triangle_uv = np.unique(triangle_uv, return_inverse=True)
  landmarks = np.asarray(arrays["landmarks_68"])
  if landmarks.max() >= num_vertices:
    raise ModelFileError(source, f"landmarks_68 lie outside the {area} area")
  return assemble_model(
    source,
    name=f"ict-{area}",
    vertices=np.asarray(arrays["vertices"])[:num_vertices],
    triangles=triangles,
    identity_basis=np.asarray(arrays["identity_basis"])[:, :num_vertices],
    expression_basis=np.asarray(arrays["expression_basis"])[:, :num_vertices],
    expression_names=tuple(str(n) for n in arrays["expression_names"]),
    uv=np.asarray(arrays["uv"])[used_uv],
    triangle_uv=triangle_uv.reshape(-1, 3),
    landmarks=landmarks,
    albedo_size=albedo_size,
    num_albedo=num_albedo,
  )


def is_raw_folder(path: pathlib.Path) -> bool:
  return path.is_dir() and (path / INDEX_FILE).exists()


def is_ict_npz(path: pathlib.Path) -> bool:
  if path.suffix != ".npz" or not path.is_file():
    return False
  with np.load(path, allow_pickle=False) as data:
    return "landmarks_68" in data.files


def load_ict(path: str | os.PathLike, area: str = "face", **options) -> MorphableModel:
  """ICT-FaceKit from a FaceXModel folder or the compact npz."""
  path = pathlib.Path(path)
  arrays = read_raw(path) if path.is_dir() else read_npz(path)
  return model_from_arrays(arrays, path, area=area, **options)


def convert(folder: str | os.PathLike, output: str | os.PathLike) -> pathlib.Path:
  """Writes the compact face-area npz for a FaceXModel folder; never overwrites."""
  output = pathlib.Path(output)
  if output.exists():
    raise FileExistsError(f"{output} exists; remove it or choose another name")
  arrays = read_raw(folder)
  output.parent.mkdir(parents=True, exist_ok=True)
  temporary = output.with_name(output.name + ".partial.npz")
  np.savez_compressed(temporary, **arrays)
  temporary.replace(output)
  return output


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(
    description="Convert an ICT-FaceKit FaceXModel folder to jaxface's compact face-area npz."
  )
  parser.add_argument("folder", help="the FaceXModel folder (with vertex_indices.json)")
  parser.add_argument("output", help="npz file to write (must not exist)")
  args = parser.parse_args(argv)
  written = convert(args.folder, args.output)
  with np.load(written) as data:
    print(
      f"wrote {written}: {data['vertices'].shape[0]} vertices, {data['triangles'].shape[0]} "
      f"triangles, {data['identity_basis'].shape[0]} identity and "
      f"{data['expression_basis'].shape[0]} expression modes"
    )


def command() -> None:
  """The console entry point: a bad file or folder is one line on stderr and exit status 2."""
  cli.run_plain(main)


if __name__ == "__main__":
  command()
