"""Decoupled GAN speed at the paper's settings: one training iteration, its parts, the generator.

    python benchmarks/decoupled_gan.py [--model ict] [--batch 64] [--repeats 10]

One iteration = 3 critic steps (each with gradient penalty, on its own real
batch of 64) + 1 generator step, on the ICT face area (9,409 vertices) and
64 x 64 geometry images, as in ../shared/TARGETS.md. The iteration is timed
with both critic convolutions (`config.gan.convolution`: "patches", the
default, and "lax", flax's nn.Conv that it replaced), then broken into its
parts, each jitted and timed on its own:

  generator                  the 3 x 64 fakes of the critic steps (MLP forward)
  geometry mapping           their geometry images (eq. 5)
  critic forward/backward    one critic step's Wasserstein + classification gradient
  gradient penalty           one critic step's penalty gradient (a second derivative)
  instance noise             one critic step's Gaussian noise on reals and fakes
  generator step             the generator's gradient (codes -> mesh -> critic -> losses)
    of which Laplacian       the gradient of eq. 12 alone
  optimiser                  Adam on the generator and 3 x on the critic

The parts overlap and fuse differently inside the one jitted iteration, so
they need not add up to it; they say where the time goes. Real meshes are
random displacements of the template (the step's cost does not depend on
their values), so no dataset needs preparing. The matmul yardstick is timed before and
after the rest, and the faster of the two is the unit.
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
import optax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import matmul_yardstick_ms, print_flop_limits, print_table, time_call, xla_flops

from configs import decoupled_gan as gan_config
from jaxface.methods.decoupled_gan import losses, method
from jaxface.methods.decoupled_gan.data import MeshDataset
from jaxface.morphable import load
from jaxface.nets import adversarial


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


def _config(model: str, batch: int, convolution: str) -> ml_collections.FrozenConfigDict:
  config = gan_config.get_config("paper" if model == "ict" else "default")
  config.data.model = model
  config.batch_size = batch * config.gan.d_steps
  config.gan.convolution = convolution
  return ml_collections.FrozenConfigDict(config)


def _batch(dataset: MeshDataset, size: int) -> dict:
  examples = dataset.__getitems__(np.arange(size) % len(dataset))
  return {k: jnp.asarray(np.stack([e[k] for e in examples])) for k in examples[0]}


def _iteration(config, dataset, repeats, donate: bool = True):
  """(ms, FLOPs) of one jitted paper iteration, as the trainer runs it: the state donated
  (`jaxface.training.loop`), so Adam's moments of the 512 x 28,227 output layer are
  updated in place rather than written to fresh buffers."""
  state = method.create_state(config, jax.random.PRNGKey(0), dataset)
  batch = _batch(dataset, config.batch_size)
  (stage,) = method.stages(config)
  step = functools.partial(stage.step, config=config, stage=stage)
  flops = xla_flops(step, state, batch)
  jitted = jax.jit(step, donate_argnums=(0,) if donate else ())
  states = [state]

  def iterate():
    states[0], metrics = jitted(states[0], batch)
    return metrics

  return time_call(iterate, repeats=repeats), flops


def _parts(config, dataset, batch_size: int, repeats: int) -> list[tuple[str, float]]:
  """[(part, ms)] of the iteration's parts, each jitted alone (see the module docstring)."""
  state = method.create_state(config, jax.random.PRNGKey(0), dataset)
  constants, d_steps = state.constants, config.gan.d_steps
  real = _batch(dataset, batch_size)
  labels = {f: real[f"{f}_label"] for f in config.gan.classify}
  critic = method._discriminator(config, constants)
  codes = method._random_codes(jax.random.PRNGKey(1), config, d_steps * batch_size)
  generate = jax.jit(lambda s, c: method.generate(s, c, config)[0])
  fakes = generate(state, codes)
  images = jax.jit(functools.partial(method.discriminator_images, constants))
  real_images, fake_images = images(real["vertices"]), images(fakes[:batch_size])

  def critic_loss(params, real_images, fake_images):
    real_scores, logits, _ = critic.apply({"params": params}, real_images)
    fake_scores, _, _ = critic.apply({"params": params}, fake_images)
    total = adversarial.wasserstein_critic_loss(real_scores, fake_scores)
    for slot, factor in enumerate(config.gan.classify):
      weights = constants.class_weights[slot]
      total += losses.weighted_cross_entropy(logits[factor], labels[factor], weights)
    return total

  def penalty(params, real_images, fake_images):
    score = lambda x: critic.apply({"params": params}, x)[0]
    return adversarial.gradient_penalty(score, real_images, fake_images, jax.random.PRNGKey(2))

  def noise(rng):
    return tuple(jax.random.normal(k, real_images.shape) for k in jax.random.split(rng))

  def generator_step(state):  # the step's own generator objective, after the critic steps
    loss = functools.partial(method._generator_loss, config=config)
    return jax.grad(loss, has_aux=True)(state.generator, state, jax.random.PRNGKey(3), batch_size)

  (stage,) = method.stages(config)
  adam = stage.optimizer["generator"]

  def optimise(state):
    g_updates, _ = adam.update(state.generator, state.opt_state["generator"], state.generator)
    d_params, d_opt = state.discriminator, state.opt_state["discriminator"]
    for _ in range(d_steps):
      updates, d_opt = adam.update(d_params, d_opt, d_params)
      d_params = optax.apply_updates(d_params, updates)
    return optax.apply_updates(state.generator, g_updates), d_params

  # Every input is an argument: a jitted closure over arrays would be constant-folded.
  params, lap = state.discriminator, constants.laplacian
  timed = [
    ("generator (3 x B fakes)", generate, (state, codes)),
    ("geometry mapping (3 x B)", images, (fakes,)),
    ("critic forward/backward (1 step)", jax.grad(critic_loss), (params, real_images, fake_images)),
    ("gradient penalty (1 step)", jax.grad(penalty), (params, real_images, fake_images)),
    ("instance noise (1 step)", noise, (jax.random.PRNGKey(4),)),
    ("generator step (gradient)", generator_step, (state,)),
    (
      "  of which Laplacian (eq. 12)",
      jax.grad(losses.laplacian_energy, 1),
      (lap, fakes[:batch_size]),
    ),
    ("optimiser (1 G + 3 D Adam)", optimise, (state,)),
  ]
  return [(name, time_call(jax.jit(f), *args, repeats=repeats)) for name, f, args in timed]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="ict", help="face model spec (default: ict)")
  parser.add_argument("--batch", type=int, default=64, help="meshes per critic/generator step")
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args()

  # The shared CPU's matmul speed drifts by up to 40% between minutes: the yardstick is timed
  # before and after, and the faster of the two divides (the conservative ratio).
  yardstick_before = matmul_yardstick_ms()
  configs = {conv: _config(args.model, args.batch, conv) for conv in ("patches", "lax")}
  config = configs["patches"]
  dataset = _dataset(args.model, config)
  setting = f"{args.model}, V={dataset.num_vertices}, B={args.batch}, 64x64"
  rows = []
  for convolution, conv_config in configs.items():
    ms, flops = _iteration(conv_config, dataset, args.repeats)
    what = f"iteration, convolution={convolution}"
    rows.append({"what": what, "setting": setting, "ms": ms, "flops": flops})
  ms, _ = _iteration(config, dataset, args.repeats, donate=False)
  rows.append({"what": "iteration, patches, state not donated", "setting": setting, "ms": ms})
  for name, ms in _parts(config, dataset, args.batch, args.repeats):
    rows.append({"what": name, "setting": "convolution=patches", "ms": ms})

  state = method.create_state(config, jax.random.PRNGKey(0), dataset)
  codes = {
    name: jax.random.normal(jax.random.PRNGKey(i), (args.batch, dim))
    for i, (name, dim) in enumerate(method.code_dims(config).items())
  }

  @jax.jit
  def forward(state, codes):
    vertices, _ = method.generate(state, codes, config)
    return method.discriminator_images(state.constants, vertices)

  forward_ms = time_call(lambda: forward(state, codes), repeats=args.repeats)
  rows.append(
    {"what": "generator + geometry mapping, forward", "setting": setting, "ms": forward_ms}
  )
  yardstick_after = matmul_yardstick_ms()
  yardstick = min(yardstick_before, yardstick_after)
  print(f"yardstick before {yardstick_before:.2f} ms, after {yardstick_after:.2f} ms")
  print_table("Decoupled GAN (paper settings)", rows, yardstick)
  print_flop_limits([row for row in rows if "flops" in row], yardstick)
  print(f"\niterations per second (patches): {1e3 / rows[0]['ms']:.2f}")


if __name__ == "__main__":
  main()
