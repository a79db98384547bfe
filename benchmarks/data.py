"""Synthetic data benchmark: examples per second per generator and for the input pipeline.

    python benchmarks/data.py [--model procedural|ict] [--image-size 256]

Generation is timed per example after a warm-up (the first example compiles
the renderer); the pipeline is timed reading prepared array_record data.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import machine_line

from jaxface.data import load_synthetic, synthetic
from jaxface.morphable import load
from jaxface.training import InputPipeline


def examples_per_second(function, count: int) -> float:
  function(0)  # warm-up: compiles the renderer
  start = time.perf_counter()
  for index in range(1, count + 1):
    function(index)
  return count / (time.perf_counter() - start)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="procedural")
  parser.add_argument("--image-size", type=int, default=256)
  parser.add_argument("--count", type=int, default=20)
  args = parser.parse_args()
  model = load(args.model)
  size = args.image_size
  print("## jaxface synthetic data benchmark\n")
  print(machine_line() + f"\nmodel: {model.name}, image size {size}\n")
  mesh_settings = dict(seed=0, num_identities=100, labelled_fraction=0.07)
  rows = [
    ("registered_meshes", lambda i: synthetic.registered_mesh_example(model, i, **mesh_settings)),
    ("face_images", lambda i: synthetic.face_image_example(model, i, seed=0, image_size=size)),
    (
      "multiview_pairs",
      lambda i: synthetic.multiview_pair_example(model, i, seed=0, image_size=size),
    ),
    (
      "sequences (8 frames)",
      lambda i: synthetic.sequence_example(model, i, seed=0, image_size=size, num_frames=8),
    ),
  ]
  print("| generator | examples/s |\n|---|---|")
  for name, function in rows:
    count = max(args.count // (8 if "sequences" in name else 1), 2)
    print(f"| {name} | {examples_per_second(function, count):.1f} |")
  with tempfile.TemporaryDirectory() as data_dir:
    source = load_synthetic(
      "face_images", model=args.model, num_train=64, num_eval=8, data_dir=data_dir, image_size=size
    )
    pipeline = InputPipeline(source, batch_size=16, seed=0, prefetch=2)
    pipeline.batch(0)
    start = time.perf_counter()
    steps = 40
    for step in range(1, steps + 1):
      batch = pipeline.batch(step)
    elapsed = time.perf_counter() - start
    pipeline.close()
    assert batch["image"].shape == (16, size, size, 3)
  rate = steps * 16 / elapsed
  print(f"\ninput pipeline (face_images, array_record, batch 16): {rate:.0f} examples/s, "
        f"{1e3 * elapsed / steps:.1f} ms per batch")  # fmt: skip


if __name__ == "__main__":
  main()
