"""Trainer overhead: the full loop vs a bare jitted step on the same method and batches.

    python benchmarks/loop.py [--steps 300]

Uses the small landmark-regression method of the tests; both sides run the
same jitted `train_step` on the same prefetched batches, so the difference
is what the loop adds (logging, checkpoint bookkeeping, progress, signals).
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import sys
import tempfile
import time

import jax
import ml_collections
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import machine_line

from jaxface import training
from tests.training import fitting_method


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=300)
  args = parser.parse_args()
  config = fitting_method.get_config()
  config.num_steps = args.steps
  config.log_every = 50
  config.checkpoint_every = 10**9  # the final save only, timed separately by orbax
  config.eval_every = 10**9
  config.summary_every = 10**9
  config.batch_size = 64
  config.num_devices = 1

  dataset = fitting_method.create_dataset(config, "train")
  pipeline = training.InputPipeline(dataset, config.batch_size, config.seed, prefetch=2)
  start = time.perf_counter()
  batches = [pipeline.batch(step) for step in range(args.steps)]
  reading = (time.perf_counter() - start) / args.steps
  frozen = ml_collections.FrozenConfigDict(config)
  state = fitting_method.create_state(frozen, jax.random.PRNGKey(0), dataset)
  (stage,) = fitting_method.stages(frozen)
  step_fn = jax.jit(
    functools.partial(stage.step, config=frozen, stage=stage), donate_argnums=(0,)
  )  # exactly the loop's jitted step
  state, metrics = step_fn(state, batches[0])
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for batch in batches:
    state, metrics = step_fn(state, batch)
  jax.block_until_ready(metrics)
  bare = (time.perf_counter() - start) / args.steps

  with tempfile.TemporaryDirectory() as workdir:
    run = pathlib.Path(workdir)
    training.train_and_evaluate(config, run)
    # Steady state: the loop logs steps/s per interval (data reading included);
    # the first interval also holds compilation and is left out.
    rates = [
      record["train/steps_per_second"]
      for record in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
      if "train/steps_per_second" in record
    ][1:]
  loop = 1.0 / float(np.median(rates))
  print("## jaxface trainer overhead\n")
  print(machine_line())
  print("\n| what | ms/step |\n|---|---|")
  print(f"| bare jitted step (batches in memory) | {1e3 * bare:.3f} |")
  print(
    f"| input pipeline alone: read + place one batch of {config.batch_size} | {1e3 * reading:.3f} |"
  )
  print(f"| train_and_evaluate, steady state (median over logging intervals) | {1e3 * loop:.3f} |")
  added = loop - bare - reading
  print(
    f"\nloop minus step minus data: {1e3 * added:.3f} ms/step "
    f"({100 * added / bare:.1f}% of this tiny step; {100 * (loop / bare - 1):.0f}% with data)"
  )


if __name__ == "__main__":
  main()
