"""Pictures of generated faces: normal-shaded renders, grids of samples sharing a code."""

from __future__ import annotations

import numpy as np

from jaxface.metrics.decoupling import image_frame, normal_images
from jaxface.metrics.shape import ShapeGenerator


def mesh_images(
  vertices: np.ndarray, triangles: np.ndarray, size: int, frame: tuple | None = None
) -> np.ndarray:
  """(N, V, 3) mm -> (N, size, size, 3) in [0, 1]: frontal renders coloured by normal.

  `frame` = (centre (2,), half_extent) from `image_frame`; by default the
  meshes of this call are framed together.
  """
  centre, half_extent = frame if frame is not None else image_frame(vertices)
  return np.asarray(normal_images(vertices, triangles, size, centre, half_extent))


def tile(images: np.ndarray, rows: int) -> np.ndarray:
  """(N, H, W, C) -> one (rows * H, ceil(N / rows) * W, C) image, row-major, padded white."""
  count, height, width, channels = images.shape
  cols = -(-count // rows)
  canvas = np.ones((rows * height, cols * width, channels), images.dtype)
  for index, image in enumerate(images):
    r, c = divmod(index, cols)
    canvas[r * height : (r + 1) * height, c * width : (c + 1) * width] = image
  return canvas


def sample_grid(
  generator: ShapeGenerator,
  rng: np.random.Generator,
  rows: int = 4,
  cols: int = 6,
  share: str | None = None,
  size: int = 96,
) -> np.ndarray:
  """A (rows * size, cols * size, 3) grid of samples; each row shares the code of `share`.

  `share=None` draws every sample independently (the paper's grey
  samples); `share="expression"` gives rows with one expression code and
  varying identities (Fig. 3's pink rows), `"identity"` the blue rows.
  """
  codes = generator.sample_codes(rng, rows * cols)
  if share is not None:
    if share not in codes:
      raise ValueError(f"unknown factor {share!r}; the generator has {sorted(codes)}")
    shared = generator.sample_codes(rng, rows)[share]  # (rows, d)
    codes[share] = np.repeat(shared, cols, axis=0)
  images = mesh_images(generator.generate(codes), generator.triangles, size)
  return tile(images, rows)
