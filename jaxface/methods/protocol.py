"""What a method hands the trainer besides its five functions: its stages, as data.

A method's `stages(config)` returns one `Stage` per consecutive part of its
training (a single-stage method returns one). The trainer runs them in
order over one state and one checkpoint series, jits each stage's step once
(when the stage is reached), derives the run's length from their steps and
is the one place that checks the schedule (`jaxface.training.schedule`).
See `jaxface.training.registry` for the whole protocol.

The step of a stage is `step(state, batch, *, config, stage) -> (state,
metrics)`: pure, with `config` (a hashable `FrozenConfigDict`) and its own
`Stage` record bound once by the trainer, so it reads its hyper-parameters
from the config and its optimiser from the record, and nothing mirrors
either.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import ml_collections
import optax

#: A stage's optimiser: one transformation over the dict {module: parameters} of its modules
#: (or over the one module's parameters), or one per module for modules updated one after the
#: other within a step (a GAN's critic, then its generator).
Optimizer = optax.GradientTransformation | Mapping[str, optax.GradientTransformation]


@dataclasses.dataclass(frozen=True)
class Stage:
  """One consecutive part of a method's training.

  Attributes:
    name: the stage's name, unique within the method ("3dmm", "inpaint", ...).
    steps: how many steps it trains (> 0).
    step: `step(state, batch, *, config, stage) -> (state, metrics)`, pure; the trainer
      binds `config` and `stage` and jits it with the state donated.
    modules: the fields of the state whose parameters the stage trains; every other field
      stays as it is (optimiser states and counters aside).
    optimizer: its optimiser (see `Optimizer`); the method's `create_state` initialises
      it with `init_optimizer` and its step applies it.
  """

  name: str
  steps: int
  step: Callable[..., tuple[Any, dict]]
  modules: tuple[str, ...]
  optimizer: Optimizer


def init_optimizer(stage: Stage, params: Mapping[str, Any]):
  """The optimiser state of `stage` for its modules' parameters `params` {module: tree}.

  One transformation: its state over {module: tree} (over the tree itself when the stage
  trains one module). One per module: {module: its state}.
  """
  missing = [name for name in stage.modules if name not in params]
  if missing:
    raise ValueError(f"stage {stage.name!r}: no parameters given for its modules {missing}")
  if isinstance(stage.optimizer, Mapping):
    return {name: stage.optimizer[name].init(params[name]) for name in stage.modules}
  if len(stage.modules) == 1:
    return stage.optimizer.init(params[stage.modules[0]])
  return stage.optimizer.init({name: params[name] for name in stage.modules})


def frozen(config) -> ml_collections.FrozenConfigDict:
  """`config` as the hashable FrozenConfigDict the method functions receive (a no-op when it is
  one): for entry points a user may call with a plain ConfigDict."""
  if isinstance(config, ml_collections.FrozenConfigDict):
    return config
  return ml_collections.FrozenConfigDict(config)
