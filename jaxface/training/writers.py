"""Metric and summary writing: TensorBoard (tensorboardX, no TensorFlow), the
console, a JSON-lines log, and PNG/OBJ files under the workdir. Only process 0
writes; the others get a writer that does nothing.
"""

from __future__ import annotations

import json
import logging
import pathlib

import numpy as np
from PIL import Image

from jaxface.io.mesh import export_mesh

log = logging.getLogger(__name__)


class MetricWriter:
  """Writes scalars, images and meshes for one run (process 0 only)."""

  def __init__(self, workdir: str | pathlib.Path, enabled: bool = True):
    self.workdir = pathlib.Path(workdir)
    self.enabled = enabled
    self._tensorboard = None
    if enabled:
      from tensorboardX import SummaryWriter

      self._tensorboard = SummaryWriter(str(self.workdir / "tensorboard"))
      self._jsonl = open(self.workdir / "metrics.jsonl", "a")  # noqa: SIM115 - closed in close()

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    if not self.enabled or not scalars:
      return
    for name, value in scalars.items():
      self._tensorboard.add_scalar(name, float(value), step)
    self._jsonl.write(
      json.dumps({"step": int(step), **{k: float(v) for k, v in scalars.items()}}) + "\n"
    )
    self._jsonl.flush()
    log.info(
      "step %d: %s", step, ", ".join(f"{k}={float(v):.5g}" for k, v in sorted(scalars.items()))
    )

  def write_summaries(self, step: int, summaries: dict) -> None:
    """Images ((H, W, 3) or (N, H, W, 3) in [0, 1]) and meshes ((vertices, triangles))."""
    if not self.enabled or not summaries:
      return
    folder = self.workdir / "summaries" / f"step_{step:08d}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in summaries.items():
      safe_name = name.replace("/", "_")
      if isinstance(value, tuple):
        vertices, triangles = (np.asarray(v) for v in value)
        vertices = vertices if vertices.ndim == 3 else vertices[None]
        for index, mesh in enumerate(vertices):
          export_mesh(folder / f"{safe_name}_{index}.obj", mesh, triangles, overwrite=True)
        continue
      images = np.asarray(value, np.float32)
      images = images if images.ndim == 4 else images[None]
      grid = _grid(np.clip(images, 0.0, 1.0))
      self._tensorboard.add_image(name, grid, step, dataformats="HWC")
      Image.fromarray((grid * 255 + 0.5).astype(np.uint8)).save(folder / f"{safe_name}.png")

  def flush(self) -> None:
    if self.enabled:
      self._tensorboard.flush()
      self._jsonl.flush()

  def close(self) -> None:
    if self.enabled:
      self._tensorboard.close()
      self._jsonl.close()


def _grid(images: np.ndarray, columns: int = 8) -> np.ndarray:
  """(N, H, W, C) -> one (rows*H, columns*W, 3) image."""
  count, height, width, channels = images.shape
  if channels == 1:
    images = np.repeat(images, 3, axis=-1)
  columns = min(columns, count)
  rows = -(-count // columns)
  grid = np.ones((rows * height, columns * width, 3), np.float32)
  for index, image in enumerate(images[..., :3]):
    r, c = divmod(index, columns)
    grid[r * height : (r + 1) * height, c * width : (c + 1) * width] = image
  return grid
