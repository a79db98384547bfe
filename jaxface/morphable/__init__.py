"""Morphable face models: the MorphableModel pytree and its loaders.

model = jaxface.morphable.load("procedural")   # or "ict", or a file path
vertices = model.shape(identity, expression)    # (..., V, 3), cm
"""

from jaxface.morphable.assemble import ModelFileError
from jaxface.morphable.landmarks import CANONICAL_LANDMARKS, IBUG68_GROUPS, IBUG68_MIRROR
from jaxface.morphable.loaders import find_ict, ict_available, load, load_npz, save_npz
from jaxface.morphable.model import MorphableModel
from jaxface.morphable.procedural import procedural_model

__all__ = [
  "CANONICAL_LANDMARKS",
  "IBUG68_GROUPS",
  "IBUG68_MIRROR",
  "ModelFileError",
  "MorphableModel",
  "find_ict",
  "ict_available",
  "load",
  "load_npz",
  "procedural_model",
  "save_npz",
]
