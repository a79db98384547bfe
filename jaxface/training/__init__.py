"""The generic trainer: `train_and_evaluate(config, workdir)`, `load_run(workdir)`, their parts."""

from jaxface.training.config import check_loop_config, loop_defaults, parse_arg, warm_start_source
from jaxface.training.loop import NonFiniteLossError, evaluate, export_samples, train_and_evaluate
from jaxface.training.pipeline import InputPipeline
from jaxface.training.registry import METHODS, get_method
from jaxface.training.runs import Run, load_run, read_config
from jaxface.training.writers import MetricWriter

__all__ = [
  "METHODS",
  "InputPipeline",
  "MetricWriter",
  "NonFiniteLossError",
  "Run",
  "check_loop_config",
  "evaluate",
  "export_samples",
  "get_method",
  "load_run",
  "loop_defaults",
  "parse_arg",
  "read_config",
  "train_and_evaluate",
  "warm_start_source",
]
