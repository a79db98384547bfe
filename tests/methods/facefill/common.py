"""Small helpers of the 3DFaceFill tests: ground-truth factors, which modules a step changed."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxface.methods.facefill.model import Factors
from jaxface.methods.facefill.networks import MODULES


def truth_factors(batch) -> Factors:
  """Ground-truth factors of a batch (the first Ki / Ke coefficients)."""
  return Factors(
    scale=jnp.asarray(batch["scale"]), translation=jnp.asarray(batch["translation"]),
    rotation=jnp.asarray(batch["rotation"]), illumination=jnp.asarray(batch["sh"]),
    identity=jnp.asarray(batch["identity"]), expression=jnp.asarray(batch["expression"]),
    albedo_features=jnp.zeros((len(batch["scale"]), 0)),
  )  # fmt: skip


def params_changed(before, after) -> set[str]:
  """The modules whose parameters differ between two states."""
  changed = set()
  for name in MODULES:
    old, new = getattr(before, name)["params"], getattr(after, name)["params"]
    differs = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), old, new)
    if any(jax.tree_util.tree_leaves(differs)):
      changed.add(name)
  return changed
