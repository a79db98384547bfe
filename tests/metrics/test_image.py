"""Image metrics against independent references: scikit-image PSNR/SSIM, a numpy LPIPS.

The LPIPS tests build tiny random-weight AlexNet/VGG16 networks (the real
layer kernels, strides and paddings, few channels), save them as the tensor
files a user would have, load them through `load_lpips`, and compare with a
direct numpy transcription of the LPIPS v0.1 formula.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from jaxface.metrics.image import (
  MASK_RATIO_EDGES,
  LpipsUnavailable,
  LpipsWeights,
  hole_psnr,
  hole_ssim,
  image_metrics,
  load_lpips,
  lpips,
  lpips_weights_from_tensors,
  mask_to_face_ratio,
  metrics_by_mask_ratio,
  psnr,
  save_lpips,
  ssim,
)


def _image_pairs(rng, batch=4, height=40, width=36):
  """Smooth colour images plus noise, (B, H, W, 3) float32, and distorted copies of them."""
  yy, xx = np.mgrid[0:height, 0:width] / height
  base = np.stack([0.4 * np.sin(3 * xx + c) * np.cos(2 * yy) + 0.5 for c in range(3)], -1)
  targets = np.clip(base + 0.05 * rng.standard_normal((batch, height, width, 3)), 0, 1)
  noise = rng.uniform(0.01, 0.2, (batch, 1, 1, 1)) * rng.standard_normal(targets.shape)
  predictions = np.clip(targets + noise, 0, 1)
  predictions[-1] = rng.random(predictions[-1].shape)  # one unrelated image
  return predictions.astype(np.float32), targets.astype(np.float32)


# ---------------------------------------------------------------------------
# PSNR and SSIM


def test_psnr_matches_skimage():
  predictions, targets = _image_pairs(np.random.default_rng(0))
  got = np.asarray(psnr(predictions, targets))
  want = [
    peak_signal_noise_ratio(t.astype(np.float64), p.astype(np.float64), data_range=1)
    for p, t in zip(predictions, targets, strict=True)
  ]
  # float32 mean of squares against skimage's float64: ~1e-7 relative error.
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_ssim_matches_skimage():
  predictions, targets = _image_pairs(np.random.default_rng(1))
  got = np.asarray(ssim(predictions, targets))
  want = [
    structural_similarity(
      p.astype(np.float64),
      t.astype(np.float64),
      channel_axis=-1,
      data_range=1,
      gaussian_weights=True,
      sigma=1.5,
      use_sample_covariance=False,
    )
    for p, t in zip(predictions, targets, strict=True)
  ]
  # Same 11-tap window (skimage truncates at 3.5 sigma = radius 5) and the same
  # valid-region mean; dm-pix computes the moments E[x^2] - mu^2 in float32,
  # whose cancellation, divided by C2 = 9e-4, stays below 1e-5 (seen: ~1.5e-6).
  np.testing.assert_allclose(got, want, atol=1e-5)
  assert got[0] > got[-1]  # the unrelated image scores lowest


def _holes(rng, shape):
  """Random rectangles (one per image) plus scattered pixels: holes of irregular outline."""
  _, height, width = shape
  holes = rng.random(shape) < 0.05
  for hole in holes:
    top, left = rng.integers(4, height // 2, 2)
    hole[top : top + height // 3, left : left + width // 3] = True
  return holes


def test_hole_psnr_matches_skimage_on_the_hole_pixels():
  rng = np.random.default_rng(2)
  predictions, targets = _image_pairs(rng)
  holes = _holes(rng, targets.shape[:3])
  got = np.asarray(hole_psnr(predictions, targets, holes))
  want = [
    peak_signal_noise_ratio(t[h].astype(np.float64), p[h].astype(np.float64), data_range=1)
    for p, t, h in zip(predictions, targets, holes, strict=True)
  ]
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # The identity linking it to the whole-image figure when the rest is copied exactly.
  filled = np.where(holes[..., None], predictions, targets)
  ratio = 10 * np.log10(holes[0].size / holes.sum((1, 2)))
  np.testing.assert_allclose(psnr(filled, targets), got + ratio, rtol=1e-5)


def test_hole_ssim_matches_skimage_map_at_the_hole_centres():
  rng = np.random.default_rng(3)
  predictions, targets = _image_pairs(rng)
  holes = _holes(rng, targets.shape[:3])
  got = np.asarray(hole_ssim(predictions, targets, holes))
  want = []
  for p, t, h in zip(predictions, targets, holes, strict=True):
    _, full = structural_similarity(
      p.astype(np.float64), t.astype(np.float64), channel_axis=-1, data_range=1,
      gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True,
    )  # fmt: skip
    valid = (slice(5, -5), slice(5, -5))  # the windows that lie inside the image
    want.append(full[valid].mean(-1)[h[valid]].mean())
  np.testing.assert_allclose(got, want, atol=1e-5)
  np.testing.assert_allclose(hole_ssim(targets, targets, holes), 1.0, atol=1e-6)
  assert np.isnan(hole_ssim(predictions, targets, np.zeros_like(holes))).all()
  with pytest.raises(ValueError, match="holes must have shape"):
    hole_ssim(predictions, targets, holes[:, :-1])


def test_psnr_ssim_single_image_jit_and_identity():
  predictions, targets = _image_pairs(np.random.default_rng(2), batch=2)
  # jit fuses and reorders the float32 reductions: agreement to rounding.
  np.testing.assert_allclose(
    jax.jit(psnr)(predictions, targets), psnr(predictions, targets), rtol=1e-6
  )
  np.testing.assert_allclose(
    jax.jit(ssim)(predictions, targets), ssim(predictions, targets), rtol=1e-6
  )
  assert float(psnr(targets[0], targets[0])) == math.inf
  np.testing.assert_allclose(ssim(targets[0], targets[0]), 1.0, atol=1e-6)
  np.testing.assert_allclose(psnr(predictions[1], targets[1]), psnr(predictions, targets)[1])


def test_psnr_ssim_errors():
  images = np.zeros((2, 16, 16, 3), np.float32)
  with pytest.raises(ValueError, match="targets"):
    psnr(images, images[:1])
  with pytest.raises(ValueError, match="predictions"):
    ssim(images[0, 0], images[0, 0])
  with pytest.raises(ValueError, match="predictions must be float"):
    psnr(images.astype(np.uint8), images)
  with pytest.raises(ValueError, match="11x11"):
    ssim(images[:, :8], images[:, :8])


# ---------------------------------------------------------------------------
# LPIPS: a numpy transcription of lpips.LPIPS (v0.1) to compare against

# torchvision `features` layers up to each LPIPS tap, written out independently of
# the module: ("conv", index, kernel, stride, padding), ("pool", kernel, stride), "tap".
_ALEX = [
  ("conv", 0, 11, 4, 2),
  "tap",
  ("pool", 3, 2),
  ("conv", 3, 5, 1, 2),
  "tap",
  ("pool", 3, 2),
  ("conv", 6, 3, 1, 1),
  "tap",
  ("conv", 8, 3, 1, 1),
  "tap",
  ("conv", 10, 3, 1, 1),
  "tap",
]
_VGG = []
for _block, (_indices, _pool) in enumerate(
  [
    ((0, 2), False),
    ((5, 7), True),
    ((10, 12, 14), True),
    ((17, 19, 21), True),
    ((24, 26, 28), True),
  ]
):
  _VGG += [("pool", 2, 2)] if _pool else []
  _VGG += [("conv", i, 3, 1, 1) for i in _indices] + ["tap"]
LAYERS = {"alex": _ALEX, "vgg": _VGG}
# Few channels per conv, in order, so the tests run in well under a second.
CHANNELS = {"alex": [5, 6, 7, 6, 4], "vgg": [3, 4, 4, 5, 5, 6, 6, 6, 5, 5, 4, 4, 4]}
SIZES = {"alex": 67, "vgg": 34}


def random_tensors(net: str, rng, backbone_prefix="features.", linear_prefix="lin"):
  """Torch-named float32 tensors of a tiny LPIPS network with random weights."""
  tensors, channels = {}, 3
  convs = [layer for layer in LAYERS[net] if layer[0] == "conv"]
  for (_, index, kernel, _, _), out in zip(convs, CHANNELS[net], strict=True):
    scale = 1 / math.sqrt(channels * kernel * kernel)
    tensors[f"{backbone_prefix}{index}.weight"] = (
      scale * rng.standard_normal((out, channels, kernel, kernel))
    ).astype(np.float32)
    tensors[f"{backbone_prefix}{index}.bias"] = (0.1 * rng.standard_normal(out)).astype(np.float32)
    channels = out
  # Tap widths are the channels of the last conv before each tap.
  taps, last = [], None
  for layer in LAYERS[net]:
    if layer == "tap":
      taps.append(tensors[f"{backbone_prefix}{last}.weight"].shape[0])
    elif layer[0] == "conv":
      last = layer[1]
  for k, width in enumerate(taps):
    # LPIPS's learned linear weights are non-negative.
    tensors[f"{linear_prefix}{k}.model.1.weight"] = np.abs(
      rng.standard_normal((1, width, 1, 1))
    ).astype(np.float32)
  return tensors


def _conv(x, weight, bias, stride, padding):
  """(N, H, W, I) x (O, I, k, k) -> (N, h, w, O), zero padding, by shifted slices."""
  x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  kernel = weight.shape[-1]
  out_h = (x.shape[1] - kernel) // stride + 1
  out_w = (x.shape[2] - kernel) // stride + 1
  out = np.zeros((x.shape[0], out_h, out_w, weight.shape[0]))
  for dy in range(kernel):
    for dx in range(kernel):
      patch = x[
        :, dy : dy + stride * (out_h - 1) + 1 : stride, dx : dx + stride * (out_w - 1) + 1 : stride
      ]
      out += patch @ weight[:, :, dy, dx].T
  return out + bias


def _max_pool(x, kernel, stride):
  out_h = (x.shape[1] - kernel) // stride + 1
  out_w = (x.shape[2] - kernel) // stride + 1
  views = [
    x[:, dy : dy + stride * (out_h - 1) + 1 : stride, dx : dx + stride * (out_w - 1) + 1 : stride]
    for dy in range(kernel)
    for dx in range(kernel)
  ]
  return np.max(views, axis=0)


def reference_lpips(a, b, tensors, net, scaled=True):
  """LPIPS v0.1 of [0, 1] images (B, H, W, 3) in float64; `scaled=False` skips the input map."""

  def features(x):
    if scaled:
      x = 2 * x - 1  # [0, 1] -> [-1, 1], lpips `normalize=True`
      x = (x - np.array([-0.030, -0.088, -0.188])) / np.array([0.458, 0.448, 0.450])
    taps = []
    for layer in LAYERS[net]:
      if layer == "tap":
        taps.append(x)
      elif layer[0] == "pool":
        x = _max_pool(x, layer[1], layer[2])
      else:
        _, index, _, stride, padding = layer
        weight = tensors[f"features.{index}.weight"].astype(np.float64)
        bias = tensors[f"features.{index}.bias"].astype(np.float64)
        x = np.maximum(_conv(x, weight, bias, stride, padding), 0)
    return taps

  total = 0
  for k, (fa, fb) in enumerate(zip(features(a.astype(np.float64)), features(b), strict=True)):
    fa = fa / (np.sqrt(np.sum(fa**2, axis=-1, keepdims=True)) + 1e-10)
    fb = fb / (np.sqrt(np.sum(fb**2, axis=-1, keepdims=True)) + 1e-10)
    weight = tensors[f"lin{k}.model.1.weight"].reshape(-1).astype(np.float64)
    total = total + np.mean(((fa - fb) ** 2) @ weight, axis=(1, 2))
  return total


def _lpips_images(rng, net, batch=3):
  size = SIZES[net]
  targets = rng.random((batch, size, size, 3)).astype(np.float32)
  predictions = np.clip(targets + 0.2 * rng.standard_normal(targets.shape), 0, 1)
  return predictions.astype(np.float32), targets


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_numpy_reference(net, tmp_path):
  rng = np.random.default_rng(3)
  tensors = random_tensors(net, rng)
  np.savez(tmp_path / f"lpips_{net}.npz", **tensors)
  weights = load_lpips(tmp_path, net=net)
  assert isinstance(weights, LpipsWeights), weights
  predictions, targets = _lpips_images(rng, net)

  got = np.asarray(lpips(predictions, targets, weights))
  want = reference_lpips(predictions, targets, tensors, net)
  assert got.shape == (3,) and np.all(want > 1e-3)
  np.testing.assert_allclose(got, want, rtol=1e-4)
  # The same comparison without LPIPS's input map disagrees: the test sees the scaling.
  unscaled = reference_lpips(predictions, targets, tensors, net, scaled=False)
  assert np.max(np.abs(got - unscaled) / want) > 1e-2


def test_lpips_zero_for_identical_symmetric_and_jit(tmp_path):
  rng = np.random.default_rng(4)
  np.savez(tmp_path / "tiny.npz", **random_tensors("alex", rng))
  weights = load_lpips(tmp_path / "tiny.npz")
  predictions, targets = _lpips_images(rng, "alex")
  # Weights are a pytree argument, so one compiled function serves any weights.
  fast = jax.jit(lpips)
  distances = fast(predictions, targets, weights)  # (B,)
  np.testing.assert_array_equal(lpips(targets, targets, weights), 0.0)
  # Compiled, XLA may fuse the two images' normalisations differently: zero to rounding.
  np.testing.assert_allclose(fast(targets, targets, weights), 0.0, atol=1e-12)
  np.testing.assert_allclose(fast(targets, predictions, weights), distances, rtol=1e-6)
  np.testing.assert_allclose(lpips(predictions, targets, weights), distances, rtol=1e-5)
  np.testing.assert_allclose(fast(predictions[0], targets[0], weights), distances[0], rtol=1e-5)
  loss = jax.jit(jax.grad(lambda x: lpips(x, targets, weights).sum()))
  gradient = loss(jnp.asarray(predictions))
  assert np.all(np.isfinite(gradient)) and np.any(gradient != 0)


def test_lpips_reads_lpips_module_names_and_env_var(tmp_path, monkeypatch):
  """Keys as in `lpips.LPIPS().state_dict()` (net.sliceK.i, lins.k), found via $JAXFACE_LPIPS."""
  rng = np.random.default_rng(5)
  torchvision_names = random_tensors("alex", rng)
  module_names = {}
  for key, value in torchvision_names.items():
    if key.startswith("features."):
      index = int(key.split(".")[1])
      stage = 1 + sum(index >= start for start in (2, 5, 8, 10))
      module_names[f"net.slice{stage}.{key.removeprefix('features.')}"] = value
    else:
      module_names[key.replace("lin", "lins.", 1)] = value
  module_names["scaling_layer.shift"] = np.zeros((1, 3, 1, 1), np.float32)
  np.savez(tmp_path / "lpips_alex.npz", **module_names)
  monkeypatch.setenv("JAXFACE_LPIPS", str(tmp_path))

  weights = load_lpips()
  assert isinstance(weights, LpipsWeights), weights
  predictions, targets = _lpips_images(rng, "alex", batch=2)
  np.testing.assert_allclose(
    lpips(predictions, targets, weights),
    reference_lpips(predictions, targets, torchvision_names, "alex"),
    rtol=1e-4,
  )


def test_save_lpips_round_trip(tmp_path):
  rng = np.random.default_rng(6)
  weights = lpips_weights_from_tensors(random_tensors("vgg", rng), "vgg")
  path = save_lpips(weights, tmp_path / "copy")
  assert path == tmp_path / "copy.npz" and path.exists()
  loaded = load_lpips(path, net="vgg")
  assert loaded.net == "vgg"
  for got, want in zip(jax.tree.leaves(loaded), jax.tree.leaves(weights), strict=True):
    np.testing.assert_array_equal(got, want)


def test_lpips_unavailable_without_weights(tmp_path, monkeypatch):
  monkeypatch.delenv("JAXFACE_LPIPS", raising=False)
  missing = load_lpips()
  assert isinstance(missing, LpipsUnavailable) and "JAXFACE_LPIPS" in missing.reason
  assert isinstance(load_lpips(tmp_path / "nowhere"), LpipsUnavailable)
  empty = load_lpips(tmp_path)
  assert isinstance(empty, LpipsUnavailable) and "alex.pth" in empty.reason
  with pytest.raises(ValueError, match="weights: LPIPS unavailable"):
    lpips(np.zeros((1, 64, 64, 3), np.float32), np.zeros((1, 64, 64, 3), np.float32), empty)
  metrics = image_metrics(*_image_pairs(np.random.default_rng(7), batch=2), empty)
  assert metrics["lpips"] is empty and metrics["psnr"].shape == (2,)


def test_lpips_pth_files_without_torch_say_how_to_convert(tmp_path):
  try:
    import torch  # noqa: F401
  except ImportError:
    pass
  else:
    pytest.skip("torch is installed, so .pth files are readable")
  (tmp_path / "alex.pth").write_bytes(b"")
  (tmp_path / "alexnet-owt-7be5be79.pth").write_bytes(b"")
  result = load_lpips(tmp_path)
  assert isinstance(result, LpipsUnavailable)
  assert "torch is not installed" in result.reason
  assert "np.savez('lpips_alex.npz'" in result.reason
  assert "torch.load('alexnet-owt-7be5be79.pth')" in result.reason


def test_lpips_malformed_files_raise(tmp_path):
  tensors = random_tensors("alex", np.random.default_rng(8))
  del tensors["features.6.bias"]
  np.savez(tmp_path / "broken.npz", **tensors)
  with pytest.raises(ValueError, match=r"broken\.npz.*features\.6\.bias"):
    load_lpips(tmp_path / "broken.npz")
  tensors = random_tensors("alex", np.random.default_rng(8))
  tensors["lin2.model.1.weight"] = tensors["lin2.model.1.weight"][:, :3]
  with pytest.raises(ValueError, match=r"lin2\.model\.1\.weight must have 7 channels"):
    lpips_weights_from_tensors(tensors, "alex")
  with pytest.raises(ValueError, match="net must be one of"):
    load_lpips(tmp_path, net="squeeze")
  weights = lpips_weights_from_tensors(random_tensors("alex", np.random.default_rng(8)))
  with pytest.raises(ValueError, match="too small"):
    lpips(np.zeros((1, 16, 16, 3), np.float32), np.zeros((1, 16, 16, 3), np.float32), weights)


def test_lpips_matches_the_lpips_package():
  torch = pytest.importorskip("torch", reason="torch not installed: no parity check with lpips")
  lpips_package = pytest.importorskip("lpips", reason="lpips not installed: no parity check")
  # The package's own v0.1 linear layers over a random (download-free) AlexNet.
  model = lpips_package.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
  tensors = {key: value.numpy() for key, value in model.state_dict().items()}
  weights = lpips_weights_from_tensors(tensors, "alex", source="lpips.LPIPS")
  predictions, targets = _lpips_images(np.random.default_rng(9), "alex")
  with torch.no_grad():
    want = model(
      torch.from_numpy(predictions).permute(0, 3, 1, 2),
      torch.from_numpy(targets).permute(0, 3, 1, 2),
      normalize=True,
    )
  np.testing.assert_allclose(
    lpips(predictions, targets, weights), want.numpy().reshape(-1), rtol=1e-4
  )


# ---------------------------------------------------------------------------
# Reports by mask ratio


def test_metrics_by_mask_ratio_hand_made():
  ratios = np.array([0.05, 0.10, 0.15, 0.20, 0.35, 0.50, 0.60])
  values = np.array([40.0, 30.0, 28.0, 25.0, 22.0, 20.0, 10.0])
  report = metrics_by_mask_ratio(
    {"psnr": values, "ssim": values / 100, "lpips": LpipsUnavailable("no weights")}, ratios
  )
  assert report.buckets == ("all", "10-20%", "20-30%", "30-40%", "40-50%")
  assert report.counts == {"all": 7, "10-20%": 2, "20-30%": 1, "30-40%": 1, "40-50%": 1}
  assert report.means["all"]["psnr"] == pytest.approx(175 / 7)
  assert report.means["10-20%"]["psnr"] == pytest.approx(29.0)
  assert report.means["20-30%"]["ssim"] == pytest.approx(0.25)
  assert report.means["40-50%"]["psnr"] == pytest.approx(20.0)  # 0.5 falls in the last bucket
  assert report.unavailable == {"lpips": "no weights"}
  scalars = report.scalars()
  assert scalars["psnr/30-40%"] == pytest.approx(22.0) and scalars["count/all"] == 7
  assert not any(key.startswith("lpips") for key in scalars)
  table = report.table(digits=2)
  # 29.00 ± half the width of the bootstrap interval of the two values 30 and 28: every
  # resample's mean is 28, 29 or 30, and the 2.5% / 97.5% quantiles of 2,000 are 28 and 30.
  assert "| 10-20% | 2 | 29.00 ± 1.00 | 0.29 ± 0.01 | n/a |" in table
  assert "| 20-30% | 1 | 25.00 | 0.25 | n/a |" in table  # one face: no interval
  assert "lpips: no weights" in table
  assert scalars["psnr_ci_low/10-20%"] == 28.0 and scalars["psnr_ci_high/10-20%"] == 30.0
  assert MASK_RATIO_EDGES == (0.1, 0.2, 0.3, 0.4, 0.5)


def test_mask_ratio_intervals_resample_faces_not_images():
  rng = np.random.default_rng(7)
  faces = np.tile(np.arange(30), 2)  # each face masked once in each of two buckets
  ratios = np.concatenate([np.full(30, 0.15), np.full(30, 0.25)])
  # A hard face is hard in every bucket: its images' values are correlated.
  values = rng.normal(25.0, 2.0, 30)[faces] + rng.normal(0.0, 0.3, 60)
  report = metrics_by_mask_ratio({"psnr": values}, ratios, edges=(0.1, 0.2, 0.3), faces=faces)
  per_face = (values[:30] + values[30:]) / 2
  # The same resampling of the 30 per-face means, drawn by hand.
  draws = np.random.default_rng(0).integers(0, 30, (2_000, 30))
  want = np.quantile(per_face[draws].mean(1), [0.025, 0.975])
  np.testing.assert_allclose(report.intervals["all"]["psnr"], want)
  # Treating the 60 correlated images as independent would give a narrower interval.
  low, high = report.intervals["all"]["psnr"]
  loose = metrics_by_mask_ratio({"psnr": values}, ratios, edges=(0.1, 0.2, 0.3))
  assert np.diff(loose.intervals["all"]["psnr"])[0] < high - low
  constant = metrics_by_mask_ratio({"psnr": np.full(60, 21.5)}, ratios, (0.1, 0.2, 0.3), faces)
  assert constant.intervals["10-20%"]["psnr"] == (21.5, 21.5)
  with pytest.raises(ValueError, match="faces must have shape"):
    metrics_by_mask_ratio({"psnr": values}, ratios, faces=faces[:5])


def test_metrics_by_mask_ratio_custom_edges_and_errors():
  report = metrics_by_mask_ratio({"psnr": [1.0, 3.0]}, [0.1, 0.15], edges=(0.0, 0.5, 1.0))
  assert report.counts == {"all": 2, "0-50%": 2, "50-100%": 0}
  assert report.means["0-50%"]["psnr"] == 2.0 and math.isnan(report.means["50-100%"]["psnr"])
  with pytest.raises(ValueError, match=r"metrics\['psnr'\]"):
    metrics_by_mask_ratio({"psnr": [1.0]}, [0.1, 0.2])
  with pytest.raises(ValueError, match="mask_ratios"):
    metrics_by_mask_ratio({"psnr": [1.0]}, [1.5])
  with pytest.raises(ValueError, match="edges"):
    metrics_by_mask_ratio({"psnr": [1.0]}, [0.1], edges=(0.3, 0.2))


def test_mask_to_face_ratio():
  masks = np.zeros((2, 4, 4), bool)
  masks[0, :2] = True  # top half
  masks[1, :, 0] = True  # left column
  face = np.zeros((2, 4, 4), np.float32)
  face[:, 1:] = 1.0  # bottom three rows
  np.testing.assert_allclose(mask_to_face_ratio(masks), [0.5, 0.25])
  np.testing.assert_allclose(mask_to_face_ratio(masks, face), [4 / 12, 3 / 12])
  with pytest.raises(ValueError, match="face_masks"):
    mask_to_face_ratio(masks, np.zeros_like(face))
  with pytest.raises(ValueError, match="masks"):
    mask_to_face_ratio(masks[0])
