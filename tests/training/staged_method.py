"""A method trained in two stages, for the trainer's stages: the landmark regressor of
`fitting_method`, first at a tenth of its learning rate ("warmup"), then at the full rate
("fit"), each stage with its own optimiser and optimiser state.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxface.methods.protocol import Stage, init_optimizer
from tests.training import fitting_method
from tests.training.fitting_method import Regressor, State, create_dataset, evaluate, summaries

__all__ = ["create_dataset", "create_state", "evaluate", "get_config", "stages", "summaries"]


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = fitting_method.get_config(arg)
  config.method = "tests.training.staged_method"
  del config.num_steps  # the stages' own lengths set the run's
  config.warmup_steps = 7
  config.fit_steps = 8
  config.eval_every = 0
  config.summary_every = 0
  return config


def stages(config) -> tuple[Stage, ...]:
  return (
    Stage("warmup", config.warmup_steps, train_step, ("params",),
          optax.adam(0.1 * config.learning_rate)),
    Stage("fit", config.fit_steps, train_step, ("params",), optax.adam(config.learning_rate)),
  )  # fmt: skip


def create_state(config, rng, dataset):
  params = Regressor(config.hidden).init(rng, dataset[0]["landmarks"][None])["params"]
  return State(
    step=jnp.zeros((), jnp.int32),
    params=params,
    opt_state={stage.name: init_optimizer(stage, {"params": params}) for stage in stages(config)},
    rng=jax.random.fold_in(rng, 1),
  )


def train_step(state: State, batch, *, config, stage: Stage):
  noise_rng = jax.random.fold_in(state.rng, state.step)
  loss, grads = jax.value_and_grad(fitting_method.regression_loss)(
    state.params, batch, noise_rng, config
  )
  updates, opt_state = stage.optimizer.update(grads, state.opt_state[stage.name], state.params)
  return state.replace(
    step=state.step + 1,
    params=optax.apply_updates(state.params, updates),
    opt_state={**state.opt_state, stage.name: opt_state},
  ), {f"{stage.name}/loss": loss}
