"""Multi-view face data: synthetic faces inside the fitted 3DMM, real-like ones outside it (and by
how much), highlights only where they are meant to be, the rig's fixed colour responses, labels
and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from jaxface.data import multiview
from jaxface.data.synthetic import EMOTION_NAMES

SIZE = 48
FIT = dict(fit_identity=8, fit_expression=20)


@pytest.fixture(scope="module")
def examples(procedural):
  make = lambda kind, index=0, **kw: multiview.face_views_example(
    procedural, index, seed=1, face_kind=kind, image_size=SIZE, **FIT, **kw
  )
  return {kind: make(kind) for kind in multiview.KINDS} | {"make": make}


def test_shapes_and_views_per_kind(examples):
  for kind in multiview.KINDS:
    example = examples[kind]
    views = multiview.num_views(kind)
    assert example["image"].shape == (views, SIZE, SIZE, 3) and example["image"].dtype == np.uint8
    assert example["depth"].shape == example["mask"].shape == (views, SIZE, SIZE)
    assert example["landmarks"].shape == (views, 68, 2)
    # Depth is defined exactly on the face region.
    assert ((example["depth"] > 0) == (example["mask"] > 0)).all()
  assert (examples["real"]["camera"] == np.arange(len(multiview.RIG))).all()
  assert (examples["synthetic"]["camera"] == -1).all()


def test_synthetic_faces_lie_in_the_fitted_space_and_views_follow_the_grid(examples, procedural):
  example = examples["synthetic"]
  assert not example["identity"][FIT["fit_identity"] :].any()
  assert not example["expression"][FIT["fit_expression"] :].any()
  assert not example["specular"].any()  # Lambertian
  for rotation in example["rotation"]:
    pitch, yaw, roll = np.degrees(_euler(rotation))
    for angle, limit in ((pitch, 30), (yaw, 45), (roll, 20)):
      assert abs(angle) <= limit + 1e-3 and abs(angle / 5 - round(angle / 5)) < 1e-3


def _euler(matrix):
  # Inverse of euler_to_matrix (Rz @ Ry @ Rx).
  yaw = np.arcsin(-matrix[2, 0])
  return np.array(
    [np.arctan2(matrix[2, 1], matrix[2, 2]), yaw, np.arctan2(matrix[1, 0], matrix[0, 0])]
  )


def test_real_like_faces_leave_the_fitted_space(examples):
  real, test = examples["real"], examples["test"]
  assert real["identity"][FIT["fit_identity"] :].any()
  assert real["specular"].any() and (real["specular"] <= real["mask"]).all()
  # The best fit of the fitted 3DMM misses the true depth by about the surface detail.
  both = (test["fit_depth"] > 0) & (test["mask"] > 0)
  gap = np.abs(test["fit_depth"] - test["depth"])[both].mean()
  assert 0.02 < gap < 0.5, gap
  smooth = examples["make"]("test", detail_strength=0.0)
  both_smooth = (smooth["fit_depth"] > 0) & (smooth["mask"] > 0)
  # The same face without its detail: only the identity modes beyond the fit remain.
  assert np.abs(smooth["fit_depth"] - smooth["depth"])[both_smooth].mean() < gap / 1.1


def test_test_faces_cycle_through_the_emotions(examples):
  labels = [int(examples["make"]("test", index)["emotion"]) for index in range(3)]
  assert labels == [0, 1, 2] and EMOTION_NAMES[labels[0]] == "neutral"


def test_landmark_noise_and_camera_response_are_the_real_likes_only(examples):
  quiet = examples["make"]("real", landmark_noise=0.0)
  noisy = examples["real"]
  offsets = np.linalg.norm(noisy["landmarks"] - quiet["landmarks"], axis=-1)
  assert 0.2 < offsets[:, 17:].mean() / (0.01 * SIZE) < 2.0  # about the configured noise
  assert offsets[:, :17].mean() > 1.5 * offsets[:, 17:].mean()  # the jaw line is noisier
  responses = multiview.camera_responses()
  np.testing.assert_array_equal(responses, multiview.camera_responses())  # fixed for the rig
  assert responses.shape == (len(multiview.RIG), 3, 3) and np.ptp(responses[:, 0]) > 0.05


def test_examples_are_deterministic(examples):
  again = examples["make"]("real")
  for key, value in examples["real"].items():
    np.testing.assert_array_equal(value, again[key], err_msg=key)


def test_bad_arguments_are_refused(procedural):
  with pytest.raises(ValueError, match="face_kind"):
    multiview.face_views_example(procedural, 0, seed=0, face_kind="mpie", image_size=SIZE, **FIT)
  with pytest.raises(ValueError, match="fit_identity"):
    multiview.face_views_example(procedural, 0, seed=0, face_kind="real", image_size=SIZE,
                                 fit_identity=999, fit_expression=1)  # fmt: skip
