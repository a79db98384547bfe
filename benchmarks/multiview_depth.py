"""multiview_depth speed: DepthNet / 3DMMNet inference and train steps per stage.

    python benchmarks/multiview_depth.py [--variant cpu|paper] [--batch 8] [--repeats 5] \
      [--no-train]

Inference uses the paper's networks at the paper's 360 x 360 (DepthNet: a
4-level U-Net of widths 64-512; 3DMMNet: DenseNet-121), at batch 1 and
`--batch`; the paper reports 50 fps for DepthNet on a Titan X. Each row
also prints the network's FLOP limit (XLA's FLOP count over the 2.15 GFLOP
of the matmul yardstick), the bound `../shared/TARGETS.md` compares to (a
row should take at most 3x it). Training times one step of each stage of
the `--variant` config at its batch size (cpu: 64 x 64, B = 8, the results'
budget). Weights are untrained: the cost does not depend on their values.
"""

from __future__ import annotations

import argparse
import functools
import pathlib
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import matmul_yardstick_ms, print_flop_limits, print_table, time_call, xla_flops

from configs import multiview_depth as multiview_config
from jaxface.methods import multiview_depth
from jaxface.methods.multiview_depth import networks
from jaxface.nets.layers import host_init_variables
from jaxface.training.pipeline import InputPipeline


def _inference_rows(config, batch: int, repeats: int) -> list[dict]:
  size = int(config.data.image_size)
  model = networks.depth_net(config)
  rows = []
  for count in sorted({1, batch}):
    images = jnp.asarray(np.random.default_rng(0).uniform(size=(count, size, size, 3)), jnp.float32)
    variables = host_init_variables(model, images)
    forward = jax.jit(model.apply)
    ms = time_call(forward, variables, images, repeats=repeats)
    rows.append({
      "what": f"DepthNet inference, per image ({1e3 * count / ms:.1f} fps)",
      "setting": f"{size}x{size}, B={count}",
      "ms": ms / count,
      "flops": xla_flops(model.apply, variables, images) / count,
    })  # fmt: skip
  face = jnp.zeros(())
  three_dmm = networks.ThreeDMMNet(
    num_identity=config.multiview.num_identity, num_expression=config.multiview.num_expression,
    blocks=tuple(config.multiview.densenet.blocks), growth=config.multiview.densenet.growth,
    stem_features=config.multiview.densenet.stem_features,
  )  # fmt: skip
  images = jnp.zeros((batch, size, size, 3))
  variables = host_init_variables(three_dmm, images, face + 20.0)
  ms = time_call(jax.jit(three_dmm.apply), variables, images, face + 20.0, repeats=repeats)
  rows.append({
    "what": "3DMMNet inference, per image",
    "setting": f"{size}x{size}, B={batch}",
    "ms": ms / batch,
    "flops": xla_flops(three_dmm.apply, variables, images, face + 20.0) / batch,
  })  # fmt: skip
  return rows


def _train_rows(variant: str, data_dir: str, repeats: int) -> list[dict]:
  config = multiview_config.get_config(variant)
  # A few faces are enough to time a step (the data do not change its cost).
  config.data.num_synthetic = config.data.num_real = max(2, config.batch_size // 4)
  config.data.num_test, config.data.num_florence = 2, 0
  config.data.data_dir = data_dir
  config = ml_collections.FrozenConfigDict(config)
  dataset = multiview_depth.create_dataset(config, "train")
  state = multiview_depth.create_state(config, jax.random.PRNGKey(0), dataset)
  batch = InputPipeline(dataset, config.batch_size, 0, None, 0).batch(0)
  size = int(config.data.image_size)
  rows = []
  for stage in multiview_depth.stages(config):
    step = functools.partial(stage.step, config=config, stage=stage)
    jitted = jax.jit(step)
    ms = time_call(lambda s=jitted: s(state, batch)[1], repeats=repeats, warmup=1)
    rows.append({
      "what": f"train step, stage {stage.name} ({1e3 / ms:.2f} steps/s)",
      "setting": f"{variant}: {size}x{size}, B={config.batch_size}",
      "ms": ms,
      "flops": xla_flops(step, state, batch),
    })  # fmt: skip
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--variant", default="cpu", choices=["cpu", "paper"], help="train steps")
  parser.add_argument("--batch", type=int, default=8, help="images per inference call")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--no-train", action="store_true", help="skip the train-step timings")
  parser.add_argument("--data-dir", default="", help="where the few benchmark faces are cached")
  args = parser.parse_args()

  paper = multiview_config.get_config("default")
  paper.data.model = "procedural"  # the networks' cost does not depend on the face model
  rows = _inference_rows(ml_collections.FrozenConfigDict(paper), args.batch, args.repeats)
  if not args.no_train:
    rows += _train_rows(args.variant if args.variant == "cpu" else "default", args.data_dir,
                        args.repeats)  # fmt: skip
  yardstick = matmul_yardstick_ms()
  print_table("multiview_depth (paper networks for inference)", rows, yardstick)
  print_flop_limits(rows, yardstick)


if __name__ == "__main__":
  main()
