"""personalized speed: the modeling network on 1 and 4 images, the tracking network per frame, and
one train step of each stage.

    python benchmarks/personalized.py [--variant cpu|paper] [--repeats 5] [--no-train]

Inference uses the paper's networks (Table 1) at 224 x 224, with Nb = 56
blendshapes as in the paper (the cost depends on Nb, not on the face
model); the supplement reports 15.4 ms for 1 image and 37.5 ms for 4 on a
Titan X for its whole network. The tracking network is the ResNet-18 of
the config at 224 x 224. Each row also prints the network's FLOP limit
(XLA's FLOP count over the 2.15 GFLOP of the matmul yardstick), the bound
`../shared/TARGETS.md` compares to (a row should take at most 3x it).
Training times one step of each stage of the `--variant` config at its
batch size (cpu: 64 x 64, 4 users x 4 frames, the results' budget).
Weights are untrained: the cost does not depend on their values.
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

from configs import personalized as personalized_config
from jaxface.methods import personalized
from jaxface.methods.personalized import networks
from jaxface.nets.layers import host_init_variables
from jaxface.training.pipeline import InputPipeline

PAPER_BLENDSHAPES = 56


def _inference_rows(repeats: int) -> list[dict]:
  size = 224
  rng = np.random.default_rng(0)
  modeling = networks.ModelingNetwork(num_identity=50, num_blendshapes=PAPER_BLENDSHAPES)
  rows = []
  for count in (1, 4):
    images = jnp.asarray(rng.uniform(size=(1, count, size, size, 3)), jnp.float32)
    variables = host_init_variables(modeling, images, train=False)
    apply = functools.partial(modeling.apply, train=False)
    ms = time_call(jax.jit(apply), variables, images, repeats=repeats)
    rows.append({
      "what": f"modeling network, {count} image{'s' if count > 1 else ''} of one user",
      "setting": f"{size}x{size}, Nb={PAPER_BLENDSHAPES}",
      "ms": ms,
      "flops": xla_flops(apply, variables, images),
    })  # fmt: skip
  tracker = networks.TrackingNetwork(num_blendshapes=PAPER_BLENDSHAPES)
  for count in (1, 4):
    images = jnp.asarray(rng.uniform(size=(count, size, size, 3)), jnp.float32)
    height = jnp.float32(20.0)
    variables = host_init_variables(tracker, images, height)
    ms = time_call(jax.jit(tracker.apply), variables, images, height, repeats=repeats)
    rows.append({
      "what": f"tracking network, per frame (B={count})",
      "setting": f"{size}x{size}, ResNet-18",
      "ms": ms / count,
      "flops": xla_flops(tracker.apply, variables, images, height) / count,
    })  # fmt: skip
  return rows


def _train_rows(variant: str, data_dir: str, repeats: int) -> list[dict]:
  config = personalized_config.get_config(variant)
  # A few users are enough to time a step (the data do not change its cost).
  config.data.num_train, config.data.num_eval = max(2, config.batch_size), 1
  config.data.data_dir = data_dir
  config = ml_collections.FrozenConfigDict(config)
  dataset = personalized.create_dataset(config, "train")
  state = personalized.create_state(config, jax.random.PRNGKey(0), dataset)
  batch = InputPipeline(dataset, config.batch_size, 0, None, 0).batch(0)
  size, frames = int(config.data.image_size), config.personalized.frames_per_user
  rows = []
  for stage in personalized.stages(config):
    step = functools.partial(stage.step, config=config, stage=stage)
    jitted = jax.jit(step)
    ms = time_call(lambda s=jitted: s(state, batch)[1], repeats=repeats, warmup=1)
    rows.append({
      "what": f"train step, stage {stage.name} ({1e3 / ms:.2f} steps/s)",
      "setting": f"{variant}: {size}x{size}, {config.batch_size} users x {frames} frames",
      "ms": ms,
      "flops": xla_flops(step, state, batch),
    })  # fmt: skip
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--variant", default="cpu", choices=["cpu", "paper"], help="train steps")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--no-train", action="store_true", help="skip the train-step timings")
  parser.add_argument("--data-dir", default="", help="where the few benchmark users are cached")
  args = parser.parse_args()

  rows = _inference_rows(args.repeats)
  if not args.no_train:
    variant = "cpu" if args.variant == "cpu" else "default"
    rows += _train_rows(variant, args.data_dir, args.repeats)
  yardstick = matmul_yardstick_ms()
  print_table("personalized (paper networks for inference)", rows, yardstick)
  print_flop_limits(rows, yardstick)


if __name__ == "__main__":
  main()
