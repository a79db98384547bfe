"""The generic training loop: mesh + sharding, one jitted donated step (one per
phase for methods trained in phases), orbax checkpoints, logging, periodic
evaluation and summaries, preemption and a non-finite guard. It knows nothing
method-specific; see `registry`.

The workdir is the resume key: on start the latest checkpoint in
`workdir/checkpoints` is restored; otherwise `config.init_from` warm-starts;
otherwise the method initialises. The batch of step s is a pure function of
(seed, s) (`pipeline.InputPipeline`), and the method derives per-step
randomness from the step, so a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import math
import pathlib
import signal
import sys
import threading
import time

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

from jaxface.training.pipeline import InputPipeline
from jaxface.training.registry import get_method
from jaxface.training.writers import MetricWriter

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "jaxface")


class NonFiniteLossError(FloatingPointError):
  """Raised when a logged metric is NaN or infinite."""


def _versions() -> dict[str, str]:
  versions = {}
  for package in _PACKAGES:
    try:
      versions[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      versions[package] = "not installed"
  return versions


def _write_run_info(workdir: pathlib.Path, config: ml_collections.ConfigDict, devices) -> None:
  (workdir / "config.json").write_text(config.to_json_best_effort(indent=2) + "\n")
  info = {
    "versions": _versions(),
    "python": sys.version.split()[0],
    "process_count": jax.process_count(),
    "devices": [str(device) for device in devices],
    "argv": sys.argv,
  }
  (workdir / "run_info.json").write_text(json.dumps(info, indent=2) + "\n")


def _mesh(config) -> Mesh:
  devices = jax.devices()
  if config.num_devices:
    if config.num_devices > len(devices):
      raise ValueError(
        f"config.num_devices={config.num_devices} but only {len(devices)} devices exist"
      )
    devices = devices[: config.num_devices]
  if config.batch_size % len(devices):
    raise ValueError(
      f"config.batch_size={config.batch_size} is not divisible by {len(devices)} devices"
    )
  return Mesh(np.asarray(devices), ("data",))


def _abstract(state):
  return jax.tree_util.tree_map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state
  )


def _manager(directory: pathlib.Path, max_to_keep: int, **options) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
    directory.absolute(),
    options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, **options),
  )


def _restore_or_init(manager, state, config) -> tuple[int, object]:
  """(start step, state): the workdir's latest checkpoint, else init_from, else as given."""
  latest = manager.latest_step()
  if latest is not None:
    logging.info("resuming from %s at step %d", manager.directory, latest)
    return latest, manager.restore(latest, args=ocp.args.StandardRestore(_abstract(state)))
  if config.init_from:
    source = pathlib.Path(config.init_from)
    if not source.exists():
      raise FileNotFoundError(f"config.init_from={config.init_from!r} does not exist")
    with contextlib.closing(_manager(source, 1, read_only=True)) as other:
      step = other.latest_step()
      if step is None:
        raise ValueError(f"config.init_from={config.init_from!r} holds no checkpoint")
      logging.info("warm-starting from %s step %d", source, step)
      try:
        restored = other.restore(step, args=ocp.args.StandardRestore(_abstract(state)))
      except (ValueError, KeyError) as error:
        raise ValueError(
          f"config.init_from={config.init_from!r}: incompatible state ({error})"
        ) from None
    return 0, restored
  return 0, state


class _Preemption:
  """Turns SIGTERM into a flag the loop checks after each step."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def _mean_metrics(pending: list[dict]) -> dict[str, float]:
  fetched = jax.device_get(pending)
  return {key: float(np.mean([m[key] for m in fetched])) for key in fetched[0]}


def phase_schedule(method, config: ml_collections.ConfigDict) -> tuple[tuple[str, int], ...]:
  """The method's ((phase, steps), ...), or () for a single-step method; checked against
  `config.num_steps`."""
  if not hasattr(method, "phases"):
    return ()
  phases = tuple((str(name), int(steps)) for name, steps in method.phases(config))
  if not phases or any(steps <= 0 for _, steps in phases):
    raise ValueError(f"{config.method}.phases(config) must give positive step counts: {phases}")
  total = sum(steps for _, steps in phases)
  if total != config.num_steps:
    raise ValueError(
      f"config.num_steps={config.num_steps} but {config.method}'s phases "
      f"{dict(phases)} add up to {total}"
    )
  return phases


def phase_at(phases: tuple[tuple[str, int], ...], step: int) -> int:
  """Index into `phases` of the phase that trains 0-based `step`."""
  ends = np.cumsum([steps for _, steps in phases])
  return int(min(np.searchsorted(ends, step, side="right"), len(phases) - 1))


def _check_finite(
  means: dict[str, float], first_step: int, last_step: int, checkpoint_step
) -> None:
  bad = sorted(name for name, value in means.items() if not math.isfinite(value))
  if bad:
    kept = (
      "no checkpoint was written"
      if checkpoint_step is None
      else f"the last good checkpoint is step {checkpoint_step}"
    )
    raise NonFiniteLossError(
      f"non-finite {', '.join(bad)} between steps {first_step} and {last_step}; "
      f"stopping ({kept}, untouched)"
    )


def _due(step: int, every: int, last: int) -> bool:
  return step == last or (every > 0 and step % every == 0)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path):
  """Trains `config.method` in `workdir`, resuming from it; returns the final state."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  is_main = jax.process_index() == 0
  method = get_method(config.method)
  mesh = _mesh(config)
  data_sharding = NamedSharding(mesh, P("data"))
  replicated = NamedSharding(mesh, P())
  if is_main:
    _write_run_info(workdir, config, mesh.devices.ravel().tolist())
  writer = MetricWriter(workdir, enabled=is_main)
  pipeline = InputPipeline(
    method.create_dataset(config, "train"),
    config.batch_size,
    config.seed,
    data_sharding,
    config.prefetch,
  )
  eval_data = None
  state = method.create_state(config, jax.random.PRNGKey(config.seed), pipeline.batch(0))
  state = jax.device_put(state, replicated)
  manager = _manager(workdir / "checkpoints", config.max_checkpoints_to_keep)
  best_manager = None
  if config.best_metric:
    best_manager = _manager(
      workdir / "best", 1, best_fn=lambda m: m[config.best_metric], best_mode=config.best_mode
    )
  start_step, state = _restore_or_init(manager, state, config)
  last_saved = manager.latest_step()
  phases = phase_schedule(method, config)
  train_steps = {}  # phase index -> its jitted step, compiled when the phase is reached

  def train_step_at(step: int):
    index = phase_at(phases, step) if phases else -1
    if index not in train_steps:
      function = method.train_step
      if phases:
        function = functools.partial(function, phase=phases[index][0])
      train_steps[index] = jax.jit(function, donate_argnums=(0,))
    return index, train_steps[index]

  last = config.num_steps
  progress = tqdm(
    total=last, initial=start_step, unit="step", dynamic_ncols=True,
    disable=not (is_main and config.progress_bar and sys.stderr.isatty()),
  )  # fmt: skip
  pending: list[dict] = []
  first_pending = start_step + 1
  interval_start = time.perf_counter()
  try:
    with _Preemption() as preemption:
      for step in range(start_step, last):
        batch = pipeline.batch(step)
        phase, train_step = train_step_at(step)
        state, metrics = train_step(state, batch)
        pending.append(metrics)
        done = step + 1
        # Phases log different metrics: an interval never straddles a phase boundary.
        phase_ends = bool(phases) and done < last and phase_at(phases, done) != phase
        progress.update(1)
        # Read the flag once: a SIGTERM arriving later in this step is handled after the next one,
        # so the checkpoint written and the step reported always agree.
        preempted = preemption.requested
        stopping = preempted or done == last
        save = stopping or _due(done, config.checkpoint_every, last)
        if pending and (save or phase_ends or _due(done, config.log_every, last)):
          # The only host sync of the loop body: metrics at logging/saving steps.
          means = _mean_metrics(pending)
          _check_finite(means, first_pending, done, last_saved)
          elapsed = time.perf_counter() - interval_start
          means["steps_per_second"] = len(pending) / max(elapsed, 1e-9)
          if phases:
            means["phase"] = float(phase)
          writer.write_scalars(done, {f"train/{k}": v for k, v in means.items()})
          pending, first_pending, interval_start = [], done + 1, time.perf_counter()
        eval_metrics = {}
        if _due(done, config.eval_every, last) and not preempted:
          if eval_data is None:
            eval_data = method.create_dataset(config, "eval")
          eval_metrics = {
            f"eval/{k}": float(v) for k, v in method.evaluate(state, eval_data, config).items()
          }
          writer.write_scalars(done, eval_metrics)
          if best_manager is not None:
            best_manager.save(done, args=ocp.args.StandardSave(state), metrics=eval_metrics)
        if save:
          manager.save(done, args=ocp.args.StandardSave(state))
          last_saved = done
        if _due(done, config.summary_every, last) and not preempted:
          writer.write_summaries(done, jax.device_get(method.summaries(state, batch)))
        if preempted:
          logging.warning("SIGTERM: saved a checkpoint at step %d and stopped", done)
          print(f"preempted: checkpoint saved at step {done}", flush=True)
          break
  finally:
    progress.close()
    manager.wait_until_finished()
    manager.close()
    if best_manager is not None:
      best_manager.wait_until_finished()
      best_manager.close()
    writer.close()
    pipeline.close()
  return state


def restore(
  config: ml_collections.ConfigDict, workdir: str | pathlib.Path, step: int | None = None
):
  """A checkpoint of `workdir` (latest by default).

  Returns (method module, state, step, eval dataset, an eval batch).
  """
  workdir = pathlib.Path(workdir)
  method = get_method(config.method)
  mesh = _mesh(config)
  dataset = method.create_dataset(config, "eval")
  pipeline = InputPipeline(
    dataset, config.batch_size, config.seed, NamedSharding(mesh, P("data")), 0
  )
  example = pipeline.batch(0)
  state = jax.device_put(
    method.create_state(config, jax.random.PRNGKey(config.seed), example), NamedSharding(mesh, P())
  )
  with contextlib.closing(_manager(workdir / "checkpoints", 1, read_only=True)) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {workdir / 'checkpoints'}")
    state = manager.restore(step, args=ocp.args.StandardRestore(_abstract(state)))
  return method, state, step, dataset, example


def evaluate(
  config: ml_collections.ConfigDict, workdir: str | pathlib.Path, step: int | None = None
):
  """Evaluates a checkpoint of `workdir` (latest by default) and logs `eval/*` scalars."""
  workdir = pathlib.Path(workdir)
  method, state, step, dataset, _ = restore(config, workdir, step)
  metrics = {f"eval/{k}": float(v) for k, v in method.evaluate(state, dataset, config).items()}
  writer = MetricWriter(workdir, enabled=jax.process_index() == 0)
  writer.write_scalars(step, metrics)
  writer.close()
  return metrics


def export_samples(
  config: ml_collections.ConfigDict, workdir: str | pathlib.Path, step: int | None = None
):
  """Writes the method's summaries for an eval batch under workdir/summaries/step_N."""
  workdir = pathlib.Path(workdir)
  method, state, step, _, example = restore(config, workdir, step)
  writer = MetricWriter(workdir, enabled=jax.process_index() == 0)
  writer.write_summaries(step, jax.device_get(method.summaries(state, example)))
  writer.close()
  return workdir / "summaries" / f"step_{step:08d}"
