"""Evaluation metrics of generative 3D face models: diversity, specificity, decoupling.

`shape` holds the model interface (`ShapeGenerator`) and the geometric
metrics; `decoupling` the embedding-network protocol of the decoupling score.
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

__all__ = [
  "Embedder",
  "EmbeddingNet",
  "ShapeGenerator",
  "batch_hard_triplet_loss",
  "choose_threshold",
  "data_diversity",
  "decoupling_score",
  "fit_sparse",
  "generator_diversity",
  "image_frame",
  "mean_vertex_distance",
  "mesh_embedding",
  "normal_images",
  "sample_pairs",
  "sparse_reconstruction_rmse",
  "specificity",
  "specificity_per_sample",
  "train_embedder",
]
