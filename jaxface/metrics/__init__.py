"""Evaluation metrics: generative 3D face models, image completion and face depth.

`shape` holds the model interface (`ShapeGenerator`) and the geometric
metrics (diversity, specificity, sparse fitting); `decoupling` the
embedding-network protocol of the decoupling score; `image` PSNR, SSIM and
LPIPS by their standard definitions, reported overall and by mask ratio;
`depth` the BU-3DFE and Florence protocols of face depth maps, ROC AUC and
mask agreement; `spread` the seed-spread intervals and paired gaps of results pages.
"""

from jaxface.metrics.decoupling import (
  Embedder,
  EmbeddingNet,
  batch_hard_triplet_loss,
  choose_threshold,
  decoupling_score,
  image_frame,
  mesh_embedding,
  normal_images,
  train_embedder,
)
from jaxface.metrics.depth import (
  bu3dfe_errors,
  bu3dfe_report,
  closest_point_errors,
  florence_nme,
  mask_agreement,
  roc_auc,
)
from jaxface.metrics.image import (
  MASK_RATIO_EDGES,
  LpipsUnavailable,
  LpipsWeights,
  MaskRatioReport,
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
from jaxface.metrics.shape import (
  ShapeGenerator,
  data_diversity,
  fit_sparse,
  generator_diversity,
  mean_vertex_distance,
  sample_pairs,
  sparse_reconstruction_rmse,
  specificity,
  specificity_per_sample,
)
from jaxface.metrics.spread import Interval, compare, mean_interval, paired_difference

__all__ = [
  "MASK_RATIO_EDGES",
  "Embedder",
  "EmbeddingNet",
  "Interval",
  "LpipsUnavailable",
  "LpipsWeights",
  "MaskRatioReport",
  "ShapeGenerator",
  "batch_hard_triplet_loss",
  "bu3dfe_errors",
  "bu3dfe_report",
  "choose_threshold",
  "closest_point_errors",
  "compare",
  "data_diversity",
  "decoupling_score",
  "fit_sparse",
  "florence_nme",
  "generator_diversity",
  "image_frame",
  "image_metrics",
  "load_lpips",
  "lpips",
  "lpips_weights_from_tensors",
  "mask_agreement",
  "mask_to_face_ratio",
  "mean_interval",
  "mean_vertex_distance",
  "mesh_embedding",
  "metrics_by_mask_ratio",
  "normal_images",
  "paired_difference",
  "psnr",
  "roc_auc",
  "sample_pairs",
  "save_lpips",
  "sparse_reconstruction_rmse",
  "specificity",
  "specificity_per_sample",
  "ssim",
  "train_embedder",
]
