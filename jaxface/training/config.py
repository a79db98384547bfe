"""Config helpers shared by `configs/*.py` and the loop: variant parsing, the loop's fields and
their checks (run before any work, so a bad value costs one line, not a traceback)."""

from __future__ import annotations

import pathlib

import jax
import ml_collections

from jaxface.errors import ConfigError, UserError


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses `--config=file.py:smoke,model=ict` style arguments.

  A bare word sets `variant`; `key=value` pairs override `defaults` (values
  are parsed as int, float or bool when they look like one). Unknown keys
  raise a ConfigError naming them.
  """
  result = dict(defaults)
  for part in filter(None, (arg or "").split(",")):
    key, sep, value = part.partition("=")
    if not sep:
      key, value = "variant", part
    key = key.strip()
    if key not in result:
      raise ConfigError(f"unknown config argument {key!r}; known: {sorted(result)}")
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


def warm_start_source(modules: tuple[str, ...]) -> ml_collections.ConfigDict:
  """One `config.warm_start` entry: take `modules` from run `workdir` ("" = off) at `step`."""
  return ml_collections.ConfigDict({"workdir": "", "step": -1, "modules": tuple(modules)})


def loop_defaults() -> ml_collections.ConfigDict:
  """The generic loop's fields; a method config starts from these.

  A run's length is the total of its method's stages (`stages(config)`), which
  each method sets from its own fields (a single-stage method: `num_steps`).
  """
  config = ml_collections.ConfigDict()
  config.method = ""
  config.seed = 0
  config.batch_size = 32  # global, split over devices and hosts
  config.num_devices = 0  # 0: all devices
  config.log_every = 50
  config.checkpoint_every = 500
  config.max_checkpoints_to_keep = 3
  config.best_metric = ""  # e.g. "eval/psnr": also keep the best checkpoint by it
  config.best_mode = "max"
  config.eval_every = 0  # 0: only at the end; -1: never
  config.summary_every = 0  # 0: only at the end; -1: never
  # A run (workdir or its checkpoints/) whose whole state starts this one; its step count goes on.
  config.init_from = ""
  # Named sources of modules for a fresh run: {name: warm_start_source(modules)}, each taking the
  # listed state fields from run `workdir` (its latest checkpoint, or `step`).
  config.warm_start = ml_collections.ConfigDict()
  config.prefetch = 2
  config.progress_bar = True
  return config


def _integer(config, name: str, minimum: int) -> int:
  value = config.get(name)
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise ConfigError(f"config.{name}={value!r} must be an integer >= {minimum}")
  return value


def check_loop_config(config: ml_collections.ConfigDict) -> None:
  """The loop's own fields, against this machine's devices and processes."""
  if not config.get("method"):
    raise ConfigError("config.method is empty: name a registered method or a dotted module path")
  for name, minimum in [
    ("seed", 0), ("batch_size", 1), ("num_devices", 0), ("log_every", 0),
    ("checkpoint_every", 0), ("max_checkpoints_to_keep", 1), ("eval_every", -1),
    ("summary_every", -1), ("prefetch", 0),
  ]:  # fmt: skip
    _integer(config, name, minimum)
  if config.best_mode not in ("max", "min"):
    raise ConfigError(f"config.best_mode={config.best_mode!r} must be 'max' or 'min'")
  if config.best_metric and not str(config.best_metric).startswith("eval/"):
    raise ConfigError(
      f"config.best_metric={config.best_metric!r} must name an evaluation metric, 'eval/...'"
    )
  available = jax.device_count()
  if config.num_devices > available:
    raise ConfigError(f"config.num_devices={config.num_devices} but only {available} devices exist")
  devices = config.num_devices or available
  if config.batch_size % devices:
    raise ConfigError(
      f"config.batch_size={config.batch_size} is not divisible by the {devices} devices"
    )
  if config.batch_size % jax.process_count():
    raise ConfigError(
      f"config.batch_size={config.batch_size} is not divisible by the "
      f"{jax.process_count()} processes"
    )


def check_workdir(workdir: str | pathlib.Path) -> pathlib.Path:
  """The run folder as a path; one error when it is a file or lies under one (nothing made)."""
  workdir = pathlib.Path(workdir)
  for folder in (workdir, *workdir.parents):
    if folder.exists():
      if not folder.is_dir():
        raise UserError(f"workdir {workdir}: {folder} is a file, not a folder")
      break
  return workdir


def make_workdir(workdir: pathlib.Path) -> None:
  """Creates the run folder; one error when that is not possible (permissions, a full disk)."""
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as error:
    raise UserError(f"workdir {workdir} cannot be created ({error.strerror})") from None
