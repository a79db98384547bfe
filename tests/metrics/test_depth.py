"""Depth evaluation metrics against hand-made cases with known answers and brute-force counts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from jaxface.metrics import depth


def face_surface(rng: np.random.Generator, n: int = 2000, size: float = 1.0) -> np.ndarray:
  """(n, 3) points of a smooth face-like height field z = f(x, y) over [-size, size]^2.

  The (x, y) are random, not gridded: on a grid, point-to-point ICP can lock
  onto pairings shifted by whole grid cells, which no rigid motion undoes.
  """
  x, y = rng.uniform(-1, 1, (2, n))
  bump = 0.3 * np.exp(-((x - 0.1) ** 2 + (y + 0.2) ** 2) / 0.08)  # a "nose" to lock sliding
  z = 0.4 * x**2 + 0.8 * y**2 + 0.3 * x**3 - 0.2 * x * y + bump
  return size * np.stack([x, y, z], axis=-1)


def small_rigid_motion(rng: np.random.Generator, degrees: float, shift: float):
  """A rotation (3, 3) by `degrees` about a random axis and a translation (3,) of length `shift`."""
  axis = rng.normal(size=3)
  rotation = Rotation.from_rotvec(np.deg2rad(degrees) * axis / np.linalg.norm(axis)).as_matrix()
  translation = rng.normal(size=3)
  return rotation, shift * translation / np.linalg.norm(translation)


def test_fit_scale_translation_recovers_a_known_similarity():
  rng = np.random.default_rng(0)
  source = rng.normal(size=(6, 9, 3))
  scale, translation = depth.fit_scale_translation(source, 1.7 * source + np.array([3, -2, 5]))
  np.testing.assert_allclose(scale, 1.7, rtol=1e-12)
  np.testing.assert_allclose(translation, [3, -2, 5], atol=1e-12)


def test_fit_scale_translation_is_least_squares():
  rng = np.random.default_rng(1)
  source = rng.normal(size=(40, 3))
  target = 0.8 * source + rng.normal(size=(40, 3))
  # Reference: the linear system in (s, tx, ty, tz), one row per coordinate.
  design = np.concatenate([source.reshape(-1, 1), np.tile(np.eye(3), (40, 1))], axis=1)
  solution = np.linalg.lstsq(design, target.reshape(-1), rcond=None)[0]
  scale, translation = depth.fit_scale_translation(source, target)
  np.testing.assert_allclose([scale, *translation], solution, atol=1e-10)
  np.testing.assert_allclose(
    depth.apply_scale_translation(source, scale, translation),
    scale * source + translation,
    atol=1e-12,
  )


def test_fit_scale_translation_validates():
  with pytest.raises(ValueError, match="target must have the shape of source"):
    depth.fit_scale_translation(np.zeros((4, 9, 3)), np.zeros((4, 8, 3)))
  with pytest.raises(ValueError, match=r"source must have shape \(\.\.\., 3\), got \(5, 2\)"):
    depth.fit_scale_translation(np.zeros((5, 2)), np.zeros((5, 2)))
  with pytest.raises(ValueError, match="at least 2 points"):
    depth.fit_scale_translation(np.ones((1, 3)), np.ones((1, 3)))
  with pytest.raises(ValueError, match="coincide"):
    depth.fit_scale_translation(np.ones((5, 3)), np.zeros((5, 3)))
  with pytest.raises(ValueError, match="translation must have shape"):
    depth.apply_scale_translation(np.zeros((5, 3)), 1.0, np.zeros(2))


def test_apply_scale_translation_by_hand():
  out = depth.apply_scale_translation([[1.0, 2.0, 3.0]], 2.0, [0.5, 0.0, -1.0])
  np.testing.assert_allclose(out, [[2.5, 4.0, 5.0]])


def test_icp_recovers_a_small_rigid_motion():
  rng = np.random.default_rng(2)
  target = face_surface(rng)
  rotation, translation = small_rigid_motion(rng, degrees=4.0, shift=0.05)
  source = (target - translation) @ rotation  # target = rotation @ source + translation
  index, transform = depth.icp_correspondences(source, target)
  np.testing.assert_array_equal(index, np.arange(len(target)))
  assert transform.shape == (4, 4)
  np.testing.assert_allclose(transform[:3, :3], rotation, atol=1e-9)
  np.testing.assert_allclose(transform[:3, 3], translation, atol=1e-9)
  np.testing.assert_array_equal(transform[3], [0, 0, 0, 1])


def test_icp_without_iterations_is_nearest_neighbours():
  rng = np.random.default_rng(3)
  source, target = rng.normal(size=(50, 3)), rng.normal(size=(70, 3))
  index, transform = depth.icp_correspondences(source, target, iterations=0)
  brute = np.argmin(np.sum((source[:, None] - target[None]) ** 2, axis=-1), axis=1)
  np.testing.assert_array_equal(index, brute)
  np.testing.assert_array_equal(transform, np.eye(4))


def test_icp_never_reflects():
  rng = np.random.default_rng(4)
  # A thin slab and its mirror image: the first pairing is each point with its mirror, whose best
  # orthogonal fit is the reflection diag(1, 1, -1) itself.
  source = rng.uniform(-1, 1, (200, 3)) * [1, 1, 0.01]
  _, transform = depth.icp_correspondences(source, source * [1, 1, -1], iterations=1)
  rotation = transform[:3, :3]
  np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
  np.testing.assert_allclose(np.linalg.det(rotation), 1.0, atol=1e-12)


def test_closest_point_errors_measure_unmoved_points():
  rng = np.random.default_rng(5)
  target = face_surface(rng)
  rotation, translation = small_rigid_motion(rng, degrees=3.0, shift=0.04)
  predicted = target @ rotation.T + translation
  errors = depth.closest_point_errors(predicted, target)
  # ICP pairs predicted_i with target_i; the distance is that of the point before ICP moves it.
  displacement = np.sqrt(np.sum((predicted - target) ** 2, axis=-1))
  assert displacement.min() > 1e-3
  np.testing.assert_allclose(errors, displacement, atol=1e-9)


def test_closest_point_errors_of_a_known_offset():
  target = face_surface(np.random.default_rng(6))
  errors = depth.closest_point_errors(target + np.array([0, 0, 0.1]), target)
  assert errors.shape == (len(target),)
  np.testing.assert_allclose(errors, 0.1, atol=1e-9)
  with pytest.raises(ValueError, match="predicted must be finite"):
    depth.closest_point_errors(np.full((3, 3), np.nan), target)
  with pytest.raises(ValueError, match=r"target must have shape \(N, 3\)"):
    depth.closest_point_errors(target, target[None])


def test_error_statistics_by_hand():
  stats = depth.error_statistics(np.arange(1.0, 11.0).reshape(2, 5))
  # mean 5.5; population variance (sum of (k - 5.5)^2) / 10 = 8.25; the 90th percentile sits at
  # position 0.9 * 9 = 8.1 of the sorted values, between 9 and 10.
  assert stats == pytest.approx({"mean": 5.5, "std": np.sqrt(8.25), "median": 5.5, "p90": 9.1})
  with pytest.raises(ValueError, match="empty"):
    depth.error_statistics([])


def test_depth_range_by_hand():
  assert depth.depth_range([[0, 0, 2.0], [5, 1, -1.5], [9, 9, 0.0]]) == 3.5
  with pytest.raises(ValueError, match=r"points must have shape \(N, 3\)"):
    depth.depth_range(np.zeros(3))


def test_bu3dfe_errors_undo_the_dataset_similarity():
  rng = np.random.default_rng(7)
  scale, translation, offset = 1.3, np.array([4.0, -7.0, 20.0]), 0.25
  sizes = [40.0, 55.0, 48.0]  # mm: each face has its own depth range
  true_points = [face_surface(rng, n=1500, size=size) for size in sizes]
  # The network's frame: an unknown similarity away from the scans; its depth is off by `offset`.
  predicted_points = [(points - translation) / scale + [0, 0, offset] for points in true_points]
  # Landmarks sharing one centroid, whose scan positions are off by +e, -e and 0 per face: these
  # residuals are orthogonal to a global scale and translation, so the dataset-wide fit is exactly
  # (scale, translation), while fitting each face alone would move faces 0 and 1 by +e and -e.
  predicted_landmarks = rng.normal(size=(3, 9, 3)) * 10
  predicted_landmarks += [5.0, 2.0, 30.0] - predicted_landmarks.mean(axis=1, keepdims=True)
  residual = np.array([[[2.0, 0, 0]], [[-2.0, 0, 0]], [[0, 0, 0]]])
  true_landmarks = scale * predicted_landmarks + translation + residual
  errors = depth.bu3dfe_errors(predicted_points, true_points, predicted_landmarks, true_landmarks)
  # In the scans' frame the depth offset becomes scale * offset; ICP pairs each point with its own
  # scan point.
  for face, points in zip(errors, true_points, strict=True):
    z_range = points[:, 2].max() - points[:, 2].min()
    np.testing.assert_allclose(face, 100 * scale * offset / z_range, rtol=1e-9)
  with pytest.raises(ValueError, match="predicted_landmarks must have 2 faces"):
    depth.bu3dfe_errors(predicted_points[:2], true_points[:2], predicted_landmarks, true_landmarks)
  with pytest.raises(ValueError, match="true_landmarks must have the shape"):
    depth.bu3dfe_errors(predicted_points, true_points, predicted_landmarks, true_landmarks[:, :8])


def test_bu3dfe_report_pools_points():
  errors = [np.array([1.0, 2.0, 3.0]), np.array([4.0]), np.array([5.0, 6.0]), np.array([10.0])]
  report = depth.bu3dfe_report(errors, ["HA", "AN", "HA", "XX"])
  assert report["all"] == pytest.approx(
    {"mean": 31 / 7, "std": np.sqrt(376 / 49), "median": 4.0, "p90": 7.6}
  )
  # HA pools 1, 2, 3, 5, 6 (a mean of per-face means would give 3.75).
  assert report["per_expression"] == pytest.approx({"AN": 4.0, "HA": 3.4, "XX": 10.0})
  assert list(report["per_expression"]) == ["AN", "HA", "XX"]
  assert depth.bu3dfe_report(errors)["per_expression"] == {}
  with pytest.raises(ValueError, match="expressions has 3 labels for 4 faces"):
    depth.bu3dfe_report(errors, ["HA", "AN", "HA"])


def test_florence_nme_by_hand():
  rng = np.random.default_rng(8)
  true_points = [face_surface(rng, n=1500, size=size) for size in (45.0, 60.0)]
  shifts = [np.array([0.3, -0.4, 1.2]), np.array([0.0, 0.0, -2.0])]  # lengths 1.3 and 2.0
  predicted_points = [p + s for p, s in zip(true_points, shifts, strict=True)]
  corners = np.array([[[-50.0, 0, 0], [50.0, 0, 0]], [[0, 10.0, 5], [0, 10.0 + 80, 5]]])
  nme = depth.florence_nme(predicted_points, true_points, corners)
  np.testing.assert_allclose(nme, [1.3 / 100, 2.0 / 80], rtol=1e-9)
  landmarks = np.zeros((2, 68, 3))
  landmarks[:, 36], landmarks[:, 45] = corners[:, 0], corners[:, 1]
  np.testing.assert_array_equal(landmarks[:, depth.OUTER_EYE_CORNER_IDS], corners)
  with pytest.raises(ValueError, match=r"true_outer_eye_corners must have shape \(N, 2, 3\)"):
    depth.florence_nme(predicted_points, true_points, corners[:, :1])
  with pytest.raises(ValueError, match="coincide"):
    depth.florence_nme(predicted_points, true_points, np.zeros((2, 2, 3)))


def brute_auc(scores: np.ndarray, labels: np.ndarray) -> float:
  """Pairs (positive, negative): 1 when the positive scores higher, 1/2 on a tie."""
  positive, negative = scores[labels], scores[~labels]
  wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(positive, negative))
  return wins / (len(positive) * len(negative))


def test_roc_auc_matches_pair_counting():
  rng = np.random.default_rng(9)
  labels = rng.random((12, 15)) < 0.3
  scores = np.round(rng.random((12, 15)) + 0.3 * labels, 1)  # rounding makes many ties
  np.testing.assert_allclose(
    depth.roc_auc(scores, labels), brute_auc(scores.ravel(), labels.ravel()), rtol=1e-12
  )
  where = rng.random((12, 15)) < 0.5
  np.testing.assert_allclose(
    depth.roc_auc(scores, labels.astype(int), where=where),
    brute_auc(scores[where], labels[where]),
    rtol=1e-12,
  )


def test_roc_auc_separated_and_degenerate():
  labels = np.array([[0, 0, 1], [1, 0, 1]])
  assert depth.roc_auc(labels + 0.1 * np.arange(6).reshape(2, 3), labels) == 1.0
  assert depth.roc_auc(-labels, labels) == 0.0
  assert depth.roc_auc(np.zeros((2, 3)), labels) == 0.5
  with pytest.raises(ValueError, match="both classes"):
    depth.roc_auc(np.arange(6.0), np.ones(6, bool))
  with pytest.raises(ValueError, match="both classes"):
    depth.roc_auc(np.arange(6.0), np.arange(6) % 2, where=np.arange(6) % 2 == 0)
  with pytest.raises(ValueError, match="labels must be boolean or 0/1"):
    depth.roc_auc(np.arange(3.0), [0.0, 0.5, 1.0])
  with pytest.raises(ValueError, match=r"labels must have shape \(2, 3\)"):
    depth.roc_auc(np.zeros((2, 3)), np.zeros(6, bool))


def test_mask_agreement_by_hand():
  predicted = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]], bool)
  true = np.array([[1, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]], bool)
  # Counted: hits (0,0) (1,0) (1,1); false positives (0,1) (3,2); misses (1,2); 10 true negatives.
  result = depth.mask_agreement(predicted, true)
  assert result == pytest.approx(
    {"iou": 3 / 6, "precision": 3 / 5, "recall": 3 / 4, "accuracy": 13 / 16}
  )
  # Only the top two rows: hits 3, false positive (0,1), miss (1,2), 3 true negatives.
  where = np.zeros((4, 4), bool)
  where[:2] = True
  result = depth.mask_agreement(predicted, true, where=where)
  assert result == pytest.approx(
    {"iou": 3 / 5, "precision": 3 / 4, "recall": 3 / 4, "accuracy": 6 / 8}
  )


def test_mask_agreement_empty_masks():
  empty, some = np.zeros((4, 4), bool), np.eye(4, dtype=bool)
  assert depth.mask_agreement(empty, empty) == {
    "iou": 1.0,
    "precision": 1.0,
    "recall": 1.0,
    "accuracy": 1.0,
  }
  assert depth.mask_agreement(empty, some) == {
    "iou": 0.0,
    "precision": 1.0,
    "recall": 0.0,
    "accuracy": 0.75,
  }
  assert depth.mask_agreement(some, empty) == {
    "iou": 0.0,
    "precision": 0.0,
    "recall": 1.0,
    "accuracy": 0.75,
  }
  with pytest.raises(ValueError, match="at least one selected pixel"):
    depth.mask_agreement(some, some, where=empty)
  with pytest.raises(ValueError, match=r"true must have shape \(4, 4\)"):
    depth.mask_agreement(some, some[:2])
