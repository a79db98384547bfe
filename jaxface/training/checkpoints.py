"""A run's checkpoints: restoring the newest one that works, and taking modules from other runs.

- `restore_newest`: the newest checkpoint of a series that restores. One that
  fails (a damaged array file, a half-copied folder) is reported with one
  warning naming its step and the error, moved aside into
  `<workdir>/damaged_checkpoints/` (never deleted) and the next older one is
  tried; nothing is moved unless an older one restores, so a run whose
  checkpoints all fail (say, after a config change that alters the state)
  keeps every file and stops with one error listing what was tried.
- `warm_start`: the `config.warm_start` sources, "modules X, Y from run R
  (its latest step, or a given one)", replacing those fields of a fresh
  state; `init_from`: a whole state from another run. The loop applies them
  only to a run that has no checkpoint of its own (resume -> warm start ->
  fresh init), so a resumed run never reads its source runs again.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util
from jax.experimental import multihost_utils

from jaxface.errors import CheckpointError, ConfigError, NotFoundError
from jaxface.logs import absl_quiet

log = logging.getLogger(__name__)

#: Where checkpoints that fail to restore are moved, beside the run's checkpoints/.
DAMAGED_FOLDER = "damaged_checkpoints"


def manager(
  directory: pathlib.Path, max_to_keep: int | None = None, *, read_only: bool = False, **options
) -> ocp.CheckpointManager:
  """An orbax manager of the checkpoint series in `directory` (keeping all by default)."""
  if read_only:
    options.update(read_only=True, create=False, save_interval_steps=0)
    with absl_quiet():  # orbax warns "Given directory is read only" for every one
      return ocp.CheckpointManager(
        pathlib.Path(directory).absolute(), options=ocp.CheckpointManagerOptions(**options)
      )
  return ocp.CheckpointManager(
    pathlib.Path(directory).absolute(),
    options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, **options),
  )


def abstract(state):
  """The state's shapes, dtypes and shardings: the target a checkpoint restores into."""
  return jax.tree_util.tree_map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)), state
  )


def checkpoint_folder(path: str | pathlib.Path, field: str) -> pathlib.Path:
  """The checkpoints/ folder of a run given as its workdir or as that folder itself."""
  folder = pathlib.Path(path).expanduser()
  if (folder / "checkpoints").is_dir():
    folder = folder / "checkpoints"
  if not folder.is_dir():
    raise NotFoundError(f"{field}={str(path)!r} is not a run's workdir or checkpoints folder")
  return folder


def has_checkpoints(folder: pathlib.Path) -> bool:
  """Whether `folder` holds a checkpoint step (orbax names them by their step)."""
  return folder.is_dir() and any(child.name.isdigit() for child in folder.iterdir())


def _first_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0] if text else ''}"


def move_aside(checkpoints: pathlib.Path, step: int) -> pathlib.Path:
  """Moves checkpoint `step` out of the series into ../damaged_checkpoints/; returns where."""
  folder = checkpoints.parent / DAMAGED_FOLDER
  folder.mkdir(exist_ok=True)
  target, copy = folder / str(step), 1
  while target.exists():  # an earlier failure of the same step: keep both
    copy += 1
    target = folder / f"{step}_{copy}"
  (checkpoints / str(step)).rename(target)
  return target


def restore_newest(series: ocp.CheckpointManager, target, *, move_damaged: bool):
  """(step, state) of the newest checkpoint of `series` that restores into `target`'s structure,
  or None when the series is empty. See the module docstring for what happens to those that
  fail; `move_damaged=False` (another user's run, a source run) only warns."""
  folder = pathlib.Path(str(series.directory))
  failures: list[tuple[int, BaseException]] = []
  for step in sorted(series.all_steps(), reverse=True):
    try:
      state = series.restore(step, args=ocp.args.StandardRestore(abstract(target)))
    except Exception as error:  # orbax and TensorStore raise bare Exceptions for bad files
      failures.append((step, error))
      continue
    for bad_step, error in failures:
      where = "left in place"
      if move_damaged and jax.process_index() == 0:
        where = f"moved to {move_aside(folder, bad_step)}"
      elif move_damaged:
        where = f"moved to {folder.parent / DAMAGED_FOLDER} by process 0"
      log.warning(
        "checkpoint %d of %s does not restore (%s); %s; using step %d",
        bad_step, folder, _first_line(error), where, step,
      )  # fmt: skip
    if failures and move_damaged:
      if jax.process_count() > 1:  # every process sees the series after process 0 moved
        multihost_utils.sync_global_devices("jaxface_checkpoints_moved_aside")
      series.reload()
    return step, state
  if failures:
    tried = "; ".join(f"step {step}: {_first_line(error)}" for step, error in failures)
    raise CheckpointError(f"no checkpoint in {folder} restores ({tried})")
  return None


def restore_step(series: ocp.CheckpointManager, target, step: int):
  """Checkpoint `step` of `series`; one error naming it when it is missing or does not restore."""
  folder = pathlib.Path(str(series.directory))
  steps = sorted(series.all_steps())
  if step not in steps:
    raise NotFoundError(f"checkpoint {folder / str(step)} not found; the run has steps {steps}")
  try:
    return series.restore(step, args=ocp.args.StandardRestore(abstract(target)))
  except Exception as error:
    raise CheckpointError(
      f"checkpoint {folder / str(step)} does not restore ({_first_line(error)})"
    ) from error


def _shapes(tree) -> dict:
  return {k: tuple(np.shape(v)) for k, v in traverse_util.flatten_dict(tree, sep="/").items()}


def _source_step(series: ocp.CheckpointManager, step: int, field: str) -> int:
  steps = sorted(series.all_steps())
  if not steps:
    raise NotFoundError(f"{field}: {series.directory} holds no checkpoint")
  if step < 0:
    return steps[-1]
  if step not in steps:
    raise NotFoundError(f"{field}.step={step}: {series.directory} has steps {steps}")
  return step


def take_modules(state, source: ml_collections.ConfigDict, field: str):
  """`state` with the fields `source.modules` replaced by those of run `source.workdir`."""
  modules = tuple(source.modules)
  with contextlib.closing(
    manager(checkpoint_folder(source.workdir, f"{field}.workdir"), read_only=True)
  ) as series:
    step = _source_step(series, int(source.step), field)
    # No target: the source may differ elsewhere (another stage, ablation or width).
    try:
      restored = series.restore(step, args=ocp.args.StandardRestore())
    except Exception as error:
      raise CheckpointError(
        f"{field}: checkpoint {step} of {source.workdir} does not restore "
        f"({_first_line(error)}); choose another with {field}.step"
      ) from error
  changes = {}
  for name in modules:
    if name not in restored:
      raise ConfigError(f"{field}: the checkpoint of {source.workdir} has no module {name!r}")
    mine, theirs = getattr(state, name), restored[name]
    if _shapes(theirs) != _shapes(mine):
      differing = sorted(set(_shapes(theirs).items()) ^ set(_shapes(mine).items()))[:4]
      raise ConfigError(
        f"{field}: the {name} of {source.workdir} does not match this config's (first "
        f"differences, name and shape: {differing}); check widths, sizes and ablation"
      )
    changes[name] = jax.tree_util.tree_map(
      lambda new, old: jnp.asarray(new, old.dtype), theirs, mine
    )
  log.info("warm start: %s from %s step %d", ", ".join(modules), source.workdir, step)
  return state.replace(**changes)


def warm_start(state, config: ml_collections.ConfigDict):
  """`state` with every `config.warm_start` source that names a workdir applied, in order."""
  for name, source in config.warm_start.items():
    if source.workdir:
      state = take_modules(state, source, f"config.warm_start.{name}")
  return state


def init_from(state, config: ml_collections.ConfigDict):
  """The whole state of run `config.init_from` (its newest checkpoint that restores)."""
  folder = checkpoint_folder(config.init_from, "config.init_from")
  with contextlib.closing(manager(folder, read_only=True)) as series:
    try:
      found = restore_newest(series, state, move_damaged=False)
    except CheckpointError as error:
      raise ConfigError(f"config.init_from={config.init_from!r}: {error}") from None
  if found is None:
    raise NotFoundError(f"config.init_from={config.init_from!r} holds no checkpoint")
  log.info("warm start: the whole state of %s step %d", folder, found[0])
  return found[1]


def check_sources(config: ml_collections.ConfigDict) -> None:
  """The runs a fresh run starts from exist and hold checkpoints (before any work is done)."""
  if config.init_from:
    checkpoint_folder(config.init_from, "config.init_from")
  for name, source in config.warm_start.items():
    field = f"config.warm_start.{name}"
    for key in ("workdir", "step", "modules"):
      if key not in source:
        raise ConfigError(f"{field} needs the fields workdir, step and modules; it lacks {key!r}")
    if not source.workdir:
      continue
    if not source.modules or not all(isinstance(m, str) for m in source.modules):
      raise ConfigError(f"{field}.modules={source.modules!r} must name the modules to take")
    folder = checkpoint_folder(source.workdir, f"{field}.workdir")
    with contextlib.closing(manager(folder, read_only=True)) as series:
      _source_step(series, int(source.step), field)
