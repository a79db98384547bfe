"""Quick-look pictures of a morphable model: mean face, identity modes, expressions.

Faces are drawn with jaxface's own renderer (perspective camera, SH light,
the model's UV albedo), for README figures and notebooks.

    python -m jaxface.morphable.preview --model procedural --output docs/images/procedural.png
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from jaxface import cli
from jaxface.geometry.camera import PerspectiveCamera, focal_from_fov
from jaxface.geometry.transforms import euler_to_matrix
from jaxface.morphable.model import MorphableModel
from jaxface.render.render import render
from jaxface.render.shading import DC_FACTOR, sh_basis

PANEL_SIZE = 256


def directional_light(
  direction=(0.3, 0.4, 1.0), ambient: float = 0.5, diffuse: float = 0.5
) -> np.ndarray:
  """(27,) SH coefficients of white light: ambient + diffuse * (n . direction)."""
  direction = np.asarray(direction, np.float64) / np.linalg.norm(direction)
  band_one = float(np.asarray(sh_basis(jnp.array([0.0, 0.0, 1.0])))[2])  # a1 c1
  gamma = np.zeros(9)
  gamma[0] = ambient / DC_FACTOR
  gamma[1], gamma[2], gamma[3] = -direction[1], direction[2], -direction[0]
  gamma[1:4] *= diffuse / band_one
  return np.tile(gamma, 3).astype(np.float32)


_RENDERERS: dict[int, tuple[MorphableModel, object]] = {}


def _renderer(model: MorphableModel):
  """A jitted (vertices, albedo, yaw) -> (H, W, 3) image for one model, compiled once per model."""
  cached = _RENDERERS.get(id(model))
  if cached is not None and cached[0] is model:
    return cached[1]
  draw = _build_renderer(model)
  _RENDERERS[id(model)] = (model, draw)
  return draw


def _build_renderer(model: MorphableModel):
  extent = float(np.max(np.ptp(np.asarray(model.vertices), axis=0)))
  centre = jnp.asarray(np.asarray(model.vertices).mean(axis=0))
  distance = 4.0 * extent
  focal = float(focal_from_fov(np.rad2deg(2 * np.arctan(0.62 * extent / distance)), PANEL_SIZE))
  light = directional_light()

  @jax.jit
  def draw(vertices, albedo, yaw):
    camera = PerspectiveCamera(
      jnp.array([focal, focal]),
      jnp.array([PANEL_SIZE / 2, PANEL_SIZE / 2]),
      euler_to_matrix(jnp.stack([0.0, yaw, 0.0])),
      jnp.array([0.0, 0.0, -distance]),
    )
    out = render(
      vertices - centre, model.triangles, camera, (PANEL_SIZE, PANEL_SIZE), uv=model.uv,
      triangle_uv=model.triangle_uv, albedo=albedo, sh_coefficients=light, background=1.0,
      near=0.1 * distance, far=10.0 * distance,
    )  # fmt: skip
    return jnp.clip(out.image, 0.0, 1.0) ** (1 / 2.2)  # linear -> display gamma

  return draw


def draw_face(
  ax: plt.Axes,
  model: MorphableModel,
  vertices: np.ndarray,
  albedo: np.ndarray | None = None,
  yaw_degrees: float = 0.0,
) -> None:
  """Renders one face into `ax`.

  Args:
    ax: matplotlib axes.
    model: supplies triangles, UVs and the mean albedo.
    vertices: (V, 3) shape to draw.
    albedo: (Hu, Wu, 3) UV albedo; the model's mean albedo by default.
    yaw_degrees: head turn towards the face's own left.
  """
  albedo = np.asarray(model.albedo_mean if albedo is None else albedo, np.float32)
  image = _renderer(model)(
    jnp.asarray(vertices, jnp.float32), albedo, jnp.float32(np.deg2rad(yaw_degrees))
  )
  ax.imshow(np.asarray(image))
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


def command() -> None:
  """The console entry point: a bad file or folder is one line on stderr and exit status 2."""
  cli.run_plain(main)


if __name__ == "__main__":
  command()
