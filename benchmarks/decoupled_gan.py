"""Decoupled GAN speed at the paper's settings: one training iteration and the generator.

    python benchmarks/decoupled_gan.py [--model ict] [--batch 64] [--repeats 10]

One iteration = 3 critic steps (each with gradient penalty, on its own real
batch of 64) + 1 generator step, on the ICT face area (9,409 vertices) and
64 x 64 geometry images, as in ../shared/TARGETS.md. Also times the
generator + geometry-mapping forward pass for a batch of 64. Real meshes
are random displacements of the template (the step's cost does not depend
on their values), so no dataset needs preparing.
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
from common import matmul_yardstick_ms, print_table, time_call

from configs import decoupled_gan as gan_config
from jaxface.methods.decoupled_gan import method
from jaxface.methods.decoupled_gan.data import MeshDataset
from jaxface.morphable import load


def _dataset(model_spec: str, config, size: int = 256) -> MeshDataset:
  model = load(model_spec)
  rng = np.random.default_rng(0)
  counts = {"identity": int(config.data.num_identities), "expression": 8}
  template = np.asarray(model.vertices, np.float32)
  examples = [
    {
      "vertices": template + 0.1 * rng.standard_normal(template.shape).astype(np.float32),
      "identity_label": np.int32(rng.integers(counts["identity"])),
      "expression_label": np.int32(rng.integers(8) if rng.uniform() < 0.07 else -1),
    }
    for _ in range(size)
  ]
  return MeshDataset(examples, model, ("identity", "expression"), counts, name="benchmark")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="ict", help="face model spec (default: ict)")
  parser.add_argument("--batch", type=int, default=64, help="meshes per critic/generator step")
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args()

  config = gan_config.get_config("paper" if args.model == "ict" else "default")
  config.data.model = args.model
  config.batch_size = args.batch * config.gan.d_steps
  config = ml_collections.FrozenConfigDict(config)
  dataset = _dataset(args.model, config)
  state = method.create_state(config, jax.random.PRNGKey(0), dataset)
  indices = np.arange(config.batch_size) % len(dataset)
  examples = dataset.__getitems__(indices)
  batch = {k: jnp.asarray(np.stack([e[k] for e in examples])) for k in examples[0]}

  (stage,) = method.stages(config)
  step = jax.jit(functools.partial(stage.step, config=config, stage=stage))  # as the trainer does
  iteration_ms = time_call(lambda: step(state, batch)[1], repeats=args.repeats)

  codes = {
    name: jax.random.normal(jax.random.PRNGKey(i), (args.batch, dim))
    for i, (name, dim) in enumerate(method.code_dims(config).items())
  }

  @jax.jit
  def forward(state, codes):
    vertices, _ = method.generate(state, codes, config)
    return method.discriminator_images(state.constants, vertices)

  forward_ms = time_call(lambda: forward(state, codes), repeats=args.repeats)
  yardstick = matmul_yardstick_ms()
  vertices = dataset.num_vertices
  rows = [
    {
      "what": "training iteration (3 D steps + GP, 1 G step)",
      "setting": f"{args.model}, V={vertices}, B={args.batch}, 64x64",
      "ms": iteration_ms,
    },
    {
      "what": "generator + geometry mapping, forward",
      "setting": f"{args.model}, V={vertices}, B={args.batch}, 64x64",
      "ms": forward_ms,
    },
  ]
  print_table("Decoupled GAN (paper settings)", rows, yardstick)
  print(f"\niterations per second: {1e3 / iteration_ms:.2f}")


if __name__ == "__main__":
  main()
