"""Classical inpainting baselines for face completion: OpenCV Telea / Navier-Stokes, biharmonic.

The reference points below every learned completion in the 3DFaceFill
comparisons: they fill each hole from its border alone, with no notion of a
face. `inpaint(images, masks, method)` runs one of them image by image on
the host (they are CPU library calls, not jax):

- "telea": fast-marching inpainting (Telea 2004), `cv2.INPAINT_TELEA`;
- "navier_stokes": fluid-dynamics inpainting (Bertalmio et al. 2001),
  `cv2.INPAINT_NS`;
- "biharmonic": the smooth biharmonic interpolant of the border
  (`skimage.restoration.inpaint_biharmonic`), slower but exact on
  polynomials of low degree.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.restoration import inpaint_biharmonic

METHODS = ("telea", "navier_stokes", "biharmonic")
_OPENCV_FLAGS = {"telea": cv2.INPAINT_TELEA, "navier_stokes": cv2.INPAINT_NS}


def _fill(image: np.ndarray, missing: np.ndarray, method: str, radius: float) -> np.ndarray:
  """One (H, W, 3) float image, (H, W) bool missing -> the filled (H, W, 3) float64 image."""
  if method == "biharmonic":
    return inpaint_biharmonic(image.astype(np.float64), missing, channel_axis=-1)
  # OpenCV takes 3 channels only as uint8; float32 one channel at a time keeps
  # full precision, and both methods treat the channels independently anyway.
  # Its Telea adds rounding (+0.5) and a unit gradient-direction term in pixel
  # units, meant for 0..255 data: on [0, 1] that would be an error of ~1.4, so
  # work in 0..255 (the error is then ~1.4 / 255).
  mask = missing.astype(np.uint8)
  channels = [
    cv2.inpaint(
      np.ascontiguousarray(255 * image[..., c], np.float32), mask, radius, _OPENCV_FLAGS[method]
    )
    for c in range(image.shape[-1])
  ]
  return np.stack(channels, axis=-1).astype(np.float64) / 255


def inpaint(images, masks, method: str, radius: float = 3.0) -> np.ndarray:
  """Fills the masked pixels of a batch of images with a classical method.

  Args:
    images: (B, H, W, 3) float images in [0, 1].
    masks: (B, H, W) bool or float, 1 (above 0.5) where pixels are missing.
    method: one of `METHODS`.
    radius: OpenCV's neighbourhood radius in pixels (Telea, Navier-Stokes).

  Returns:
    (B, H, W, 3) numpy array of the images' dtype: known pixels unchanged,
    missing ones filled (clipped to [0, 1]).
  """
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"images must have shape (B, H, W, 3), got {images.shape}")
  if not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"images must be float in [0, 1], got dtype {images.dtype}")
  masks = np.asarray(masks)
  if masks.shape != images.shape[:3]:
    raise ValueError(f"masks must have shape {images.shape[:3]} (B, H, W), got {masks.shape}")
  if not radius > 0:
    raise ValueError(f"radius must be positive, got {radius}")
  missing = masks > 0.5  # (B, H, W)
  full = np.flatnonzero(missing.all(axis=(1, 2)))
  if full.size:
    raise ValueError(f"masks cover every pixel of images {full.tolist()}: nothing to fill from")

  out = images.copy()  # (B, H, W, 3)
  for i in range(len(images)):
    if missing[i].any():
      filled = np.clip(_fill(images[i], missing[i], method, radius), 0, 1)
      # The methods may perturb known pixels (OpenCV smooths near the hole);
      # only the hole is theirs to change.
      out[i][missing[i]] = filled[missing[i]].astype(images.dtype)
  return out
