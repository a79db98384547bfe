"""Evaluation of per-pixel face depth: BU-3DFE and Florence errors, score-map AUC, mask agreement.

Section V-B of "Learning Monocular Face Reconstruction using Multi-View
Supervision" (Shu et al., FG 2020), on the host with numpy and scipy (not jit):

- BU-3DFE: one dataset-wide scale and translation fitted on 9 landmarks maps
  the predicted clouds into the scans' frame; rigid ICP pairs each predicted
  point with a scan point, and the error is the distance of the *unmoved*
  predicted point to its pair (ICP only finds correspondences), in percent of
  the scan's depth range. `bu3dfe_report` gives Table I's statistics.
- Florence: the same errors, averaged per face, over the outer interocular
  distance (normalised mean error).
- `roc_auc` of a per-pixel score (e.g. 1 - suitability vs specular pixels);
  `mask_agreement` of a binary mask (e.g. occlusion vs true co-visibility).

Point clouds are (P, 3) with z the depth axis; the caller drops invalid depth
pixels (non-finite points are rejected).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.spatial
import scipy.stats

#: 0-based iBUG-68 indices of the outer eye corners (Florence's interocular distance).
OUTER_EYE_CORNER_IDS = (36, 45)

#: Table I's expression columns of BU-3DFE.
BU3DFE_EXPRESSIONS = ("AN", "DI", "FE", "HA", "NE", "SA", "SU")


_SHAPES = {None: "(..., 3)", 2: "(N, 3)", 3: "(N, L, 3)"}


def _points(name: str, points, ndim: int | None = 2) -> np.ndarray:
  """float64 `points`; `ValueError` unless finite and (N, 3) ((N, L, 3), or (..., 3) for None)."""
  array = np.asarray(points, np.float64)
  if array.shape[-1:] != (3,) or (ndim is not None and array.ndim != ndim):
    raise ValueError(f"{name} must have shape {_SHAPES[ndim]}, got {array.shape}")
  if not np.all(np.isfinite(array)):
    raise ValueError(f"{name} must be finite (drop invalid depth pixels first)")
  return array


def fit_scale_translation(source, target) -> tuple[float, np.ndarray]:
  """Least-squares scale s and translation t (3,) with s * source + t ≈ target.

  Minimises sum ||s * source_i + t - target_i||^2 over all points of source,
  target (..., 3) (e.g. (N, 9, 3): 9 landmarks of N faces, fitted dataset-wide).
  Closed form: s = <source - mean, target - mean> / |source - mean|^2, t from
  the means. No rotation; s may come out negative for nonsensical inputs.
  """
  source = _points("source", source, ndim=None)
  target = _points("target", target, ndim=None)
  if target.shape != source.shape:
    raise ValueError(f"target must have the shape of source {source.shape}, got {target.shape}")
  source, target = source.reshape(-1, 3), target.reshape(-1, 3)
  if len(source) < 2:
    raise ValueError(f"fitting a scale needs at least 2 points, got source shape {source.shape}")
  source_mean, target_mean = source.mean(0), target.mean(0)
  centred = source - source_mean
  spread = np.sum(centred**2)
  if spread <= 1e-12 * max(1.0, float(np.sum(source**2))):
    raise ValueError("source points all coincide: the scale is undetermined")
  scale = float(np.sum(centred * (target - target_mean)) / spread)
  return scale, target_mean - scale * source_mean


def apply_scale_translation(points, scale: float, translation) -> np.ndarray:
  """scale * points + translation: (..., 3) -> (..., 3)."""
  translation = np.asarray(translation, np.float64)
  if translation.shape != (3,):
    raise ValueError(f"translation must have shape (3,), got {translation.shape}")
  return scale * _points("points", points, ndim=None) + translation


def _kabsch(source: np.ndarray, target: np.ndarray) -> np.ndarray:
  """(4, 4) rigid transform (rotation, no reflection, no scale) best mapping source onto target."""
  source_mean, target_mean = source.mean(0), target.mean(0)
  u, _, vt = np.linalg.svd((source - source_mean).T @ (target - target_mean))
  # Flipping the weakest axis turns a best-fit reflection into the best proper rotation.
  flip = np.diag([1.0, 1.0, 1.0 if np.linalg.det(vt.T @ u.T) >= 0 else -1.0])
  transform = np.eye(4)
  transform[:3, :3] = vt.T @ flip @ u.T
  transform[:3, 3] = target_mean - transform[:3, :3] @ source_mean
  return transform


def icp_correspondences(
  source, target, iterations: int = 30, tolerance: float = 1e-7
) -> tuple[np.ndarray, np.ndarray]:
  """Rigid point-to-point ICP of source (P, 3) onto target (Q, 3), for correspondences.

  Starts from the identity (the clouds must already be roughly aligned, e.g.
  by `fit_scale_translation` on landmarks): each step pairs every moved source
  point with its nearest target point (cKDTree), then refits the rotation and
  translation (Kabsch). Stops after `iterations` refits, or once a refit
  lowers the mean squared pair distance by no more than `tolerance` times
  its previous value.

  Returns:
    index: (P,) int, the target point nearest to each source point moved by
      `transform` (so iterations=0 gives plain nearest neighbours).
    transform: (4, 4) homogeneous rigid transform, source -> target:
      moved = source @ transform[:3, :3].T + transform[:3, 3].
  """
  source, target = _points("source", source), _points("target", target)
  if len(source) == 0 or len(target) == 0:
    raise ValueError(f"source {source.shape} and target {target.shape} must be non-empty")
  if iterations < 0:
    raise ValueError(f"iterations must be >= 0, got {iterations}")
  tree = scipy.spatial.cKDTree(target)
  transform = np.eye(4)
  distance, index = tree.query(source, workers=-1)
  error = np.mean(distance**2)
  for _ in range(iterations):
    candidate = _kabsch(source, target[index])
    moved = source @ candidate[:3, :3].T + candidate[:3, 3]
    new_distance, new_index = tree.query(moved, workers=-1)
    new_error = np.mean(new_distance**2)
    if new_error > error:  # Only float noise can raise it; keep the better pairing.
      break
    transform, index, improvement, error = candidate, new_index, error - new_error, new_error
    if improvement <= tolerance * (error + improvement):
      break
  return index, transform


def closest_point_errors(
  predicted, target, iterations: int = 30, tolerance: float = 1e-7
) -> np.ndarray:
  """(P,) distances ||predicted_i - target[index_i]||, index from `icp_correspondences`.

  predicted (P, 3) is *not* moved by the ICP transform: ICP only chooses the
  target (Q, 3) point each predicted point is compared with.
  """
  predicted = _points("predicted", predicted)
  index, _ = icp_correspondences(predicted, target, iterations, tolerance)
  return np.linalg.norm(predicted - _points("target", target)[index], axis=-1)


def error_statistics(errors) -> dict[str, float]:
  """{"mean", "std" (ddof 0), "median", "p90" (np.percentile 90)} of errors (any shape)."""
  errors = np.asarray(errors, np.float64).ravel()
  if errors.size == 0:
    raise ValueError("errors must hold at least one value, got an empty array")
  return {
    "mean": float(np.mean(errors)),
    "std": float(np.std(errors)),
    "median": float(np.median(errors)),
    "p90": float(np.percentile(errors, 90)),
  }


def depth_range(points) -> float:
  """max z - min z of (Q, 3) points."""
  points = _points("points", points)
  if len(points) == 0:
    raise ValueError("points must hold at least one point, got shape (0, 3)")
  return float(np.ptp(points[:, 2]))


def _check_faces(predicted_points, true_points, **per_face) -> int:
  """Raises `ValueError` unless the lists and (N, ...) arrays all describe the same N faces."""
  n = len(predicted_points)
  if len(true_points) != n:
    raise ValueError(f"true_points has {len(true_points)} faces, predicted_points has {n}")
  for name, array in per_face.items():
    if np.shape(array)[:1] != (n,):
      raise ValueError(f"{name} must have {n} faces, got shape {np.shape(array)}")
  return n


def bu3dfe_errors(
  predicted_points: Sequence[np.ndarray],
  true_points: Sequence[np.ndarray],
  predicted_landmarks,
  true_landmarks,
  iterations: int = 30,
) -> list[np.ndarray]:
  """Per face, the (P_i,) BU-3DFE point errors in percent of that scan's depth range.

  One scale and translation is fitted on all faces' landmarks together
  (predicted_landmarks -> true_landmarks, both (N, L, 3), L = 9 in the
  paper) and applied to every predicted cloud predicted_points[i] (P_i, 3);
  then `closest_point_errors` against the scan true_points[i] (Q_i, 3),
  divided by `depth_range` of the scan, times 100.
  """
  predicted_landmarks = _points("predicted_landmarks", predicted_landmarks, ndim=3)
  true_landmarks = _points("true_landmarks", true_landmarks, ndim=3)
  if true_landmarks.shape != predicted_landmarks.shape:
    raise ValueError(
      f"true_landmarks must have the shape of predicted_landmarks {predicted_landmarks.shape}, "
      f"got {true_landmarks.shape}"
    )
  _check_faces(predicted_points, true_points, predicted_landmarks=predicted_landmarks)
  scale, translation = fit_scale_translation(predicted_landmarks, true_landmarks)
  out = []
  for i, (predicted, truth) in enumerate(zip(predicted_points, true_points, strict=True)):
    extent = depth_range(_points(f"true_points[{i}]", truth))
    if extent <= 0:
      raise ValueError(f"true_points[{i}] has no depth range: every z is equal")
    moved = apply_scale_translation(
      _points(f"predicted_points[{i}]", predicted), scale, translation
    )
    out.append(100.0 * closest_point_errors(moved, truth, iterations) / extent)
  return out


def bu3dfe_report(
  per_face_errors: Sequence[np.ndarray],
  expressions: Sequence[str] | None = None,
  expression_order: Sequence[str] = BU3DFE_EXPRESSIONS,
) -> dict:
  """Table I's row from `bu3dfe_errors`: pooled statistics and per-expression means.

  Every point of every face weighs the same (a face with more valid pixels
  counts more), as Table I's percentiles are over point errors.

  Returns:
    {"all": `error_statistics` of all faces' errors concatenated,
     "per_expression": {label: mean error of the points of the faces with
     that label}}, labels ordered as in `expression_order`, then labels not
     in it by first appearance; labels no face has are absent, and the dict is
     empty when `expressions` is None.
  """
  if len(per_face_errors) == 0:
    raise ValueError("per_face_errors must hold at least one face")
  errors = [np.asarray(e, np.float64).ravel() for e in per_face_errors]
  report = {"all": error_statistics(np.concatenate(errors)), "per_expression": {}}
  if expressions is None:
    return report
  if len(expressions) != len(errors):
    raise ValueError(f"expressions has {len(expressions)} labels for {len(errors)} faces")
  present = list(dict.fromkeys(expressions))
  labels = [e for e in expression_order if e in present] + [
    e for e in present if e not in expression_order
  ]
  for label in labels:
    chosen = [e for e, name in zip(errors, expressions, strict=True) if name == label]
    report["per_expression"][label] = float(np.mean(np.concatenate(chosen)))
  return report


def florence_nme(
  predicted_points: Sequence[np.ndarray],
  true_points: Sequence[np.ndarray],
  true_outer_eye_corners,
  iterations: int = 30,
) -> np.ndarray:
  """(N,) normalised mean error: mean closest-point error / outer interocular distance.

  predicted_points[i] (P_i, 3) must already be in the frame of the scan
  true_points[i] (Q_i, 3) (no similarity is fitted here); errors are
  `closest_point_errors`, and true_outer_eye_corners (N, 2, 3) gives the two
  corners whose distance normalises face i (from iBUG-68 landmarks (N, 68, 3):
  landmarks[:, OUTER_EYE_CORNER_IDS]).
  """
  corners = _points("true_outer_eye_corners", true_outer_eye_corners, ndim=3)
  if corners.shape[1] != 2:
    raise ValueError(f"true_outer_eye_corners must have shape (N, 2, 3), got {corners.shape}")
  n = _check_faces(predicted_points, true_points, true_outer_eye_corners=corners)
  interocular = np.linalg.norm(corners[:, 0] - corners[:, 1], axis=-1)  # (N,)
  coincident = np.flatnonzero(interocular <= 0)
  if coincident.size:
    raise ValueError(f"true_outer_eye_corners coincide for faces {coincident}")
  out = np.empty(n)
  for i in range(n):
    errors = closest_point_errors(predicted_points[i], true_points[i], iterations)
    out[i] = np.mean(errors) / interocular[i]
  return out


def _binary(name: str, value, shape: tuple[int, ...] | None = None) -> np.ndarray:
  """bool array of `value` (bool or 0/1 numbers); `ValueError` otherwise or on a shape mismatch."""
  array = np.asarray(value)
  if shape is not None and array.shape != shape:
    raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
  if array.dtype != bool:
    if not np.all((array == 0) | (array == 1)):
      raise ValueError(f"{name} must be boolean or 0/1, got values {np.unique(array)[:5]}...")
    array = array.astype(bool)
  return array


def roc_auc(scores, labels, where=None) -> float:
  """Area under the ROC curve of scores (any shape) for binary labels (same shape).

  The probability that a random positive scores above a random negative, a
  tie counting half (Mann-Whitney U from average ranks). `where` (same shape,
  bool) selects the pixels scored; all pixels by default.
  """
  scores = np.asarray(scores, np.float64)
  labels = _binary("labels", labels, scores.shape)
  if where is not None:
    where = _binary("where", where, scores.shape)
    scores, labels = scores[where], labels[where]
  scores, labels = scores.ravel(), labels.ravel()
  if np.any(np.isnan(scores)):
    raise ValueError("scores must not be NaN")
  positives = int(np.count_nonzero(labels))
  negatives = labels.size - positives
  if positives == 0 or negatives == 0:
    raise ValueError(f"labels need both classes, got {positives} positive, {negatives} negative")
  ranks = scipy.stats.rankdata(scores)  # average ranks: ties count half
  u = np.sum(ranks[labels]) - positives * (positives + 1) / 2
  return float(u / (positives * negatives))


def mask_agreement(predicted, true, where=None) -> dict[str, float]:
  """{"iou", "precision", "recall", "accuracy"} of a predicted binary mask against true.

  predicted, true and `where` (selecting the pixels compared) share any shape.
  A ratio whose denominator is 0 has nothing to get wrong and is 1.0: IoU
  when both masks are empty, precision when nothing is predicted, recall
  when nothing is true. An empty selection raises `ValueError`.
  """
  predicted = _binary("predicted", predicted)
  true = _binary("true", true, predicted.shape)
  if where is not None:
    where = _binary("where", where, predicted.shape)
    predicted, true = predicted[where], true[where]
  if predicted.size == 0:
    raise ValueError("mask_agreement needs at least one selected pixel")
  hits = int(np.count_nonzero(predicted & true))
  false_positives = int(np.count_nonzero(predicted & ~true))
  misses = int(np.count_nonzero(~predicted & true))
  ratio = lambda numerator, denominator: numerator / denominator if denominator else 1.0
  return {
    "iou": ratio(hits, hits + false_positives + misses),
    "precision": ratio(hits, hits + false_positives),
    "recall": ratio(hits, hits + misses),
    "accuracy": float(np.count_nonzero(predicted == true) / predicted.size),
  }
