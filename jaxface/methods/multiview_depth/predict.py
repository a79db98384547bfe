r"""multiview_depth on one photo: find the face, crop it as in training, predict its depth.

    python -m jaxface.methods.multiview_depth.predict --image=PHOTO --workdir=RUN \
        --output=DIR [--step=N] [--overwrite]

RUN is a trained multiview_depth run (config.json and checkpoints/); its
newest checkpoint that restores is used unless --step is given. DIR
receives (refused if they exist, unless --overwrite):

  crop.png        the aligned crop DepthNet saw (config.data.image_size)
  depth.png       DepthNet's normalised depth D' (eq. 7), brighter is nearer, 0 off the face
  normals.png     finite-difference normals of the depth (camera frame, RGB = (n + 1) / 2)
  face.obj        the face region as a mesh: every face pixel unprojected through
  face.ply        3DMMNet's camera at its depth, two triangles per pixel square
  overview.png    crop | depth | normals | the mesh rendered frontally and turned 30 deg
  result.json     detection and crop boxes, checkpoint step, mesh size, timings (ms)

Alignment is `jaxface.data.photos`': the LBP cascade's largest face,
turned into the landmark box the training data frame faces at (measured
analytically: the mean face at the nominal camera distance), then refined
once by 3DMMNet's projected landmarks on that first crop. A missing or
unreadable photo or run stops with one line on stderr and exit status 2,
and nothing is written.

Limits: the networks are trained on renders of a morphable model with
procedural albedo, so a real photo is out of distribution; the depth of a
real face is plausible at best. The crop is axis-aligned (roll is not
undone) and detection is frontal-only.
"""

from __future__ import annotations

import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image
from absl import flags

from jaxface import cli
from jaxface.data.multiview import focal_length
from jaxface.data.photos import (
  Framing,
  crop_image,
  detect_face,
  detection_box,
  framing_from_landmarks,
  read_image,
  refine_box,
)
from jaxface.geometry.transforms import euler_to_matrix
from jaxface.io.mesh import export_mesh
from jaxface.methods.multiview_depth import geometry
from jaxface.methods.multiview_depth.evaluation import predict
from jaxface.methods.multiview_depth.networks import Fit, State
from jaxface.render.render import render
from jaxface.render.shading import dc_only_coefficients
from jaxface.training import load_run

OUTPUT_FILES = (
  "crop.png", "depth.png", "normals.png", "face.obj", "face.mtl", "face.png", "face.ply",
  "overview.png", "result.json",
)  # fmt: skip
#: A pixel square is triangulated when its corners' depths differ by less than this many face
#: heights (larger jumps are silhouettes, not surface).
MAX_DEPTH_JUMP = 0.05


def training_framing(state: State, config) -> Framing:
  """Where the training data put a frontal face: the mean face's landmarks at the nominal camera."""
  size, height = config.data.image_size, state.arrays.face_height
  ki, ke = state.arrays.identity_basis.shape[0], state.arrays.expression_basis.shape[0]
  fit = Fit(
    jnp.zeros((1, ki)), jnp.zeros((1, ke)), jnp.eye(3)[None],
    jnp.asarray([[0.0, 0.0, -config.multiview.nominal_distance]]) * height,
  )  # fmt: skip
  landmarks = geometry.project_landmarks(state.arrays, fit, focal_length(size), size)
  return framing_from_landmarks(np.asarray(landmarks), size)


def depth_mesh(points: np.ndarray, face: np.ndarray, depth: np.ndarray, height: float):
  """A triangle mesh of the face pixels: (V, 3) vertices, (F, 3) triangles and the (H, W) bool
  map of the pixels that became vertices (those of at least one triangle).

  Args:
    points: (H, W, 3) every pixel's 3D point; face: (H, W) bool; depth: (H, W) camera depth.
    height: the face height (the unit of `MAX_DEPTH_JUMP`).
  """
  ids = np.full(face.shape, -1, np.int64)
  ids[face] = np.arange(face.sum())
  corners = np.stack([ids[:-1, :-1], ids[:-1, 1:], ids[1:, 1:], ids[1:, :-1]], -1)  # (H-1, W-1, 4)
  quad_depth = np.stack([depth[:-1, :-1], depth[:-1, 1:], depth[1:, 1:], depth[1:, :-1]], -1)
  keep = (corners >= 0).all(-1) & (np.ptp(quad_depth, axis=-1) < MAX_DEPTH_JUMP * height)
  quads = corners[keep]  # (Q, 4): top-left, top-right, bottom-right, bottom-left
  # Counter-clockwise seen from the camera (image y points down, camera y up).
  triangles = np.concatenate([quads[:, [0, 3, 2]], quads[:, [0, 2, 1]]])
  used = np.zeros(face.shape, bool)
  used[face] = np.isin(np.arange(face.sum()), triangles)
  renumber = np.cumsum(used[face]) - 1  # old vertex id -> id among the used ones
  return points[used].astype(np.float32), renumber[triangles].astype(np.int32), used


def _png(path: pathlib.Path, image: np.ndarray) -> None:
  PIL.Image.fromarray((np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)).save(path)


def _shaded_views(vertices, triangles, fit_camera, size: int) -> list[np.ndarray]:
  """The mesh under a frontal white light, from its own camera and turned 30 degrees."""
  views = []
  for yaw in (0.0, 30.0):
    turn = euler_to_matrix(jnp.deg2rad(jnp.array([0.0, yaw, 0.0])))
    camera = fit_camera._replace(rotation=fit_camera.rotation @ turn)
    out = render(
      jnp.asarray(vertices), triangles, camera, (size, size), uv=jnp.zeros((1, 2)),
      triangle_uv=jnp.zeros_like(jnp.asarray(triangles)), albedo=jnp.full((1, 1, 3), 0.8),
      sh_coefficients=dc_only_coefficients(1.0).at[jnp.array([2, 11, 20])].set(0.6),
      near=1.0, far=10_000.0,
    )  # fmt: skip
    views.append(np.asarray(out.image))
  return views


def predict_photo(image, workdir, output, *, step=None, overwrite: bool = False) -> dict:
  """The command: predicts the depth of the face in `image` with the run `workdir`, writes
  `OUTPUT_FILES` into `output` and returns result.json's content."""
  started = time.perf_counter()
  timings = {}

  def lap(name: str, since: float) -> float:
    now = time.perf_counter()
    timings[f"{name}_ms"] = round(1000 * (now - since), 1)
    return now

  image, output = pathlib.Path(image), pathlib.Path(output)
  cli.check_outputs(output, OUTPUT_FILES, overwrite)
  photo = read_image(image)
  now = lap("read", started)
  run = load_run(workdir, step, method="multiview_depth", num_devices=1)
  config, state = run.config, run.state
  size = config.data.image_size
  framing = training_framing(state, config)
  now = lap("restore", now)

  detection = detect_face(photo, f"image {image}")
  detected = detection_box(detection, framing)
  crop = crop_image(photo, detected, size)
  batch = config.multiview.eval.batch_size
  padded = lambda c: jnp.asarray(np.repeat(c[None], batch, axis=0))
  out = jax.device_get(predict(state, padded(crop), config))
  focal = focal_length(size)
  fitted = Fit(*(np.asarray(field)[:1] for field in out["fit"]))
  landmarks = np.asarray(geometry.project_landmarks(state.arrays, fitted, focal, size))[0]
  refined = refine_box(detected, landmarks, size, framing)
  box = detected if refined is None else refined
  if refined is not None:
    crop = crop_image(photo, box, size)
    out = jax.device_get(predict(state, padded(crop), config))
    fitted = Fit(*(np.asarray(field)[:1] for field in out["fit"]))
  now = lap("predict", now)

  normalized, face = out["depth"][0], out["face"][0]
  metric = out["metric_depth"][0]
  normals, _ = geometry.depth_normals(
    jnp.asarray(metric[None]), jnp.asarray(face[None]), focal, size
  )
  normals = np.where(face[..., None], (np.asarray(normals)[0] + 1.0) / 2.0, 0.0)
  camera = jax.tree.map(lambda x: x[0], geometry.cameras(
    jnp.asarray(fitted.rotation), jnp.asarray(fitted.translation), focal, size
  ))  # fmt: skip
  rows, cols = np.mgrid[0:size, 0:size] + 0.5
  pixels = jnp.asarray(np.stack([cols, rows], -1).reshape(-1, 2))
  points = np.asarray(camera.unproject(pixels, jnp.asarray(metric.reshape(-1)))).reshape(
    size, size, 3
  )
  vertices, triangles, used = depth_mesh(points, face, metric, float(state.arrays.face_height))
  now = lap("mesh", now)

  output.mkdir(parents=True, exist_ok=True)
  grey = lambda d: np.repeat(d[..., None], 3, axis=-1)
  _png(output / "crop.png", crop)
  _png(output / "depth.png", grey(normalized * face))
  _png(output / "normals.png", normals)
  uv = np.stack([cols[used] / size, 1.0 - rows[used] / size], -1)  # (V, 2): the crop's texel
  for name in ("face.obj", "face.ply"):  # textured by the crop (PLY: as vertex colours)
    export_mesh(output / name, vertices, triangles, uv=uv, texture=crop, overwrite=True)
  views = _shaded_views(vertices, triangles, camera, size) if len(triangles) else []
  _png(output / "overview.png", np.concatenate([crop, grey(normalized * face), normals, *views], 1))
  lap("write", now)
  result = {
    "image": str(image), "workdir": str(workdir), "step": int(run.step),
    "detection": dict(zip(("x", "y", "width", "height"), map(int, detection), strict=True)),
    "crop": {"x": box.x, "y": box.y, "size": box.size}, "refined": refined is not None,
    "face_pixels": int(face.sum()), "vertices": len(vertices), "triangles": len(triangles),
    "timings": timings,
  }  # fmt: skip
  (output / "result.json").write_text(json.dumps(result, indent=2) + "\n")
  return result


def main() -> None:
  """The command line (flags defined here, not at import)."""
  image = flags.DEFINE_string("image", None, "The photo (any format Pillow reads).")
  workdir = flags.DEFINE_string("workdir", None, "The trained multiview_depth run.")
  output = flags.DEFINE_string("output", None, "Folder for the results.")
  step = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest that restores).")
  overwrite = flags.DEFINE_bool("overwrite", False, "Replace existing outputs.")
  flags.mark_flags_as_required(["image", "workdir", "output"])

  def run_from_flags(argv):
    del argv
    result = predict_photo(image.value, workdir.value, output.value, step=step.value,
                           overwrite=overwrite.value)  # fmt: skip
    print(
      f"wrote {output.value}: {result['face_pixels']} face pixels, mesh of "
      f"{result['vertices']} vertices / {result['triangles']} triangles (step {result['step']})"
    )

  cli.run(run_from_flags)


if __name__ == "__main__":
  main()
