"""The generic trainer: `train_and_evaluate(config, workdir)` and its pieces."""

from jaxface.training.config import loop_defaults, parse_arg
from jaxface.training.loop import (
  NonFiniteLossError,
  evaluate,
  export_samples,
  restore,
  train_and_evaluate,
)
from jaxface.training.pipeline import InputPipeline
from jaxface.training.registry import METHODS, get_method
from jaxface.training.writers import MetricWriter

__all__ = [
  "METHODS",
  "InputPipeline",
  "MetricWriter",
  "NonFiniteLossError",
  "evaluate",
  "export_samples",
  "get_method",
  "loop_defaults",
  "parse_arg",
  "restore",
  "train_and_evaluate",
]
