"""3DFaceFill's evaluation and summaries on an untrained smoke state: every metric of every
module the run trains, LPIPS from a weight file of the published layout, the summary grids."""

from __future__ import annotations

import numpy as np

from jaxface.methods import facefill
from jaxface.metrics.image import lpips_weights_from_tensors, save_lpips
from tests.metrics.test_image import random_tensors


def test_evaluate_and_summaries(smoke, state, tmp_path, monkeypatch):
  config, _, pipeline = smoke
  # LPIPS with (tiny, random) weights of the published layout, as a user's file would hold, found
  # through $JAXFACE_LPIPS (config.facefill.eval.lpips is the other way; tests/metrics has both).
  weights = lpips_weights_from_tensors(random_tensors("alex", np.random.default_rng(0)), "alex")
  monkeypatch.setenv("JAXFACE_LPIPS", str(save_lpips(weights, tmp_path / "lpips_alex")))
  results = facefill.evaluate(state, facefill.create_dataset(config, "eval"), config)
  buckets = ("all", "10-20%", "20-30%", "30-40%", "40-50%")
  measured = ("psnr", "ssim", "lpips", "hole_psnr", "hole_ssim")
  metrics = [f"{p}{m}" for p in ("", "telea_") for m in measured]
  expected = {f"{m}/{b}" for m in metrics for b in buckets}
  expected |= {"3dmm_landmark_px", "3dmm_rec_l1", "segment_accuracy", "segment_miou"}
  assert expected <= set(results)
  assert all(np.isfinite(v) for v in results.values()), results
  assert results["count/all"] == 4 * 8 and results["count/20-30%"] == 8
  assert 0 < results["ssim/all"] <= 1 and results["telea_psnr/all"] > 10
  # The unmasked pixels are copied: the whole image scores above its holes alone.
  for method in ("", "telea_"):
    assert results[f"{method}psnr/all"] > results[f"{method}hole_psnr/all"]
    assert results[f"{method}ssim/all"] > results[f"{method}hole_ssim/all"]
  assert results["lpips_available"] == 1 and results["lpips/all"] > 0
  images = facefill.summaries(state, pipeline.local_batch(0), config)
  assert {"input", "masked", "completion", "uv_partial", "uv_completed"} <= set(images)
  assert images["completion"].shape == (4, 64, 64, 3)
  assert images["uv_completed"].shape == (4, 64, 64, 3)
