"""Decoupled 3D face GAN (Fernández Abrevaya et al., ICCV 2019) on jaxface's core.

The package is the method the trainer runs (`config.method = "decoupled_gan"`,
protocol in `jaxface.training.registry`); its `evaluate` reports quick
in-training metrics (diversity, specificity). The paper's Tables 1 and 2
come from `python -m jaxface.methods.decoupled_gan.paper_metrics` for a run
or the linear baseline, and `python -m jaxface.methods.decoupled_gan.report`
prints them side by side for several runs.
"""

from jaxface.methods.decoupled_gan.method import (
  create_dataset,
  create_state,
  evaluate,
  stages,
  summaries,
)

__all__ = ["create_dataset", "create_state", "evaluate", "stages", "summaries"]
