"""3DFaceFill speed: inference per image (with and without iterative refinement) and train steps.

    python benchmarks/facefill.py [--variant cpu|paper] [--batch 8] [--repeats 5] [--no-train]

`cpu` is the results' CPU budget (64 x 64 images, quarter-width networks);
`paper` the paper's networks at 224 x 224 (on the procedural model unless
--model says otherwise; the network cost does not depend on the model).
Inference is the whole pipeline of `facefill.pipeline.complete`: segmenter,
3DMM encoder, unwrapping to UV, Sym-UNet, re-rendering and blending, per
refinement pass, on random rectangular masks; the paper reports 0.1 s per
image on a GPU. Training: one step of each stage at the config's batch size.
Weights are untrained: the cost does not depend on their values.
"""

from __future__ import annotations

import argparse
import functools
import pathlib
import sys

import jax
import ml_collections
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import matmul_yardstick_ms, print_table, time_call

from configs import facefill as facefill_config
from jaxface.methods import facefill
from jaxface.methods.facefill import masks, pipeline
from jaxface.methods.facefill.data import FACE
from jaxface.training.pipeline import InputPipeline


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--variant", default="cpu", choices=["cpu", "paper"])
  parser.add_argument("--model", default="procedural", help="face model spec")
  parser.add_argument("--batch", type=int, default=8, help="images per inference call")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--no-train", action="store_true", help="skip the train-step timings")
  parser.add_argument(
    "--data-dir", default="", help="where the few benchmark images are cached (default: ~/.cache)"
  )
  args = parser.parse_args()

  config = facefill_config.get_config("cpu" if args.variant == "cpu" else "default")
  config.data.model = args.model
  config.data.num_train = max(config.batch_size, args.batch)
  config.data.num_eval = args.batch
  config.data.data_dir = args.data_dir
  config = ml_collections.FrozenConfigDict(config)
  dataset = facefill.create_dataset(config, "train")
  state = facefill.create_state(config, jax.random.PRNGKey(0), dataset)
  size = int(config.data.image_size)
  setting = f"{size}x{size}, widths x{config.facefill.widths.encoder:g}"

  data = dataset.read(np.arange(args.batch))
  images = data["image"]  # (B, H, W, 3)
  holes = np.asarray(
    masks.random_rectangle_mask(jax.random.PRNGKey(0), data["segmentation"] == FACE, split="test")
  )  # (B, H, W)
  rows = []
  for iterations in (2, 1):
    complete = functools.partial(pipeline.complete_jit, config=config, iterations=iterations)
    ms = time_call(lambda c=complete: c(state, images, holes).image, repeats=args.repeats)
    rows.append({
      "what": f"complete, {iterations} pass{'es' if iterations > 1 else ''}, per image",
      "setting": f"{setting}, B={args.batch}",
      "ms": ms / args.batch,
    })  # fmt: skip

  if not args.no_train:
    batches = InputPipeline(dataset, config.batch_size, 0, None, 0)
    batch = batches.batch(0)
    for stage in facefill.stages(config):
      step = jax.jit(functools.partial(stage.step, config=config, stage=stage))
      ms = time_call(lambda s=step: s(state, batch)[1], repeats=args.repeats, warmup=1)
      rows.append({
        "what": f"train step, stage {stage.name}",
        "setting": f"{setting}, B={config.batch_size}",
        "ms": ms,
      })  # fmt: skip

  yardstick = matmul_yardstick_ms()
  print_table(f"3DFaceFill ({args.variant} networks)", rows, yardstick)
  steps = [row for row in rows if row["what"].startswith("train step")]
  if steps:
    print("\nsteps per second: " + ", ".join(
      f"{row['what'].removeprefix('train step, stage ')} {1e3 / row['ms']:.2f}" for row in steps
    ))  # fmt: skip


if __name__ == "__main__":
  main()
