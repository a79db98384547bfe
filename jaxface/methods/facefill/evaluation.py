"""3DFaceFill's evaluation (PSNR / SSIM / LPIPS by mask ratio against classical baselines, the
3DMM module's fit, the segmenter's IoU) and the summary images of a run."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxface.methods.facefill import baselines, masks, model
from jaxface.methods.facefill.data import FACE, FaceFillDataset
from jaxface.methods.facefill.method import trained_modules
from jaxface.methods.facefill.networks import State
from jaxface.methods.facefill.pipeline import (
  complete_jit,
  hide,
  novel_views_jit,
  reconstruct_jit,
  segment_jit,
)
from jaxface.methods.protocol import frozen
from jaxface.metrics import image as image_metrics

log = logging.getLogger(__name__)

#: Summary colours of the segmentation classes (face, occlusion, background).
_CLASS_COLOURS = np.array([[0.9, 0.7, 0.5], [0.2, 0.4, 0.9], [0.1, 0.1, 0.1]], np.float32)


def _chunks(count: int, size: int):
  """(indices padded to `size` by repeating the last, number of real ones) per chunk."""
  for start in range(0, count, size):
    indices = np.arange(start, min(start + size, count))
    yield np.concatenate([indices, np.full(size - len(indices), indices[-1])]), len(indices)


def _segmentation_scores(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
  scores = {"segment_accuracy": float(np.mean(predicted == labels))}
  ious = []
  for index, name in enumerate(model.SEGMENT_CLASSES):
    union = np.sum((predicted == index) | (labels == index))
    if union:
      ious.append(np.sum((predicted == index) & (labels == index)) / union)
      scores[f"segment_iou_{name}"] = float(ious[-1])
  scores["segment_miou"] = float(np.mean(ious))
  return scores


def completion_report(
  state: State, images: np.ndarray, labels: np.ndarray, config: ml_collections.ConfigDict
) -> image_metrics.MaskRatioReport:
  """PSNR / SSIM / LPIPS of 3DFaceFill and the configured classical baselines by mask ratio.

  LPIPS needs the user's LPIPS v0.1 weights (`config.facefill.eval.lpips`
  or $JAXFACE_LPIPS, see `jaxface.metrics.image.load_lpips`); without them
  the report lists it as unavailable with the reason.

  Every eval image gets one fixed mask per ratio bucket
  (`masks.evaluation_masks` on its visible face, seeded by
  `config.facefill.eval.mask_seed`); the completion uses the ground-truth
  segmentation, so the table measures completion alone. PSNR / SSIM /
  LPIPS are over the whole image (the public code's region); "hole_psnr" and
  "hole_ssim" over the hidden pixels alone (`jaxface.metrics.image.hole_psnr`),
  which every method must fill: the figures that tell completions apart.

  Args:
    state: a State with a trained 3DMM module and inpainter.
    images: (N, H, W, 3) eval images in [0, 1], the targets.
    labels: (N, H, W) their ground-truth segmentation.
    config: the run's config (`config.facefill.eval`).
  """
  config = frozen(config)
  ev = config.facefill.eval
  count = len(images)
  buckets = tuple(tuple(float(v) for v in b) for b in ev.buckets)
  holes, ratios = masks.evaluation_masks(
    labels == FACE, buckets=buckets, seed=ev.mask_seed
  )  # (N, K, H, W), (N, K)
  methods = ("facefill", *tuple(ev.baselines))
  lpips_weights = image_metrics.load_lpips(str(ev.lpips) or None)  # or LpipsUnavailable
  measured = ("psnr", "ssim", "lpips", "hole_psnr", "hole_ssim")
  values = {f"{m}_{name}": [] for m in methods for name in measured}
  for bucket in range(len(buckets)):
    for indices, real in _chunks(count, ev.batch_size):
      completed = np.asarray(
        complete_jit(
          state, images[indices], holes[indices, bucket], config=config,
          segmentation=labels[indices],
        ).image
      )[:real]  # fmt: skip
      targets = images[indices[:real]]
      hidden = holes[indices[:real], bucket]  # (B, H, W)
      candidates = {"facefill": completed}
      for method in ev.baselines:
        candidates[method] = baselines.inpaint(targets, hidden, method)
      for method, prediction in candidates.items():
        prediction = np.asarray(prediction, np.float32)
        scores = image_metrics.image_metrics(prediction, targets, lpips_weights)
        scores["hole_psnr"] = image_metrics.hole_psnr(prediction, targets, hidden)
        scores["hole_ssim"] = image_metrics.hole_ssim(prediction, targets, hidden)
        for name in measured:
          values[f"{method}_{name}"].append(scores[name])
  per_image = {
    name.removeprefix("facefill_"): (
      lpips_weights
      if isinstance(lpips_weights, image_metrics.LpipsUnavailable) and name.endswith("lpips")
      else np.concatenate([np.asarray(v) for v in chunks])
    )
    for name, chunks in values.items()
  }  # bucket-major, as the ratios below; LPIPS without weights says why it is missing
  edges = (buckets[0][0], *(high for _, high in buckets))
  faces = np.tile(np.arange(count), len(buckets))  # bucket-major: each face once per bucket
  return image_metrics.metrics_by_mask_ratio(per_image, ratios.T.ravel(), edges, faces=faces)


def evaluate(state: State, dataset: FaceFillDataset, config) -> dict[str, float]:
  """Metrics of the modules this run trained (or took from other runs).

  - 3DMM: landmark error (px) and face-pixel L1 of the reconstruction;
  - completion (when the inpainter is trained): PSNR / SSIM (/ LPIPS with
    weights; "lpips_available" says) of the whole image and PSNR / SSIM
    inside the holes ("hole_psnr/all") overall ("psnr/all") and per
    mask-ratio bucket ("psnr/20-30%"), and the same for each classical
    baseline ("telea_psnr/20-30%"); the whole table is logged;
  - segmentation (when the segmenter is trained): accuracy and IoU.
  """
  config = frozen(config)
  ev = config.facefill.eval
  trained = trained_modules(config)
  count = min(len(dataset), ev.num_images)
  data = dataset.read(np.arange(count))
  results: dict[str, float] = {}
  images, labels = data["image"], data["segmentation"]  # (N, H, W, 3), (N, H, W)
  if {"encoder", "decoder"} <= trained:
    landmark_px, rec_l1 = [], []
    for indices, real in _chunks(count, ev.batch_size):
      out = jax.device_get(reconstruct_jit(state, images[indices], labels[indices], config))
      error = np.linalg.norm(out["landmarks"] - data["landmarks"][indices], axis=-1)  # (B, 68)
      landmark_px.append(error.mean(-1)[:real])
      weight = out["mask"] * (labels[indices] == FACE)  # (B, H, W)
      l1 = (np.abs(out["image"] - images[indices]).mean(-1) * weight).sum((1, 2))
      rec_l1.append((l1 / np.maximum(weight.sum((1, 2)), 1.0))[:real])
    results["3dmm_landmark_px"] = float(np.mean(np.concatenate(landmark_px)))
    results["3dmm_rec_l1"] = float(np.mean(np.concatenate(rec_l1)))
  if "inpainter" in trained:
    report = completion_report(state, images, labels, config)
    log.info("completion by mask-to-face ratio:\n%s", report.table())
    results.update(report.scalars())
    results["lpips_available"] = float("lpips" not in report.unavailable)
  if "segmenter" in trained:
    predicted = [
      np.asarray(segment_jit(state, images[indices], config))[:real]
      for indices, real in _chunks(count, ev.batch_size)
    ]
    results.update(_segmentation_scores(np.concatenate(predicted), labels))
  return results


def summaries(state: State, batch, config) -> dict:
  """Image grids: input, masked input, completion, re-render, novel views, UV albedo (partial and
  completed), the 3DMM module's reconstruction and albedo, the segmenter's labels."""
  config = frozen(config)
  ev = config.facefill.eval
  count = min(ev.num_summaries, batch["image"].shape[0])
  # Padded to the evaluation batch so the jitted functions compile once for both.
  indices = np.minimum(np.arange(ev.batch_size), count - 1)
  images = np.asarray(batch["image"])[indices]  # (E, H, W, 3)
  labels = np.asarray(batch["segmentation"])[indices]  # (E, H, W)
  holes = np.asarray(
    masks.random_rectangle_mask(jax.random.PRNGKey(0), labels == FACE, split="test")
  )  # (E, H, W) bool
  out = complete_jit(state, images, holes, config=config, segmentation=labels)
  reconstruction = reconstruct_jit(state, images, labels, config)
  views = novel_views_jit(state, out, config=config)  # (E, V, H, W, 3)
  grids = {
    "input": images,
    "masked": hide(images, holes),
    "completion": out.image,
    "rendered": out.rendered,
    "uv_partial": out.uv_input,
    "uv_completed": out.uv_completed,
    "reconstruction_3dmm": reconstruction["image"],
    "albedo_3dmm": reconstruction["albedo"],
    "segmentation": jnp.asarray(_CLASS_COLOURS)[segment_jit(state, images, config)],
    "novel_views": jnp.concatenate(list(jnp.moveaxis(views, 1, 0)), axis=2),  # (E, H, V*W, 3)
  }
  return {name: value[:count] for name, value in grids.items()}
