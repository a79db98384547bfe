"""Reading a finished (or running) training run back: its config, method and a checkpoint's state.

`load_run(workdir)` is what every command that reads a run uses (the photo
command, the paper-metrics and report tools, `--mode=evaluate/export`): the
config the run saved (`config.json`, fully resolved), the method it names,
and the state of its newest checkpoint that restores (or of a given step),
placed on `num_devices` devices. It restores the run's own checkpoint and
never reads the runs it was warm-started from.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import types
from typing import Any, NamedTuple

import jax
import ml_collections
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxface.errors import ConfigError, InputFileError, NotFoundError
from jaxface.training import checkpoints
from jaxface.training.pipeline import data_mesh
from jaxface.training.registry import get_method

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"


class Run(NamedTuple):
  """A run read back by `load_run`.

  Attributes:
    workdir: the run's folder.
    config: its resolved config, as a FrozenConfigDict (what its steps saw).
    method: the method module it names.
    state: the restored state, replicated over the requested devices.
    step: the checkpoint's step.
  """

  workdir: pathlib.Path
  config: ml_collections.FrozenConfigDict
  method: types.ModuleType
  state: Any
  step: int


def read_config(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
  """The config a run saved in `workdir/config.json`; one error naming what is missing."""
  workdir = pathlib.Path(workdir)
  if not workdir.is_dir():
    raise NotFoundError(f"run folder {workdir} not found")
  path = workdir / CONFIG_FILE
  if not path.is_file():
    raise NotFoundError(f"{path} not found: {workdir} is not a training run's folder")
  try:
    return ml_collections.ConfigDict(json.loads(path.read_text()))
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise InputFileError(f"{path} is not a readable config ({error})") from None


def latest_evaluation(workdir: str | pathlib.Path, marker: str) -> dict[str, float]:
  """The last evaluation a run logged: its `eval/` scalars without the prefix, and its "step".

  An evaluation is a metrics.jsonl record holding `eval/<marker>` (written at
  the end of training or by `train/main.py --mode=evaluate`).
  """
  path = pathlib.Path(workdir) / METRICS_FILE
  if not path.exists():
    raise NotFoundError(f"{path} not found: is {workdir} a training run's folder?")
  try:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise InputFileError(f"{path} is not a metrics log ({error})") from None
  evaluations = [record for record in records if f"eval/{marker}" in record]
  if not evaluations:
    raise InputFileError(
      f"{path} holds no evaluation with eval/{marker}: evaluate the run with "
      f"`python train/main.py --config=... --workdir={workdir} --mode=evaluate`"
    )
  last = evaluations[-1]
  scalars = {k.removeprefix("eval/"): v for k, v in last.items() if k.startswith("eval/")}
  return {**scalars, "step": last.get("step", -1)}


def load_run(
  workdir: str | pathlib.Path,
  step: int | None = None,
  *,
  config: ml_collections.ConfigDict | None = None,
  method: str | None = None,
  num_devices: int | None = None,
  move_damaged: bool = False,
) -> Run:
  """A run's config, method and checkpoint (the newest that restores, or `step`).

  Args:
    workdir: the run's folder (config.json, checkpoints/).
    step: the checkpoint to restore; None: the newest that restores (older ones are tried
      when it fails, see `checkpoints.restore_newest`).
    config: use this config instead of the saved one (e.g. with command-line overrides).
    method: require this method key ("facefill"); a run of another method is an error.
    num_devices: devices to replicate the state over; None: the config's `num_devices`.
    move_damaged: move checkpoints that fail to restore aside (the run's own commands);
      False only warns (reading someone else's run).
  """
  workdir = pathlib.Path(workdir)
  config = read_config(workdir) if config is None else config
  if method is not None and config.get("method") != method:
    raise ConfigError(f"{workdir} is a {config.get('method')!r} run, not a {method!r} one")
  frozen = ml_collections.FrozenConfigDict(config)
  module = get_method(frozen.method)
  folder = workdir / "checkpoints"
  if not checkpoints.has_checkpoints(folder):  # before the dataset and state are built
    raise NotFoundError(f"no checkpoint in {folder}")
  fresh = module.create_state(
    frozen, jax.random.PRNGKey(frozen.seed), module.create_dataset(frozen, "train")
  )
  devices = frozen.get("num_devices", 0) if num_devices is None else num_devices
  fresh = jax.device_put(fresh, NamedSharding(data_mesh(devices), P()))
  with contextlib.closing(checkpoints.manager(folder, read_only=not move_damaged)) as series:
    if step is not None:
      return Run(workdir, frozen, module, checkpoints.restore_step(series, fresh, step), step)
    found = checkpoints.restore_newest(series, fresh, move_damaged=move_damaged)
  if found is None:
    raise NotFoundError(f"no checkpoint in {folder}")
  return Run(workdir, frozen, module, found[1], found[0])
