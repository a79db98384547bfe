"""Data: synthetic generators with exact ground truth and their tfds builders."""

from jaxface.data.builders import cache_dir, default_data_dir, load_synthetic
from jaxface.data.synthetic import (
  EMOTION_NAMES,
  EMOTIONS,
  emotion_vector,
  face_image_example,
  registered_mesh_example,
)

__all__ = [
  "EMOTIONS",
  "EMOTION_NAMES",
  "cache_dir",
  "default_data_dir",
  "emotion_vector",
  "face_image_example",
  "load_synthetic",
  "registered_mesh_example",
]
