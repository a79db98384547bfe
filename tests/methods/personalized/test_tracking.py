"""The video box update (frame t+1's crop from frame t's landmarks) and temporal smoothing."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.spatial.transform

from jaxface.data.photos import Box, Framing, box_for_face, landmark_box
from jaxface.methods.personalized import tracking

FRAMING = Framing(centre_x=0.5, centre_y=0.55, size=0.4)


def _face(centre, size, count=68, seed=0):
  """Landmarks whose bounding box has `centre` and sqrt(w h) = `size` (pixels)."""
  rng = np.random.default_rng(seed)
  points = rng.uniform(-0.5, 0.5, (count, 2))
  points[:2] = [[-0.5, -0.5], [0.5, 0.5]]  # the box's corners
  return np.asarray(centre) + size * points


def test_the_next_box_frames_the_landmarks_as_the_training_data_do():
  box = Box(100, 50, 200)
  crop_size = 64
  # In the crop, the face sits as the framing says, but 10 crop pixels to the right.
  centre = np.array([FRAMING.centre_x, FRAMING.centre_y]) * crop_size + [10.0, 0.0]
  landmarks = _face(centre, FRAMING.size * crop_size)
  new = tracking.next_box(box, landmarks, crop_size, FRAMING)
  shift = 10.0 * box.size / crop_size  # 10 crop pixels in photo pixels
  assert (new.x, new.y, new.size) == (round(100 + shift), 50, 200)
  # Brute force: the same box from the landmarks mapped into the photo.
  photo_centre, photo_size = landmark_box(
    np.array([box.x, box.y]) + landmarks * box.size / crop_size
  )
  assert new == box_for_face(photo_centre, photo_size, FRAMING)


def test_a_face_twice_as_large_doubles_the_box_and_nonsense_keeps_the_old_one():
  box = Box(0, 0, 128)
  centre = np.array([FRAMING.centre_x, FRAMING.centre_y]) * 128
  bigger = tracking.next_box(box, _face(centre, 1.2 * FRAMING.size * 128), 128, FRAMING)
  assert bigger.size == round(1.2 * 128)
  assert tracking.next_box(box, _face(centre, 5.0 * FRAMING.size * 128), 128, FRAMING) == box
  assert tracking.next_box(box, np.full((68, 2), np.nan), 128, FRAMING) == box


def test_smoothing_removes_jitter_keeps_rotations_and_weight_range():
  frames = 40
  rng = np.random.default_rng(0)
  clean = np.linspace(0.0, 0.6, frames)
  weights = np.clip(clean[:, None] + rng.normal(0, 0.05, (frames, 3)), 0, 1).astype(np.float32)
  angles = np.stack([np.linspace(0, 30, frames), rng.normal(0, 2, frames), np.zeros(frames)], 1)
  rotation = scipy.spatial.transform.Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
  translation = rng.normal(0, 1, (frames, 3)).astype(np.float32)
  smooth_w, smooth_r, smooth_t = tracking.smooth_track(weights, rotation, translation, sigma=3.0)
  assert np.abs(smooth_w - clean[:, None]).mean() < np.abs(weights - clean[:, None]).mean()
  assert smooth_w.min() >= 0 and smooth_w.max() <= 1
  np.testing.assert_allclose(np.einsum("tij,tkj->tik", smooth_r, smooth_r),
                             np.broadcast_to(np.eye(3), (frames, 3, 3)), atol=1e-5)  # fmt: skip
  np.testing.assert_allclose(np.linalg.det(smooth_r), 1.0, atol=1e-5)
  assert np.std(np.diff(smooth_t, axis=0)) < np.std(np.diff(translation, axis=0))
  unchanged = tracking.smooth_track(weights, rotation, translation, sigma=0.0)
  assert unchanged[0] is weights and unchanged[1] is rotation
  with pytest.raises(ValueError, match="sigma"):
    tracking.smooth_track(weights, rotation, translation, sigma=-1.0)


def test_nearest_rotation_undoes_a_small_perturbation():
  rotation = scipy.spatial.transform.Rotation.from_euler("xyz", [10, 20, 30], degrees=True)
  noisy = rotation.as_matrix() + 1e-3 * np.random.default_rng(1).normal(size=(3, 3))
  np.testing.assert_allclose(tracking.nearest_rotation(noisy), rotation.as_matrix(), atol=2e-3)
  reflection = np.diag([1.0, 1.0, -1.0])
  assert np.linalg.det(tracking.nearest_rotation(reflection)) == pytest.approx(1.0)
