"""3DFaceFill (Dey & Boddeti, WACV 2022): face completion by analysis-by-synthesis.

A 3DMM encoder factorises a face image into shape, pose, illumination and UV
albedo; a symmetric gated U-Net completes the albedo's occluded part in UV
space; the completed face is re-rendered and blended into the input.
"""

from jaxface.methods.facefill.method import (
  create_dataset,
  create_state,
  evaluate,
  novel_views,
  phases,
  summaries,
  train_step,
)

# `complete` is the completion function in `method` and the photo command's module name.
__all__ = [
  "create_dataset",
  "create_state",
  "evaluate",
  "novel_views",
  "phases",
  "summaries",
  "train_step",
]
