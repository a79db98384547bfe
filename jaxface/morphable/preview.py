"""Quick-look pictures of a morphable model: mean face, identity modes, expressions.

A small matplotlib painter's-algorithm renderer (orthographic, Lambertian,
albedo from the model's UV texture), for README figures and notebooks.

    python -m jaxface.morphable.preview --model procedural --output docs/images/procedural.png
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import PolyCollection

from jaxface.geometry.mesh import face_normals
from jaxface.geometry.transforms import euler_to_matrix
from jaxface.morphable.model import MorphableModel


def draw_face(
  ax: plt.Axes,
  model: MorphableModel,
  vertices: np.ndarray,
  albedo: np.ndarray | None = None,
  yaw_degrees: float = 0.0,
  light: tuple[float, float, float] = (0.3, 0.4, 1.0),
) -> None:
  """Draws one shaded face into `ax`.

  Args:
    ax: matplotlib axes.
    model: supplies triangles and UVs.
    vertices: (V, 3) shape to draw.
    albedo: (Hu, Wu, 3) UV albedo; the model's mean albedo by default.
    yaw_degrees: head turn towards the face's own left.
    light: direction towards the light, in view space.
  """
  albedo = np.asarray(model.albedo_mean if albedo is None else albedo)
  rotation = np.asarray(euler_to_matrix(np.array([0.0, np.deg2rad(yaw_degrees), 0.0])))
  posed = np.asarray(vertices, np.float64) @ rotation.T
  triangles = np.asarray(model.triangles)
  normals = np.asarray(face_normals(posed, triangles))  # (F, 3)
  light = np.asarray(light) / np.linalg.norm(light)
  shading = 0.25 + 0.75 * np.clip(normals @ light, 0.0, 1.0)  # (F,)
  centroid_uv = np.asarray(model.uv)[np.asarray(model.triangle_uv)].mean(axis=1)  # (F, 2)
  height, width, _ = albedo.shape
  rows = np.clip(((1.0 - centroid_uv[:, 1]) * height).astype(int), 0, height - 1)
  cols = np.clip((centroid_uv[:, 0] * width).astype(int), 0, width - 1)
  colours = np.clip(albedo[rows, cols] * shading[:, None], 0.0, 1.0) ** (1 / 2.2)  # sRGB-ish
  visible = normals[:, 2] > 0
  depth = posed[triangles, 2].mean(axis=1)
  order = np.argsort(depth[visible])
  polygons = posed[triangles[visible][order]][..., :2]
  ax.add_collection(
    PolyCollection(
      polygons, facecolors=colours[visible][order], edgecolors="none", antialiased=False
    )
  )
  ax.set_xlim(posed[:, 0].min() - 0.5, posed[:, 0].max() + 0.5)
  ax.set_ylim(posed[:, 1].min() - 0.5, posed[:, 1].max() + 0.5)
  ax.set_aspect("equal")
  ax.axis("off")


def gallery(
  model: MorphableModel, output: pathlib.Path, expressions: tuple[str, ...] | None = None
) -> None:
  """Writes a PNG: mean face, +/-3 sigma of the first three identity modes, expressions."""
  if expressions is None:
    preferred = (
      "jawOpen",
      "mouthSmile_L",
      "eyeBlink_L",
      "browInnerUp",
      "browInnerUp_L",
      "mouthPucker",
      "cheekPuff",
      "cheekPuff_L",
    )
    expressions = tuple(name for name in preferred if name in model.expression_names)[:5]
  panels = [("mean", model.vertices, None)]
  for mode in range(min(3, model.num_identity)):
    for sign in (-3, 3):
      identity = np.zeros(model.num_identity, np.float32)
      identity[mode] = sign
      panels.append((f"id {mode} {sign:+d}σ", model.shape(identity), None))
  for name in expressions:
    panels.append((name, model.shape(expression=model.expression_vector(**{name: 1.0})), None))
  rng = np.random.default_rng(0)
  for k in range(2):
    identity = rng.standard_normal(model.num_identity).astype(np.float32)
    albedo = model.albedo(rng.standard_normal(model.num_albedo).astype(np.float32))
    panels.append((f"random {k}", model.shape(identity), np.clip(np.asarray(albedo), 0, 1)))
  columns = 7
  rows = -(-len(panels) // columns)
  figure, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.5 * rows))
  for ax in axes.ravel():
    ax.axis("off")
  for ax, (title, vertices, albedo) in zip(axes.ravel(), panels, strict=False):
    draw_face(ax, model, np.asarray(vertices), albedo, yaw_degrees=20.0)
    ax.set_title(title, fontsize=9)
  figure.suptitle(f"jaxface morphable model: {model.name}", fontsize=11)
  figure.tight_layout()
  output.parent.mkdir(parents=True, exist_ok=True)
  figure.savefig(output, dpi=80)
  plt.close(figure)


def main(argv: list[str] | None = None) -> None:
  from jaxface.morphable.loaders import load

  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="procedural", help="spec for jaxface.morphable.load")
  parser.add_argument("--output", type=pathlib.Path, required=True, help="PNG file to write")
  args = parser.parse_args(argv)
  gallery(load(args.model), args.output)
  print(f"wrote {args.output}")


if __name__ == "__main__":
  main()
