"""Tracking a face through a video: the face box of each frame, and optional temporal smoothing.

The supplement's procedure: "we detect the face bounding box ... for the
first frame only. For the subsequent frames, the bounding box of each frame
is obtained from the boundaries of the 2D landmarks predicted in the
previous frame", which reduces the jitter of per-frame detection; "some
temporal smoothing as a post-processing step will produce better results".

- `next_box`: frame t+1's crop from frame t's predicted landmarks, framed
  as the training data frame faces (`jaxface.data.photos.Framing`); the
  previous box is kept when the landmarks are implausible (off the crop,
  or of a scale far from the framing's).
- `smooth_track`: a Gaussian filter over time of the blendshape weights,
  translations and rotations (rotations re-projected onto SO(3)).
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from jaxface.data.photos import Box, Framing, refine_box


def next_box(box: Box, landmarks: np.ndarray, crop_size: int, framing: Framing) -> Box:
  """The crop of the next frame from this frame's landmarks (68, 2), pixels of its crop of `box`."""
  refined = refine_box(box, landmarks, crop_size, framing)
  return box if refined is None else refined


def nearest_rotation(matrices: np.ndarray) -> np.ndarray:
  """(..., 3, 3) -> the nearest rotation matrices (Frobenius norm, determinant +1)."""
  u, _, vt = np.linalg.svd(matrices)
  sign = np.sign(np.linalg.det(u @ vt))
  u[..., :, -1] *= sign[..., None]
  return u @ vt


def smooth_track(
  weights: np.ndarray, rotation: np.ndarray, translation: np.ndarray, sigma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Gaussian temporal smoothing (`sigma` frames; 0: unchanged) of (T, Ke), (T, 3, 3), (T, 3).

  Weights stay in [0, 1]; the smoothed rotation matrices are projected back onto rotations.
  """
  if sigma < 0:
    raise ValueError(f"the smoothing sigma must be >= 0 frames, got {sigma}")
  if sigma == 0:
    return weights, rotation, translation
  blur = lambda x: scipy.ndimage.gaussian_filter1d(np.asarray(x, np.float64), sigma, axis=0,
                                                   mode="nearest")  # fmt: skip
  return (
    np.clip(blur(weights), 0.0, 1.0).astype(np.float32),
    nearest_rotation(blur(rotation)).astype(np.float32),
    blur(translation).astype(np.float32),
  )
