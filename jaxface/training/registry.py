"""The method registry and the method protocol (version 2) every method implements.

A method module provides five functions:

- `create_dataset(config, split) -> dataset`: random access, `len(dataset)` and
  `dataset[index] -> dict of numpy arrays` (deterministic); split "train" or "eval".
- `create_state(config, rng, dataset) -> state`: a fresh state (a `flax.struct`
  dataclass, so the trainer can replace warm-started fields) for the training
  `dataset` the loop reads; shapes, labels and constants come from it.
- `stages(config) -> tuple[Stage, ...]`: the run's schedule as data
  (`jaxface.methods.protocol.Stage`: name, steps, step function, modules
  trained, optimiser), one record for a single-stage method. The loop calls it
  first, before any data is made, so it is also where a method checks its own
  config fields (raising `jaxface.errors.ConfigError` naming the field).
- `evaluate(state, dataset, config) -> dict of scalars` on the eval split.
- `summaries(state, batch, config) -> dict`: images (H, W, 3) / (N, H, W, 3) in
  [0, 1] and meshes {"name": (vertices, triangles)} to write, from a batch of
  numpy arrays (the whole global batch, on every process).

Every function receives the run's config as an `ml_collections.FrozenConfigDict`:
immutable and hashable. A stage's step is
`step(state, batch, *, config, stage) -> (state, metrics)`, pure; the loop
binds `config` and the stage's own record once (`functools.partial`) and jits
the result with the state donated, one compilation per stage when the stage
is reached. So a step reads its hyper-parameters from the config and its
optimiser from its record; no hand-written copy of either exists. Binding
rather than a static argument, because the loop makes the jitted function
once and calls it every step: nothing is hashed per step, and a step called
by hand is `jax.jit(functools.partial(stage.step, config=c, stage=stage))`.

What the trainer does with the stages: runs them in order over one state and
one checkpoint series (resume works anywhere), derives the run's length from
their steps, checks them (`schedule.method_stages`), never averages metrics
across a stage boundary and logs `train/phase` (the stage index) when there
are several. Warm starts ("modules X, Y from run R") and loading a finished
run (`load_run`) are the trainer's too, so a method never reads another
run's checkpoints itself.

`config.method` is a registered key or a dotted module path (for methods
that live outside jaxface, e.g. in tests or a user's project);
`tests/training/fitting_method.py` is the worked example and
`docs/adding_a_method.md` walks through it.
"""

from __future__ import annotations

import importlib
import types

from jaxface.errors import ConfigError

METHODS: dict[str, str] = {
  "decoupled_gan": "jaxface.methods.decoupled_gan",
  "facefill": "jaxface.methods.facefill",
  "multiview_depth": "jaxface.methods.multiview_depth",
  "personalized": "jaxface.methods.personalized",
}
PROTOCOL = ("create_dataset", "create_state", "stages", "evaluate", "summaries")


def get_method(name: str) -> types.ModuleType:
  """The module for a method key or dotted path; ConfigError listing the known keys."""
  module_path = METHODS.get(name, name if "." in name else None)
  if module_path is None:
    raise ConfigError(
      f"config.method={name!r} is unknown; known methods: {sorted(METHODS)} or a dotted module path"
    )
  try:
    module = importlib.import_module(module_path)
  except ModuleNotFoundError as error:
    if not error.name or not module_path.startswith(error.name):
      raise  # the method exists but a package it needs is missing: an install problem
    raise ConfigError(f"config.method={name!r}: there is no module {module_path!r}") from None
  missing = [function for function in PROTOCOL if not hasattr(module, function)]
  if missing:
    raise TypeError(f"method module {module_path!r} lacks {', '.join(missing)}")
  return module
