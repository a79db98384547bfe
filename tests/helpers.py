"""Small meshes and checks shared by the tests."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np

#: XLA flags of every test process, subprocesses included (see tests/conftest.py for why).
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"


def grid_mesh(rows: int, cols: int, size: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
  """A flat (rows x cols)-vertex grid over [0, size]^2 in the z = 0 plane, CCW from +z."""
  x, y = np.meshgrid(np.linspace(0, size, cols), np.linspace(0, size, rows), indexing="xy")
  vertices = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1)
  triangles = []
  for r in range(rows - 1):
    for c in range(cols - 1):
      a, b, d, e = r * cols + c, r * cols + c + 1, (r + 1) * cols + c, (r + 1) * cols + c + 1
      triangles += [(a, b, e), (a, e, d)]
  return vertices, np.asarray(triangles, np.int32)


def override(config, overrides: dict):
  """Sets dotted fields ("facefill.eval.num_images": 4) of a ConfigDict in place; returns it."""
  for key, value in overrides.items():
    *sections, field = key.split(".")
    target = config
    for section in sections:
      target = target[section]
    target[field] = value
  return config


REPO = pathlib.Path(__file__).resolve().parents[1]


def run_python(*arguments: str, timeout: float = 600) -> subprocess.CompletedProcess:
  """Runs `python ARGUMENTS` in the repository as a user would (one device), asserting success."""
  environment = dict(os.environ, XLA_FLAGS=TEST_XLA_FLAGS)
  result = subprocess.run(
    [sys.executable, *arguments], cwd=REPO, env=environment, capture_output=True, text=True,
    timeout=timeout,
  )  # fmt: skip
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def run_training(config: str, workdir, data_dir, *overrides: str) -> subprocess.CompletedProcess:
  """`python train/main.py --config=CONFIG` in `workdir` on datasets in `data_dir`, as a user."""
  return run_python(
    "train/main.py", f"--config={config}", f"--workdir={workdir}",
    f"--config.data.data_dir={data_dir}", *overrides,
  )  # fmt: skip


def smoke_setup(method, config) -> tuple:
  """(`config` frozen as the trainer passes it, the method's training set, an unsharded
  pipeline over it): what a method's unit tests step with."""
  # Imported here: tests/conftest.py imports this module before it sets XLA_FLAGS, which must
  # precede the first import of jax.
  import ml_collections

  from jaxface.training.pipeline import InputPipeline

  frozen = ml_collections.FrozenConfigDict(config)
  dataset = method.create_dataset(frozen, "train")
  return frozen, dataset, InputPipeline(dataset, frozen.batch_size, 0, None, 0)
