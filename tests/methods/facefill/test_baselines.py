"""Classical inpainting baselines on images whose true fill is known: constants and ramps.

The holes are filled with noise before inpainting, so a method that ignored
the mask (or returned its input) would fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from jaxface.methods.facefill.baselines import METHODS, inpaint

H, W = 32, 32


def _masks() -> np.ndarray:
  """(2, H, W) bool: a square hole, and a wide one near the top edge."""
  masks = np.zeros((2, H, W), bool)
  masks[0, 10:20, 12:22] = True
  masks[1, 4:10, 6:26] = True
  return masks


def _ramp() -> np.ndarray:
  """(H, W, 3) linear colour ramps in [0.1, 0.9], a different direction per channel."""
  yy, xx = np.mgrid[0:H, 0:W] / (H - 1)
  return np.stack([0.1 + 0.8 * xx, 0.2 + 0.6 * yy, 0.5 + 0.2 * (xx - yy)], axis=-1)


def _with_noise_in_holes(images: np.ndarray, masks: np.ndarray, seed=0) -> np.ndarray:
  noise = np.random.default_rng(seed).random(images.shape)
  return np.where(masks[..., None], noise, images).astype(images.dtype)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_known_pixels_untouched_and_dtype_kept(method, dtype):
  masks = _masks()
  images = np.random.default_rng(1).random((2, H, W, 3)).astype(dtype)
  out = inpaint(images, masks.astype(np.float32), method)
  assert out.shape == images.shape and out.dtype == dtype
  np.testing.assert_array_equal(out[~masks], images[~masks])
  assert not np.array_equal(out[masks], images[masks])
  assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(
  # OpenCV's Telea adds rounding and a unit gradient term in 0..255 units
  # (see baselines._fill): up to ~2/255 on a constant.
  ("method", "tolerance"),
  [("telea", 1e-2), ("navier_stokes", 1e-5), ("biharmonic", 1e-6)],
)
def test_constant_image_stays_constant(method, tolerance):
  masks = _masks()
  images = _with_noise_in_holes(np.full((2, H, W, 3), 0.37, np.float32), masks)
  out = inpaint(images, masks, method)
  np.testing.assert_allclose(out, 0.37, atol=tolerance)


@pytest.mark.parametrize(
  # Telea and Navier-Stokes propagate border values along isophotes, which on
  # a ramp leaves a few hundredths of error (seen: mean ~0.017, max ~0.08);
  # biharmonic interpolation reproduces a linear function exactly.
  ("method", "mean_error", "max_error"),
  [("telea", 0.03, 0.12), ("navier_stokes", 0.03, 0.12), ("biharmonic", 1e-5, 1e-5)],
)
def test_linear_ramp_is_filled_along_the_ramp(method, mean_error, max_error):
  masks = _masks()
  truth = np.broadcast_to(_ramp(), (2, H, W, 3)).astype(np.float32)
  out = inpaint(_with_noise_in_holes(truth, masks), masks, method)
  error = np.abs(out - truth)[masks]  # (holes, 3)
  assert error.mean() < mean_error and error.max() < max_error
  # Far better than filling with the mean of the known pixels (mean error ~0.05).
  naive = np.abs(truth[0][~masks[0]].mean(axis=0) - truth[0][masks[0]]).mean()
  assert error.mean() < naive / 1.5


def test_images_without_holes_are_returned_unchanged():
  images = np.random.default_rng(2).random((1, H, W, 3))
  np.testing.assert_array_equal(inpaint(images, np.zeros((1, H, W)), "telea"), images)


def test_errors_name_the_argument():
  images = np.zeros((2, H, W, 3), np.float32)
  masks = _masks()
  with pytest.raises(ValueError, match="method must be one of"):
    inpaint(images, masks, "patchmatch")
  with pytest.raises(ValueError, match="images must have shape"):
    inpaint(images[..., :1], masks, "telea")
  with pytest.raises(ValueError, match="images must have shape"):
    inpaint(images[0], masks[0], "telea")
  with pytest.raises(ValueError, match="images must be float"):
    inpaint(images.astype(np.uint8), masks, "telea")
  with pytest.raises(ValueError, match="masks must have shape"):
    inpaint(images, masks[:, :-1], "biharmonic")
  with pytest.raises(ValueError, match="radius"):
    inpaint(images, masks, "navier_stokes", radius=0)
  full = masks.copy()
  full[1] = True
  with pytest.raises(ValueError, match=r"masks cover every pixel of images \[1\]"):
    inpaint(images, full, "biharmonic")
