"""The generic training loop: mesh + sharding, one jitted donated step per stage, orbax
checkpoints, logging, periodic evaluation and summaries, preemption and a non-finite guard. It
knows nothing method-specific; see `registry` for the protocol.

Before any work the loop checks its own config fields and the workdir
(`config.check_loop_config`), asks the method for its stages (where the
method checks its own fields) and, for a fresh run, that the runs it starts
from exist. Then the workdir is the resume key, in this order: its newest
checkpoint that restores (`checkpoints.restore_newest`); otherwise
`config.init_from` and the `config.warm_start` sources applied to a fresh
state; otherwise the fresh state. The batch of step s is a pure function of
(seed, s) (`pipeline.InputPipeline`) and methods derive per-step randomness
from the step, so a resumed run repeats an uninterrupted one.

Multi-host: every process runs this loop on its slice of each batch; only
process 0 writes logs, summaries and run info (checkpoints are written by
all, as orbax requires).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import logging
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
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

from jaxface.errors import ConfigError
from jaxface.training import checkpoints
from jaxface.training.config import check_loop_config, check_workdir, make_workdir
from jaxface.training.pipeline import InputPipeline, data_mesh
from jaxface.training.registry import get_method
from jaxface.training.runs import load_run
from jaxface.training.schedule import check_modules, method_stages, stage_at, total_steps
from jaxface.training.writers import MetricWriter

log = logging.getLogger(__name__)

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
  """Every `every` steps and at the last; never when `every` < 0 (see `loop_defaults`)."""
  if every < 0:
    return False
  return step == last or (every > 0 and step % every == 0)


def _host_batch(batch) -> dict[str, np.ndarray]:
  """The whole global batch as numpy on every process (what `summaries` reads)."""
  return multihost_utils.process_allgather(batch, tiled=True)


def _initial_state(method, config, dataset, stages, series, sharding):
  """(start step, state): resume -> warm start -> fresh init (see the module docstring)."""
  fresh = method.create_state(config, jax.random.PRNGKey(config.seed), dataset)
  check_modules(stages, fresh, config.method)
  fresh = jax.device_put(fresh, sharding)
  found = checkpoints.restore_newest(series, fresh, move_damaged=True)
  if found is not None:
    log.info("resuming from %s at step %d", series.directory, found[0])
    return found
  state = fresh
  if config.init_from:
    state = checkpoints.init_from(state, config)
  state = checkpoints.warm_start(state, config)
  return 0, jax.device_put(state, sharding)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path):
  """Trains `config.method` in `workdir`, resuming from it; returns the final state."""
  check_loop_config(config)
  method = get_method(config.method)
  # What every method function sees: immutable and hashable, so a jitted step can close over it.
  frozen = ml_collections.FrozenConfigDict(config)
  stages = method_stages(method, frozen)
  workdir = check_workdir(workdir)
  if not checkpoints.has_checkpoints(workdir / "checkpoints"):
    checkpoints.check_sources(frozen)  # a fresh run: the runs it starts from must exist
  make_workdir(workdir)
  is_main = jax.process_index() == 0
  mesh = data_mesh(config.num_devices)
  data_sharding = NamedSharding(mesh, P("data"))
  replicated = NamedSharding(mesh, P())
  if is_main:
    _write_run_info(workdir, config, mesh.devices.ravel().tolist())
  with contextlib.ExitStack() as resources:  # closed in reverse order, also on errors
    series = checkpoints.manager(workdir / "checkpoints", config.max_checkpoints_to_keep)
    resources.callback(_finish_saving, series)
    best = None
    if config.best_metric:
      best = checkpoints.manager(
        workdir / "best", 1, best_fn=lambda m: m[config.best_metric], best_mode=config.best_mode
      )
      resources.callback(_finish_saving, best)
    writer = resources.enter_context(contextlib.closing(MetricWriter(workdir, enabled=is_main)))
    dataset = method.create_dataset(frozen, "train")
    pipeline = resources.enter_context(
      contextlib.closing(
        InputPipeline(dataset, config.batch_size, config.seed, data_sharding, config.prefetch)
      )
    )
    start_step, state = _initial_state(method, frozen, dataset, stages, series, replicated)
    last = total_steps(stages)
    progress = resources.enter_context(
      tqdm(
        total=last, initial=start_step, unit="step", dynamic_ncols=True,
        disable=not (is_main and config.progress_bar and sys.stderr.isatty()),
      )
    )  # fmt: skip
    jitted = {}  # stage index -> its jitted step, compiled when the stage is reached

    def step_function(index: int):
      if index not in jitted:
        stage = stages[index]
        bound = functools.partial(stage.step, config=frozen, stage=stage)
        jitted[index] = jax.jit(bound, donate_argnums=(0,))
      return jitted[index]

    staged = len(stages) > 1
    last_saved = series.latest_step()
    eval_data = None
    pending: list[dict] = []
    first_pending = start_step + 1
    interval_start = time.perf_counter()
    with _Preemption() as preemption:
      for step in range(start_step, last):
        batch = pipeline.batch(step)
        index = stage_at(stages, step)
        state, metrics = step_function(index)(state, batch)
        pending.append(metrics)
        done = step + 1
        # Stages log different metrics: an interval never straddles a stage boundary.
        stage_ends = staged and done < last and stage_at(stages, done) != index
        progress.update(1)
        # Read the flag once: a SIGTERM arriving later in this step is handled after the next one,
        # so the checkpoint written and the step reported always agree.
        preempted = preemption.requested
        stopping = preempted or done == last
        save = stopping or _due(done, config.checkpoint_every, last)
        if pending and (save or stage_ends or _due(done, config.log_every, last)):
          # The only host sync of the loop body: metrics at logging/saving steps.
          means = _mean_metrics(pending)
          _check_finite(means, first_pending, done, last_saved)
          elapsed = time.perf_counter() - interval_start
          means["steps_per_second"] = len(pending) / max(elapsed, 1e-9)
          if staged:
            means["phase"] = float(index)
          writer.write_scalars(done, {f"train/{k}": v for k, v in means.items()})
          pending, first_pending, interval_start = [], done + 1, time.perf_counter()
        if _due(done, config.eval_every, last) and not preempted:
          if eval_data is None:
            eval_data = method.create_dataset(frozen, "eval")
          eval_metrics = _evaluate(method, state, eval_data, frozen)
          writer.write_scalars(done, eval_metrics)
          if best is not None:
            best.save(done, args=ocp.args.StandardSave(state), metrics=eval_metrics)
        if save:
          series.save(done, args=ocp.args.StandardSave(state))
          last_saved = done
          if is_main:
            log.info("saved checkpoint %d", done)
        if _due(done, config.summary_every, last) and not preempted:
          summaries = method.summaries(state, _host_batch(batch), frozen)
          writer.write_summaries(done, jax.device_get(summaries))
        if preempted:
          log.warning("SIGTERM: saved a checkpoint at step %d and stopped", done)
          if is_main:
            print(f"preempted: checkpoint saved at step {done}", flush=True)
          break
  return state


def _finish_saving(series: ocp.CheckpointManager) -> None:
  series.wait_until_finished()
  series.close()


def _evaluate(method, state, dataset, config) -> dict[str, float]:
  """`method.evaluate` as "eval/<name>" floats; `config.best_metric` must be among them."""
  metrics = {f"eval/{k}": float(v) for k, v in method.evaluate(state, dataset, config).items()}
  if config.best_metric and config.best_metric not in metrics:
    raise ConfigError(
      f"config.best_metric={config.best_metric!r} is not an evaluation metric of "
      f"{config.method}; it reports {sorted(metrics)}"
    )
  return metrics


def _eval_batch(run) -> dict[str, np.ndarray]:
  """The first batch of the run's eval split, as numpy (what `summaries` reads)."""
  dataset = run.method.create_dataset(run.config, "eval")
  return InputPipeline(dataset, run.config.batch_size, run.config.seed, None, 0).local_batch(0)


def evaluate(
  config: ml_collections.ConfigDict, workdir: str | pathlib.Path, step: int | None = None
):
  """Evaluates a checkpoint of `workdir` (the newest that restores by default) and logs `eval/*`."""
  check_loop_config(config)
  run = load_run(workdir, step, config=config, move_damaged=True)
  dataset = run.method.create_dataset(run.config, "eval")
  metrics = _evaluate(run.method, run.state, dataset, run.config)
  with contextlib.closing(MetricWriter(workdir, enabled=jax.process_index() == 0)) as writer:
    writer.write_scalars(run.step, metrics)
  return metrics


def export_samples(
  config: ml_collections.ConfigDict, workdir: str | pathlib.Path, step: int | None = None
):
  """Writes the method's summaries for an eval batch under workdir/summaries/step_N."""
  check_loop_config(config)
  run = load_run(workdir, step, config=config, move_damaged=True)
  summaries = run.method.summaries(run.state, _eval_batch(run), run.config)
  with contextlib.closing(MetricWriter(workdir, enabled=jax.process_index() == 0)) as writer:
    writer.write_summaries(run.step, jax.device_get(summaries))
  return pathlib.Path(workdir) / "summaries" / f"step_{run.step:08d}"
