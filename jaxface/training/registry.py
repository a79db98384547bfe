"""The method registry: `config.method` -> the module implementing the method protocol.

A method module provides
- `create_dataset(config, split) -> dataset` with `len(dataset)` and
  `dataset[index] -> dict of numpy arrays` (random access, deterministic),
- `create_state(config, rng, example_batch) -> state` (a pytree of arrays),
- `train_step(state, batch) -> (state, metrics)`, pure; the loop jits it once,
- optionally `phases(config) -> ((name, steps), ...)` for a method trained in
  consecutive phases (e.g. pre-training one module, then another): the loop
  then calls `train_step(state, batch, phase=name)`, jits it once per phase
  (each compiled when its phase is reached), runs the phases in order over
  `config.num_steps` (which must equal their total), never averages metrics
  across a phase boundary, and logs `train/phase` (the index). One state and
  one checkpoint series span all phases, so resuming works anywhere,
- `evaluate(state, dataset, config) -> dict of scalars`,
- `summaries(state, batch) -> dict` of images (H, W, 3) / (N, H, W, 3) in
  [0, 1] and meshes {"name": (vertices, triangles)} to write.
`config.method` is a registered key or a dotted module path (for methods
that live outside jaxface, e.g. in tests or a user's project).
"""

from __future__ import annotations

import importlib
import types

METHODS: dict[str, str] = {
  "decoupled_gan": "jaxface.methods.decoupled_gan",
  "facefill": "jaxface.methods.facefill",
}
_REQUIRED = ("create_dataset", "create_state", "train_step", "evaluate", "summaries")


def get_method(name: str) -> types.ModuleType:
  """The module for a method key or dotted path; ValueError listing the known keys."""
  module_path = METHODS.get(name, name if "." in name else None)
  if module_path is None:
    raise ValueError(
      f"unknown method {name!r}; known methods: {sorted(METHODS)} or a dotted module path"
    )
  try:
    module = importlib.import_module(module_path)
  except ModuleNotFoundError as error:
    raise ValueError(f"method {name!r}: cannot import {module_path!r} ({error})") from None
  missing = [function for function in _REQUIRED if not hasattr(module, function)]
  if missing:
    raise ValueError(f"method module {module_path!r} lacks {', '.join(missing)}")
  return module
