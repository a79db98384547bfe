"""Data: synthetic generators with exact ground truth and their tfds builders.

`synthetic` makes meshes, images, view pairs and sequences; `personal` the
identity-specific expression (rig corrections, dynamic albedo) they share;
`multiview` the multi-view depth data; `photos` real-photo framing.
"""

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
