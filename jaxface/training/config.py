"""Config helpers shared by `configs/*.py`: variant parsing and the loop's defaults."""

from __future__ import annotations

import ml_collections


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses `--config=file.py:smoke,model=ict` style arguments.

  A bare word sets `variant`; `key=value` pairs override `defaults` (values
  are parsed as int, float or bool when they look like one). Unknown keys
  raise a ValueError naming them.
  """
  result = dict(defaults)
  for part in filter(None, (arg or "").split(",")):
    key, sep, value = part.partition("=")
    if not sep:
      key, value = "variant", part
    key = key.strip()
    if key not in result:
      raise ValueError(f"unknown config argument {key!r}; known: {sorted(result)}")
    result[key] = _parse_value(value.strip())
  return ml_collections.ConfigDict(result)


def _parse_value(value: str):
  if value.lower() in ("true", "false"):
    return value.lower() == "true"
  for kind in (int, float):
    try:
      return kind(value)
    except ValueError:
      pass
  return value


def loop_defaults() -> ml_collections.ConfigDict:
  """The generic loop's fields; a method config starts from these."""
  config = ml_collections.ConfigDict()
  config.method = ""
  config.seed = 0
  config.batch_size = 32  # global, split over devices and hosts
  config.num_steps = 1000
  config.num_devices = 0  # 0: all devices
  config.log_every = 50
  config.checkpoint_every = 500
  config.max_checkpoints_to_keep = 3
  config.best_metric = ""  # e.g. "eval/psnr": also keep the best checkpoint by it
  config.best_mode = "max"
  config.eval_every = 0  # 0: only at the end
  config.summary_every = 0  # 0: only at the end
  config.init_from = ""  # a checkpoint directory to warm-start from
  config.prefetch = 2
  config.progress_bar = True
  return config
