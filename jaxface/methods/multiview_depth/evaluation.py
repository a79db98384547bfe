"""Evaluation as in sec. V-B of Shu et al. (FG 2020), and the method's summaries.

On the real-like test faces (every rig view, emotion labels) three depth
sources are scored with the BU-3DFE protocol (`jaxface.metrics.depth`: one
dataset-wide scale and translation from 9 landmarks, ICP for closest-point
correspondences only, error in percent of the true depth range):

- `depthnet`: DepthNet's D', denormalised at the view's true camera-face
  distance (a single image cannot tell the absolute distance: see `_sources`);
- `3dmm_only`: the baseline, the depth rendered from 3DMMNet's fit, moved to
  the same true distance;
- `best_fit_3dmm`: the least-squares fit of the same 3DMM to the true mesh,
  rendered in the true camera: what no 3DMM of these modes can beat.

The Florence protocol (NME by the outer interocular distance) runs on the
Florence-style faces. The instruments of claim (3) are scored too: the
suitability map's AUC at finding specular pixels (score 1 - C) and the
occlusion mask's agreement with true co-visibility (from the true depths
and cameras) for the frontal camera paired with each other camera.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxface.data.multiview import EMOTION_NAMES, RIG, focal_length
from jaxface.methods.multiview_depth import geometry, networks, steps
from jaxface.methods.multiview_depth.networks import State
from jaxface.methods.protocol import frozen
from jaxface.metrics import depth as depth_metrics
from jaxface.render.texture import bilinear
from jaxface.render.warp import covisibility

#: iBUG-68 ids of the 9 alignment landmarks: eye corners, nose tip and wings, mouth corners.
ALIGNMENT_LANDMARKS = (36, 39, 42, 45, 30, 31, 35, 48, 54)
#: BU-3DFE's expression codes of the dataset's emotions (contempt is not in BU-3DFE).
EXPRESSION_CODES = {
  "anger": "AN", "disgust": "DI", "fear": "FE", "happiness": "HA", "neutral": "NE",
  "sadness": "SA", "surprise": "SU", "contempt": "CO",
}  # fmt: skip
FRONTAL_CAMERA = RIG.index((0, 0))
#: The depth tolerance of true co-visibility, in face heights (the true depths are exact).
TRUE_COVISIBILITY_TOLERANCE = 0.01


@functools.partial(jax.jit, static_argnames=("config",))
def predict(state: State, images: jax.Array, config: ml_collections.FrozenConfigDict) -> dict:
  """Every network on (N, H, W, 3) images in [0, 1].

  Returns {"depth": D' (N, H, W), "metric_depth": D (N, H, W), "face": (N, H, W) bool
  (D' > face_threshold), "suitability": C (N, H, W), "fit": the Fit, "fit_depth":
  D_S (N, H, W), "fit_mask": (N, H, W) bool}.
  """
  mv = config.multiview
  fit, fit_depth, fit_mask, _ = steps.frozen_fit(config, state, images)
  normalized = networks.depth(config, state.depth["params"], images)
  distance = geometry.camera_face_distance(fit.translation)
  return {
    "depth": normalized,
    "metric_depth": geometry.denormalize_depth(normalized, distance, mv.depth_a, mv.depth_c),
    "face": normalized > mv.face_threshold,
    "suitability": networks.suitability(config, state.suitability["params"], images),
    "fit": fit,
    "fit_depth": fit_depth,
    "fit_mask": fit_mask,
  }


def depth_points(depth: np.ndarray, mask: np.ndarray, focal: float) -> np.ndarray:
  """(P, 3) camera-frame points of the pixels of `mask` (H, W) at camera depths `depth` (H, W)."""
  size = depth.shape[0]
  rows, cols = np.nonzero(mask)
  d = depth[rows, cols]
  x = (cols + 0.5 - size / 2.0) / focal * d
  y = -(rows + 0.5 - size / 2.0) / focal * d
  return np.stack([x, y, -d], axis=-1).astype(np.float64)


def lift_landmarks(
  depth: np.ndarray, mask: np.ndarray, landmarks: np.ndarray, focal: float
) -> np.ndarray:
  """(L, 3) camera-frame points of 2D `landmarks` (L, 2) at the depth of `mask` (H, W) there.

  The depth is the bilinear average over the neighbouring pixels that lie
  on the mask (a landmark on a silhouette must not average in the
  background's 0), or the nearest mask pixel's where none does.
  """
  size = depth.shape[0]
  weight = np.asarray(mask, np.float64)
  x, y = jnp.asarray(landmarks[:, 0]), jnp.asarray(landmarks[:, 1])
  stacked = jnp.asarray(np.stack([depth * weight, weight], axis=-1))
  total, coverage = np.asarray(bilinear(stacked, x, y)).T
  d = total / np.maximum(coverage, 1e-9)
  rows, cols = np.nonzero(mask)
  if len(rows):
    for index in np.nonzero(coverage < 1e-6)[0]:
      nearest = np.argmin(
        (cols + 0.5 - landmarks[index, 0]) ** 2 + (rows + 0.5 - landmarks[index, 1]) ** 2
      )
      d[index] = depth[rows[nearest], cols[nearest]]
  px = (landmarks[:, 0] - size / 2.0) / focal * d
  py = -(landmarks[:, 1] - size / 2.0) / focal * d
  return np.stack([px, py, -d], axis=-1).astype(np.float64)


def _predict_all(state, images, config) -> dict[str, np.ndarray]:
  batch = config.multiview.eval.batch_size
  parts = []
  for start in range(0, len(images), batch):
    chunk = images[start : start + batch]
    padded = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)])
    out = predict(state, jnp.asarray(padded), config)
    out = {**out, "rotation": out["fit"].rotation, "translation": out["fit"].translation}
    del out["fit"]
    parts.append({k: np.asarray(v)[: len(chunk)] for k, v in out.items()})
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _read(source) -> dict[str, np.ndarray]:
  examples = [source[i] for i in range(len(source))]
  return {k: np.stack([np.asarray(e[k]) for e in examples]) for k in examples[0]}


def _camera_landmarks(faces, views: int) -> np.ndarray:
  """(N * V, 68, 3) true landmarks in each view's camera frame."""
  points = np.einsum("nvij,nlj->nvli", faces["rotation"], faces["landmarks_3d"])
  return (points + faces["translation"][:, :, None, :]).reshape(-1, 68, 3)


def _image_positions(points: np.ndarray, focal: float, size: int) -> np.ndarray:
  """(..., 2) pixels of camera-frame points (..., 3)."""
  depth = -points[..., 2]
  x = size / 2.0 + focal * points[..., 0] / depth
  y = size / 2.0 - focal * points[..., 1] / depth
  return np.stack([x, y], axis=-1)


def _sources(faces, predictions, config):
  """{name: (depths (M, H, W), masks (M, H, W))} of the three scored depth sources.

  Each is placed at the view's true camera-face distance xi_V: DepthNet
  predicts depth relative to the nose tip (eq. 7) and a single image cannot
  tell the absolute distance, and one dataset-wide translation (the
  protocol's alignment) cannot undo a per-face distance error. 3DMMNet's own
  distance error is reported apart (`pose/distance_error_pct`).
  """
  mv, size = config.multiview, config.data.image_size
  true_mask = faces["mask"].reshape(-1, size, size) > 0
  fit_depth = faces["fit_depth"].reshape(-1, size, size)
  distance = -faces["translation"].reshape(-1, 3)[:, 2]  # (M,) the true xi_V
  fit_distance = -predictions["translation"][:, 2]
  depthnet = (predictions["depth"] - mv.depth_c) / mv.depth_a + distance[:, None, None]
  moved_fit = predictions["fit_depth"] + (distance - fit_distance)[:, None, None]
  # Scored within the true face region, as the protocol compares "within the face region":
  # DepthNet's D' is dense (its background is only pushed towards 0 by eq. 10), a 3DMM render
  # covers what its mesh covers.
  return {
    "depthnet": (depthnet, true_mask),
    "3dmm_only": (moved_fit, predictions["fit_mask"] & true_mask),
    "best_fit_3dmm": (fit_depth, (fit_depth > 0) & true_mask),
  }


def _protocol_errors(faces, predictions, config, name_prefix: str, florence: bool) -> dict:
  size = config.data.image_size
  focal = focal_length(size)
  views = faces["image"].shape[1]
  true_depth = faces["depth"].reshape(-1, size, size)
  true_mask = faces["mask"].reshape(-1, size, size) > 0
  true_landmarks = _camera_landmarks(faces, views)
  # The annotated 2D positions (BU-3DFE's landmarks are annotations, not detections).
  annotated = _image_positions(true_landmarks[:, ALIGNMENT_LANDMARKS], focal, size)
  true_points = [depth_points(d, m, focal) for d, m in zip(true_depth, true_mask, strict=True)]
  iterations = config.multiview.eval.icp_iterations
  labels = np.repeat(faces["emotion"], views)
  codes = [EXPRESSION_CODES.get(EMOTION_NAMES[e], str(e)) if e >= 0 else "none" for e in labels]
  metrics = {}
  for name, (depths, masks) in _sources(faces, predictions, config).items():
    if florence and name == "best_fit_3dmm":
      continue  # the Florence faces are neutral: no fit is stored for them
    points = [depth_points(d, m, focal) for d, m in zip(depths, masks, strict=True)]
    usable = [len(p) >= 3 for p in points]
    metrics[f"{name_prefix}/{name}/coverage"] = float(np.mean(usable))
    keep = np.nonzero(usable)[0]
    if len(keep) == 0:
      continue
    lifted = np.stack([lift_landmarks(depths[i], masks[i], annotated[i], focal) for i in keep])
    if florence:
      scale, shift = depth_metrics.fit_scale_translation(
        lifted, true_landmarks[keep][:, ALIGNMENT_LANDMARKS]
      )
      moved = [depth_metrics.apply_scale_translation(points[i], scale, shift) for i in keep]
      corners = true_landmarks[keep][:, depth_metrics.OUTER_EYE_CORNER_IDS]
      nme = depth_metrics.florence_nme(moved, [true_points[i] for i in keep], corners, iterations)
      metrics[f"{name_prefix}/{name}/nme"] = float(nme.mean())
      continue
    errors = depth_metrics.bu3dfe_errors(
      [points[i] for i in keep], [true_points[i] for i in keep], lifted,
      true_landmarks[keep][:, ALIGNMENT_LANDMARKS], iterations,
    )  # fmt: skip
    report = depth_metrics.bu3dfe_report(errors, [codes[i] for i in keep])
    for stat, value in report["all"].items():
      metrics[f"{name_prefix}/{name}/{stat}"] = value
    for code, value in report["per_expression"].items():
      metrics[f"{name_prefix}/{name}/{code}"] = value
  return metrics


def _instrument_metrics(faces, predictions, config, face_height: float) -> dict:
  """Suitability vs specular pixels and the occlusion mask vs true co-visibility."""
  size = config.data.image_size
  focal = focal_length(size)
  views = faces["image"].shape[1]
  true_mask = faces["mask"].reshape(-1, size, size) > 0
  metrics = {}
  specular = faces["specular"].reshape(-1, size, size) > 0
  if (
    config.multiview.use_suitability and specular[true_mask].any() and not specular[true_mask].all()
  ):
    metrics["suitability/specular_auc"] = depth_metrics.roc_auc(
      1.0 - predictions["suitability"], specular, where=true_mask
    )
  cameras = lambda r, t: geometry.cameras(jnp.asarray(r), jnp.asarray(t), focal, size)
  shape = lambda a: a.reshape(len(faces["image"]), views, *a.shape[1:])
  rotation, translation = shape(predictions["rotation"]), shape(predictions["translation"])
  fit_depth, fit_mask = shape(predictions["fit_depth"]), shape(predictions["fit_mask"])
  true_depth = faces["depth"]
  threshold = float(config.multiview.occlusion_threshold / abs(config.multiview.depth_a))
  tolerance = TRUE_COVISIBILITY_TOLERANCE * face_height
  first = FRONTAL_CAMERA
  agreements = []
  for other in range(views):
    if other == first:
      continue
    estimate = jax.vmap(covisibility, in_axes=(0, 0, 0, 0, None, 0, 0))(
      jnp.asarray(fit_depth[:, first]), jnp.asarray(fit_depth[:, other]),
      cameras(rotation[:, first], translation[:, first]),
      cameras(rotation[:, other], translation[:, other]), threshold,
      jnp.asarray(fit_mask[:, first]), jnp.asarray(fit_mask[:, other]),
    )  # fmt: skip
    truth = jax.vmap(covisibility, in_axes=(0, 0, 0, 0, None))(
      jnp.asarray(true_depth[:, first]), jnp.asarray(true_depth[:, other]),
      cameras(faces["rotation"][:, first], faces["translation"][:, first]),
      cameras(faces["rotation"][:, other], faces["translation"][:, other]), tolerance,
    )  # fmt: skip
    agreements.append(
      depth_metrics.mask_agreement(
        np.asarray(estimate), np.asarray(truth), where=shape(true_mask)[:, first]
      )
    )
  for key in agreements[0]:
    metrics[f"occlusion/{key}"] = float(np.mean([a[key] for a in agreements]))
  return metrics


def evaluate(state: State, dataset, config) -> dict[str, float]:
  """BU-3DFE- and Florence-protocol errors of DepthNet, the 3DMM-only baseline and the best 3DMM
  fit, the 3DMMNet pose error, and the suitability and occlusion instruments (module docstring)."""
  config = frozen(config)
  size = config.data.image_size
  faces = _read(dataset.test)
  images = faces["image"].reshape(-1, size, size, 3).astype(np.float32) / 255.0
  predictions = _predict_all(state, images, config)
  metrics = _protocol_errors(faces, predictions, config, "bu3dfe", florence=False)
  metrics.update(_instrument_metrics(faces, predictions, config, float(state.arrays.face_height)))
  true_rotation = faces["rotation"].reshape(-1, 3, 3)
  cosine = (np.einsum("nij,nij->n", true_rotation, predictions["rotation"]) - 1.0) / 2.0
  metrics["pose/rotation_error_deg"] = float(np.degrees(np.arccos(np.clip(cosine, -1, 1))).mean())
  true_distance = -faces["translation"].reshape(-1, 3)[:, 2]
  distance_error = np.abs(-predictions["translation"][:, 2] - true_distance) / true_distance
  metrics["pose/distance_error_pct"] = float(100 * distance_error.mean())
  if dataset.florence is not None:
    florence = _read(dataset.florence)
    images = florence["image"].reshape(-1, size, size, 3).astype(np.float32) / 255.0
    predictions = _predict_all(state, images, config)
    metrics.update(_protocol_errors(florence, predictions, config, "florence", florence=True))
  return metrics


def _colour(depth: np.ndarray) -> np.ndarray:
  """(N, H, W) values in [0, 1] -> (N, H, W, 3) grey images."""
  return np.repeat(np.clip(depth, 0.0, 1.0)[..., None], 3, axis=-1)


def summaries(state: State, batch, config) -> dict:
  """Image grids: input, DepthNet's D', 3DMMNet's D_S', suitability C and, on evaluation faces,
  the true D' and the absolute error of D' (x5)."""
  config = frozen(config)
  mv = config.multiview
  count = min(mv.eval.num_summaries, len(next(iter(batch.values()))))
  if "syn_image" in batch:
    group = "real" if "real_image" in batch else "syn"
    images = np.asarray(batch[f"{group}_image"])[:count, 0]
    truth = None
  else:
    images = np.asarray(batch["image"])[:count, FRONTAL_CAMERA].astype(np.float32) / 255.0
    truth = (np.asarray(batch["depth"])[:count, FRONTAL_CAMERA],
             np.asarray(batch["mask"])[:count, FRONTAL_CAMERA] > 0,
             -np.asarray(batch["translation"])[:count, FRONTAL_CAMERA, 2])  # fmt: skip
  indices = np.minimum(np.arange(mv.eval.batch_size), count - 1)
  out = jax.device_get(predict(state, jnp.asarray(images[indices]), config))
  distance = -np.asarray(out["fit"].translation)[:, 2]
  fit_normalized = np.where(
    out["fit_mask"], mv.depth_a * (out["fit_depth"] - distance[:, None, None]) + mv.depth_c, 0.0
  )
  grids = {
    "input": images,
    "depth": _colour(out["depth"][:count]),
    "depth_3dmm": _colour(fit_normalized[:count]),
    "suitability": _colour(out["suitability"][:count]),
  }
  if truth is not None:
    depth, mask, true_distance = truth
    normalized = np.where(
      mask, mv.depth_a * (depth - true_distance[:, None, None]) + mv.depth_c, 0.0
    )
    grids["depth_true"] = _colour(normalized)
    grids["depth_error_x5"] = _colour(5.0 * np.abs(out["depth"][:count] - normalized) * mask)
  return {name: np.asarray(value, np.float32) for name, value in grids.items()}
