"""Decoupled 3D face GAN (Fernández Abrevaya et al., ICCV 2019) on jaxface's core.

The package is the method the trainer runs (`config.method = "decoupled_gan"`);
`evaluate` computes the paper's Table 1/2 metrics for a run or for the linear
baseline, and `report` prints them side by side for several runs.
"""

from jaxface.methods.decoupled_gan.method import (
  create_dataset,
  create_state,
  evaluate,
  summaries,
  train_step,
)

__all__ = ["create_dataset", "create_state", "evaluate", "summaries", "train_step"]
