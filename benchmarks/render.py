"""Renderer benchmark: prints tables (not a test).

    python benchmarks/render.py            # needs ICT-FaceKit via $JAXFACE_DATA or ../shared/data
    python benchmarks/render.py --quick    # fewer rows

Rows (ICT face area, 18,460 triangles, perspective camera, random poses):
- rasterize + perspective-correct barycentrics + interpolation of a
  per-vertex colour, forward and forward+backward, ms per image, at 224 and
  256 px and batch 1/8/32, with compile time and XLA's peak memory;
- lax.map vs vmap over the batch;
- the dense all-pixels x all-triangles JAX formulation where it fits, and
  the ratio;
- memory as the triangle count grows 4x at a fixed image size;
- the candidate budget's worst use over poses from 32 to 1024 px;
- the geometry-mapping layer at 64x64, batch 64.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import machine_line, matmul_yardstick_ms, time_call

from jaxface.geometry import PerspectiveCamera, euler_to_matrix, focal_from_fov
from jaxface.morphable import load
from jaxface.render import (
  candidate_count,
  default_max_candidates,
  geometry_image,
  geometry_image_lookup,
  interpolate,
  rasterize,
)


def _ict_path() -> pathlib.Path:
  root = os.environ.get("JAXFACE_DATA")
  root = (
    pathlib.Path(root) if root else pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
  )
  path = root / "ict-facekit" / "ict_face_area.npz"
  if not path.exists():
    sys.exit(f"ICT-FaceKit not found at {path}: set JAXFACE_DATA")
  return path


def cameras(batch: int, size: int, seed: int = 0, distance=(65.0, 80.0), yaw: float = 0.6):
  rng = np.random.default_rng(seed)
  focal = float(focal_from_fov(20.0, size))
  angles = rng.uniform([-0.3, -yaw, -0.2], [0.3, yaw, 0.2], (batch, 3))
  return PerspectiveCamera(
    jnp.full((batch, 2), focal),
    jnp.full((batch, 2), size / 2),
    euler_to_matrix(jnp.asarray(angles, jnp.float32)),
    jnp.asarray(
      np.stack([np.zeros(batch), np.zeros(batch), -rng.uniform(*distance, batch)], 1), jnp.float32
    ),
  )


def make_pipeline(triangles, colours, size, batch_mode="map", max_candidates=None):
  def images(vertices, camera):
    clip = jax.vmap(lambda c: c.to_clip(vertices, (size, size), 10.0, 200.0))(camera)
    fragments = rasterize(
      clip, triangles, (size, size), batch_mode=batch_mode, max_candidates=max_candidates
    )
    return interpolate(colours, fragments, triangles)  # (B, H, W, 3)

  forward = jax.jit(images)
  backward = jax.jit(jax.grad(lambda v, c: jnp.sum(images(v, c) * jnp.array([0.3, 0.5, 0.2]))))
  return forward, backward


def peak_mib(jitted, *args) -> float:
  analysis = jitted.lower(*args).compile().memory_analysis()
  total = (
    analysis.temp_size_in_bytes + analysis.output_size_in_bytes + analysis.argument_size_in_bytes
  )
  return total / 2**20


def compile_seconds(jitted, *args) -> float:
  start = time.perf_counter()
  jitted.lower(*args).compile()
  return time.perf_counter() - start


def dense_pipeline(triangles, colours, size):
  """Every pixel against every triangle at once: O(H*W*F) memory."""
  triangles = jnp.asarray(triangles)

  def image(vertices, camera):
    clip = camera.to_clip(vertices, (size, size), 10.0, 200.0)
    w = clip[:, 3]
    x = (clip[:, 0] / w + 1) * size / 2
    y = (1 - clip[:, 1] / w) * size / 2
    z = clip[:, 2] / w
    tx, ty, tz, tw = x[triangles], y[triangles], z[triangles], w[triangles]  # (F, 3)
    py, px = jnp.meshgrid(jnp.arange(size) + 0.5, jnp.arange(size) + 0.5, indexing="ij")
    px, py = px.reshape(-1, 1), py.reshape(-1, 1)  # (P, 1)
    edges = []
    for k in range(3):
      a, b = (k + 1) % 3, (k + 2) % 3
      edges.append(
        (tx[:, b] - tx[:, a]) * (py - ty[:, a]) - (ty[:, b] - ty[:, a]) * (px - tx[:, a])
      )
    edges = jnp.stack(edges, -1)  # (P, F, 3)
    area = jnp.sum(edges, -1)
    screen = edges / jnp.where(area == 0, 1.0, area)[..., None]
    inside = jnp.all(screen >= 0, -1) & (area != 0)
    depth = jnp.where(inside, jnp.sum(screen * tz, -1), jnp.inf)  # (P, F)
    winner = jnp.argmin(depth, axis=1)  # (P,)
    covered = jnp.isfinite(jnp.min(depth, axis=1))
    weights = jnp.take_along_axis(screen, winner[:, None, None], 1)[:, 0] / tw[winner]
    weights = weights / jnp.sum(weights, -1, keepdims=True)
    values = jnp.einsum("pk,pkc->pc", weights, colours[triangles[winner]])
    return jnp.where(covered[:, None], values, 0.0).reshape(size, size, 3)

  forward = jax.jit(image)
  backward = jax.jit(jax.grad(lambda v, c: jnp.sum(image(v, c) * jnp.array([0.3, 0.5, 0.2]))))
  return forward, backward


def subdivide(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Midpoint subdivision: 4x the triangles, same surface."""
  edges = np.sort(
    np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1
  )
  unique, inverse = np.unique(edges, axis=0, return_inverse=True)
  mids = len(vertices) + inverse.reshape(3, -1).T  # (F, 3): midpoints of edges 01, 12, 20
  new_vertices = np.concatenate([vertices, vertices[unique].mean(axis=1)])
  a, b, c = triangles.T
  m01, m12, m20 = mids.T
  new_triangles = np.concatenate(
    [np.stack(t, 1) for t in ((a, m01, m20), (m01, b, m12), (m20, m12, c), (m01, m12, m20))]
  )
  return new_vertices.astype(np.float32), new_triangles.astype(np.int32)


def table(title: str, header: list[str], rows: list[list], yardstick: float) -> None:
  print(f"\n### {title}\n")
  print("| " + " | ".join(header) + " |")
  print("|" + "|".join("---" for _ in header) + "|")
  for row in rows:
    print("| " + " | ".join(str(cell) for cell in row) + " |")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="only 224 px, batch 8")
  args = parser.parse_args()
  model = load(_ict_path())
  triangles = np.asarray(model.triangles)
  vertices = jnp.asarray(model.vertices) - jnp.asarray(model.vertices).mean(0)
  colours = jnp.asarray(
    np.random.default_rng(0).uniform(0, 1, (model.num_vertices, 3)), jnp.float32
  )
  yardstick = matmul_yardstick_ms()
  print("## jaxface renderer benchmark\n")
  print(machine_line())
  print(f"\n1024x1024 float32 matmul: {yardstick:.2f} ms (figures in brackets are multiples of it)")

  rows = []
  sizes = [224] if args.quick else [224, 256]
  batches = [8] if args.quick else [1, 8, 32]
  for size in sizes:
    for batch in batches:
      camera = cameras(batch, size)
      forward, backward = make_pipeline(triangles, colours, size)
      compile_s = compile_seconds(backward, vertices, camera)
      fwd = time_call(forward, vertices, camera, repeats=5) / batch
      both = time_call(backward, vertices, camera, repeats=5) / batch
      memory = peak_mib(backward, vertices, camera)
      rows.append(
        [f"{size}x{size}", batch, f"{fwd:.1f} [{fwd / yardstick:.2f}]",
         f"{both:.1f} [{both / yardstick:.2f}]", f"{compile_s:.1f}", f"{memory:.0f}"]
      )  # fmt: skip
  table(
    "ICT face area (18,460 triangles): rasterize + barycentrics + interpolation, "
    "lax.map over the batch",
    [
      "image",
      "batch",
      "forward ms/image",
      "fwd+bwd ms/image",
      "compile s (fwd+bwd)",
      "peak MiB (fwd+bwd)",
    ],
    rows,
    yardstick,
  )

  rows = []
  camera = cameras(8, 224)
  for mode in ("map", "vmap"):
    forward, backward = make_pipeline(triangles, colours, 224, batch_mode=mode)
    fwd = time_call(forward, vertices, camera, repeats=5) / 8
    both = time_call(backward, vertices, camera, repeats=5) / 8
    rows.append([mode, f"{fwd:.1f}", f"{both:.1f}", f"{peak_mib(backward, vertices, camera):.0f}"])
  table(
    "Batching at 224x224, batch 8",
    ["batch_mode", "forward ms/image", "fwd+bwd ms/image", "peak MiB"],
    rows,
    yardstick,
  )

  rows = []
  for size in (32, 64):
    camera = cameras(1, size)
    single = jax.tree_util.tree_map(lambda x: x[0], camera)
    _, dense_bwd = dense_pipeline(triangles, colours, size)
    _, ours_bwd = make_pipeline(triangles, colours, size)
    dense = time_call(dense_bwd, vertices, single, repeats=3)
    ours = time_call(ours_bwd, vertices, camera, repeats=5)
    dense_memory = peak_mib(dense_bwd, vertices, single)
    ours_memory = peak_mib(ours_bwd, vertices, camera)
    rows.append(
      [f"{size}x{size}", f"{dense:.1f}", f"{dense_memory:.0f}", f"{ours:.1f}", f"{ours_memory:.0f}",
       f"{dense / ours:.0f}x"]
    )  # fmt: skip
  table(
    "Dense all-pixels x all-triangles formulation vs jaxface, fwd+bwd, batch 1",
    ["image", "dense ms", "dense peak MiB", "jaxface ms", "jaxface peak MiB", "speed-up"],
    rows,
    yardstick,
  )

  rows = []
  fine_vertices, fine_triangles = subdivide(np.asarray(vertices), triangles)
  fine_colours = jnp.asarray(
    np.random.default_rng(1).uniform(0, 1, (len(fine_vertices), 3)), jnp.float32
  )
  camera = cameras(8, 224)
  meshes = (
    ("ICT face", vertices, triangles, colours),
    ("ICT face subdivided", jnp.asarray(fine_vertices), fine_triangles, fine_colours),
  )
  for label, v, t, c in meshes:
    _, backward = make_pipeline(t, c, 224)
    both = time_call(backward, v, camera, repeats=3) / 8
    rows.append([label, len(t), f"{both:.1f}", f"{peak_mib(backward, v, camera):.0f}"])
  for batch, size in ((8, 112), (8, 224), (32, 224), (8, 448)):
    forward, backward = make_pipeline(triangles, colours, size)
    camera = cameras(batch, size)
    rows.append(
      [
        f"ICT face, B={batch}, {size}x{size}",
        len(triangles),
        "",
        f"{peak_mib(backward, vertices, camera):.0f}",
      ]
    )
  table(
    "Memory grows with B*H*W, not with the triangle count (fwd+bwd; 224x224, batch 8 unless noted)",
    ["mesh", "triangles", "fwd+bwd ms/image", "peak MiB"],
    rows,
    yardstick,
  )

  rows = []
  count = jax.jit(candidate_count, static_argnums=(2,))
  for size in (32, 64, 128, 224, 512, 1024):
    worst = 0
    for seed in range(12):
      # From a small face to a close-up larger than the frame, turned up to 70 degrees.
      camera = cameras(1, size, seed=seed, distance=(45.0, 160.0), yaw=1.2)
      clip = jax.tree_util.tree_map(lambda x: x[0], camera).to_clip(
        vertices, (size, size), 1.0, 1000.0
      )
      worst = max(worst, int(count(clip, triangles, (size, size))))
    budget = default_max_candidates((size, size), len(triangles))
    rows.append([f"{size}x{size}", worst, budget, f"{worst / budget:.2f}"])
  table(
    "Candidate budget on the ICT face (12 random poses and distances each)",
    ["image", "worst candidates", "default budget", "worst / budget"],
    rows,
    yardstick,
  )

  lookup = geometry_image_lookup(triangles, model.uv, model.triangle_uv, 64)
  batch_vertices = vertices + 0.1 * jax.random.normal(jax.random.PRNGKey(0), (64, *vertices.shape))
  layer = jax.jit(lambda v: geometry_image(v, lookup))
  layer_grad = jax.jit(jax.grad(lambda v: jnp.sum(geometry_image(v, lookup) ** 2)))
  forward = time_call(layer, batch_vertices)
  both = time_call(layer_grad, batch_vertices)
  table(
    "Geometry-mapping layer, 64x64, batch 64, ICT face area",
    ["forward ms (batch)", "fwd+bwd ms (batch)"],
    [[f"{forward:.2f} [{forward / yardstick:.2f}]", f"{both:.2f} [{both / yardstick:.2f}]"]],
    yardstick,
  )


if __name__ == "__main__":
  main()
