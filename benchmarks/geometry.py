"""Geometry and face-model benchmark: prints a table (not a test).

    python benchmarks/geometry.py            # ICT rows need $JAXFACE_DATA or ../shared/data

Rows: jitted vertex normals and cotangent-Laplacian energy (+ gradient, the
decoupled GAN's lambda4 term) on batches of face meshes, the linear model's
`shape()`, and the once-per-topology host work (procedural model build,
ICT loading, harmonic UV).
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import matmul_yardstick_ms, print_table, time_call

from jaxface.geometry import cotangent_laplacian, harmonic_uv, vertex_normals
from jaxface.morphable import load
from jaxface.morphable.procedural import _build


def _ict_path() -> pathlib.Path | None:
  root = os.environ.get("JAXFACE_DATA")
  root = (
    pathlib.Path(root) if root else pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
  )
  path = root / "ict-facekit" / "ict_face_area.npz"
  return path if path.exists() else None


def _once_ms(function) -> float:
  start = time.perf_counter()
  function()
  return 1e3 * (time.perf_counter() - start)


def mesh_rows(model, label: str, batch: int = 64) -> list[dict]:
  rng = np.random.default_rng(0)
  identity = jnp.asarray(rng.standard_normal((batch, model.num_identity)), jnp.float32)
  shape = jax.jit(lambda i: model.shape(i))
  vertices = shape(identity)
  triangles = jnp.asarray(model.triangles)
  template = cotangent_laplacian(model.vertices, model.triangles)
  normals = jax.jit(lambda v: vertex_normals(v, triangles))
  energy = jax.jit(jax.value_and_grad(lambda v: jnp.sum(template.apply(v) ** 2)))
  setting = f"B={batch}, V={model.num_vertices}"
  return [
    {
      "what": f"{label}: model.shape (Ki={model.num_identity})",
      "setting": setting,
      "ms": time_call(lambda: shape(identity)),
    },
    {
      "what": f"{label}: vertex_normals",
      "setting": setting,
      "ms": time_call(lambda: normals(vertices)),
    },
    {
      "what": f"{label}: |L v|^2 value + grad (template L)",
      "setting": setting,
      "ms": time_call(lambda: energy(vertices)),
    },
  ]


def main() -> None:
  yardstick = matmul_yardstick_ms()
  rows = [
    {
      "what": "procedural model build (host, uncached)",
      "setting": "V=7857, 256x256 albedo",
      "ms": _once_ms(lambda: _build.__wrapped__(50, 20, (256, 256))),
    }
  ]
  rows += mesh_rows(load("procedural"), "procedural")
  ict = _ict_path()
  if ict is None:
    print("ICT-FaceKit not found: ICT rows skipped (set JAXFACE_DATA)")
  else:
    rows.append(
      {
        "what": "ICT load from npz (host, incl. albedo)",
        "setting": "face area",
        "ms": _once_ms(lambda: load(ict)),
      }
    )
    model = load(ict)
    rows += mesh_rows(model, "ICT face")
    rows.append(
      {
        "what": "harmonic_uv (mean-value, host)",
        "setting": "ICT face, 18460 triangles",
        "ms": _once_ms(lambda: harmonic_uv(model.vertices, model.triangles)),
      }
    )
  print_table("jaxface geometry benchmark", rows, yardstick)


if __name__ == "__main__":
  main()
