"""A method trained in two phases, for the trainer's `phases` protocol: the landmark regressor
of `fitting_method`, first with its parameters frozen ("frozen": loss only), then fitted ("fit").
"""

from __future__ import annotations

import jax
import ml_collections

from tests.training import fitting_method
from tests.training.fitting_method import create_dataset, create_state, evaluate, summaries

__all__ = ["create_dataset", "create_state", "evaluate", "get_config", "phases", "summaries"]


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = fitting_method.get_config(arg)
  config.method = "tests.training.phased_method"
  config.frozen_steps = 7
  config.fit_steps = 8
  config.num_steps = config.get_ref("frozen_steps") + config.get_ref("fit_steps")
  config.eval_every = 0
  config.summary_every = 0
  return config


def phases(config: ml_collections.ConfigDict) -> tuple[tuple[str, int], ...]:
  return (("frozen", config.frozen_steps), ("fit", config.fit_steps))


def train_step(state: fitting_method.State, batch, phase: str):
  if phase == "fit":
    state, metrics = fitting_method.train_step(state, batch)
    return state, {"fit/loss": metrics["loss"]}
  noise_rng = jax.random.fold_in(state.rng, state.step)
  loss = fitting_method._loss(state.params, batch, noise_rng)
  return state.replace(step=state.step + 1), {"frozen/loss": loss}
