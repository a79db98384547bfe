"""Training the decoupled 3D face GAN (paper sec. 4.3, 5.1): the trainer's method protocol.

One stage, "gan", of `config.num_steps` steps; one `train_step` is one paper
iteration: `d_steps` (3) critic updates, each on its own real batch, then one
generator update. The pipeline therefore delivers `config.batch_size =
d_steps * per_step_batch` meshes per step. Steps read their hyper-parameters
from `config.gan` (method protocol v2, `jaxface.training.registry`); sizes
that come from the data (vertices, classes) are read off the state's arrays.

The factors of variation are data: `config.gan.factors` names them (each
with a code size and a `<factor>_label` field in the dataset), `noise_dim`
adds an unlabelled noise code, and `config.gan.classify` lists the factors
that get an auxiliary classifier. For the generator update, the labelled
factor cycles through the classified factors (`step % len(classify)`): its
codes come from its fixed per-label codes T^f (scored by the classification
loss), every other factor's codes are shared by pairs of samples (scored by
the feature loss on its classifier's features).

Lengths: the data arrive in the morphable model's units and are converted
to mm once (`MeshDataset`), so losses, instance noise and metrics are in
mm as in the paper.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from jaxface.errors import ConfigError
from jaxface.geometry.laplacian import LaplacianOperator, cotangent_laplacian
from jaxface.methods.decoupled_gan import losses
from jaxface.methods.decoupled_gan.data import MeshDataset, create_dataset
from jaxface.methods.decoupled_gan.figures import sample_grid
from jaxface.methods.decoupled_gan.model import (
  CONVOLUTIONS,
  Discriminator,
  Generator,
  concatenate_codes,
)
from jaxface.methods.protocol import Stage, frozen, init_optimizer
from jaxface.metrics.shape import ShapeGenerator, generator_diversity, specificity
from jaxface.nets import adversarial
from jaxface.render.geometry_image import (
  GeometryImageLookup,
  geometry_image,
  geometry_image_lookup,
)

__all__ = [
  "Constants",
  "State",
  "check_config",
  "code_dims",
  "create_dataset",
  "create_state",
  "discriminator_images",
  "evaluate",
  "generate",
  "shape_generator",
  "stages",
  "summaries",
  "train_step",
]

_OUTPUT_INITIALISERS = {
  "zeros": nn.initializers.zeros,
  "lecun_normal": nn.initializers.lecun_normal(),
}


@struct.dataclass
class Constants:
  """Fixed arrays the step needs (checkpointed with the state, never trained).

  Attributes:
    template: (V, 3) reference mesh in mm; the generator adds displacements.
    triangles: (F, 3) int32 faces of the template.
    template_image: (n, n, 3) its geometry image.
    image_scale: () mm, standard deviation of the training meshes'
      displacements from the template: the unit of the critic's input and
      of the generator's output.
    lookup: the geometry-mapping tables (n x n).
    laplacian: cotangent Laplacian of the template (eq. 12).
    fixed_codes: per classified factor, (n_f, d_f) the code T^f of each label.
    class_weights: per classified factor, (n_f,) balanced weights.
  """

  template: jax.Array
  triangles: jax.Array
  template_image: jax.Array
  image_scale: jax.Array
  lookup: GeometryImageLookup
  laplacian: LaplacianOperator
  fixed_codes: tuple[jax.Array, ...]
  class_weights: tuple[jax.Array, ...]


@struct.dataclass
class State:
  """The generator and critic, their optimiser states {"generator", "discriminator"}, the step
  and its base rng, and the data's constants."""

  step: jax.Array
  generator: dict
  discriminator: dict
  opt_state: dict
  rng: jax.Array
  constants: Constants


# --------------------------------------------------------------------------- config


def check_config(config: ml_collections.ConfigDict) -> None:
  """The `config.gan` fields the step relies on; ConfigError naming the field."""
  gan = config.gan
  factors, classify = tuple(gan.factors), tuple(gan.classify)
  unknown = [f for f in classify if f not in factors]
  if unknown:
    raise ConfigError(f"config.gan.classify names {unknown}, not in config.gan.factors {factors}")
  if len(gan.factor_dims) != len(factors) or min(gan.factor_dims, default=1) < 1:
    raise ConfigError(
      f"config.gan.factor_dims {tuple(gan.factor_dims)} must give one positive size per factor "
      f"{factors}"
    )
  if gan.output_init not in _OUTPUT_INITIALISERS:
    raise ConfigError(
      f"config.gan.output_init must be one of {sorted(_OUTPUT_INITIALISERS)}, got "
      f"{gan.output_init!r}"
    )
  if _convolution(config) not in CONVOLUTIONS:
    raise ConfigError(
      f"config.gan.convolution must be one of {CONVOLUTIONS}, got {gan.convolution!r}"
    )
  if gan.d_steps < 1:
    raise ConfigError(f"config.gan.d_steps={gan.d_steps} must be >= 1")
  if config.batch_size % gan.d_steps:
    raise ConfigError(
      f"config.batch_size={config.batch_size} must be a multiple of config.gan.d_steps="
      f"{gan.d_steps} (each critic step takes batch_size / d_steps real meshes)"
    )
  if (config.batch_size // gan.d_steps) % 2:
    raise ConfigError(
      f"config.batch_size / config.gan.d_steps = {config.batch_size // gan.d_steps} must be "
      "even: the generator's codes come in pairs"
    )
  if gan.image_size < 1:
    raise ConfigError(f"config.gan.image_size={gan.image_size} must be positive")


def stages(config: ml_collections.ConfigDict) -> tuple[Stage, ...]:
  """One stage of `config.num_steps` paper iterations, the critic and generator with Adam each."""
  check_config(config)
  gan = config.gan
  adam = optax.adam(gan.learning_rate, b1=gan.beta1, b2=gan.beta2)
  return (
    Stage(
      name="gan", steps=config.num_steps, step=train_step,
      modules=("generator", "discriminator"),
      optimizer={"generator": adam, "discriminator": adam},
    ),
  )  # fmt: skip


def code_dims(config: ml_collections.ConfigDict) -> dict[str, int]:
  """{code name: size}: the factors in order, then "noise" when `noise_dim` > 0."""
  gan = config.gan
  dims = dict(zip(gan.factors, (int(d) for d in gan.factor_dims), strict=True))
  if gan.noise_dim:
    dims["noise"] = int(gan.noise_dim)
  return dims


def _generator(config, constants: Constants) -> Generator:
  return Generator(
    num_vertices=constants.template.shape[0], hidden=config.gan.hidden,
    output_init=_OUTPUT_INITIALISERS[config.gan.output_init],
  )  # fmt: skip


def _discriminator(config, constants: Constants) -> Discriminator:
  counts = (codes.shape[0] for codes in constants.fixed_codes)  # one code per label
  return Discriminator(
    num_classes=dict(zip(config.gan.classify, counts, strict=True)),
    convolution=_convolution(config),
  )


def _convolution(config) -> str:
  # Runs saved before the field existed trained flax's nn.Conv, whose parameters PatchConv shares.
  return config.gan.get("convolution", "patches")


# --------------------------------------------------------------------------- state


def _displacement_scale(dataset: MeshDataset, count: int = 512) -> float:
  """Standard deviation (mm) of vertex displacements from the template over a data sample."""
  indices = np.linspace(0, len(dataset) - 1, min(count, len(dataset))).astype(int)
  displacements = dataset.vertices(indices) - dataset.template  # (n, V, 3)
  return float(np.sqrt(np.mean(displacements**2)))


def create_state(config: ml_collections.ConfigDict, rng: jax.Array, dataset: MeshDataset) -> State:
  """A fresh state for the training `dataset` (its template, UV map and labels)."""
  classify = tuple(config.gan.classify)
  num_classes = tuple(dataset.num_classes[f] for f in classify)
  dims = code_dims(config)
  template = jnp.asarray(dataset.template, jnp.float32)  # (V, 3) mm
  lookup = geometry_image_lookup(
    np.asarray(dataset.triangles), np.asarray(dataset.uv), np.asarray(dataset.triangle_uv),
    int(config.gan.image_size),
  )  # fmt: skip
  code_rng, g_rng, d_rng, state_rng = jax.random.split(rng, 4)
  fixed_codes = tuple(
    jax.random.normal(jax.random.fold_in(code_rng, index), (count, dims[factor]))
    for index, (factor, count) in enumerate(zip(classify, num_classes, strict=True))
  )
  constants = Constants(
    template=template,
    triangles=jnp.asarray(dataset.triangles, jnp.int32),
    template_image=geometry_image(template, lookup),
    image_scale=jnp.asarray(_displacement_scale(dataset), jnp.float32),
    lookup=lookup,
    laplacian=cotangent_laplacian(template, np.asarray(dataset.triangles)),
    fixed_codes=fixed_codes,
    class_weights=tuple(
      jnp.asarray(losses.balanced_class_weights(dataset.labels[f], n))
      for f, n in zip(classify, num_classes, strict=True)
    ),
  )
  codes = jnp.zeros((1, sum(dims.values())))
  generator = _generator(config, constants).init(g_rng, codes)["params"]
  images = jnp.zeros((1, *constants.template_image.shape))
  discriminator = _discriminator(config, constants).init(d_rng, images)["params"]
  (stage,) = stages(config)
  return State(
    step=jnp.zeros((), jnp.int32),
    generator=generator,
    discriminator=discriminator,
    opt_state=init_optimizer(stage, {"generator": generator, "discriminator": discriminator}),
    rng=state_rng,
    constants=constants,
  )


def generate(state: State, codes: dict[str, jax.Array], config) -> tuple[jax.Array, jax.Array]:
  """Codes {name: (N, d)} -> (vertices (N, V, 3) mm, displacements (N, V, 3))."""
  z = concatenate_codes(codes, tuple(code_dims(config)))
  # The network speaks in units of the data's displacement spread (as the
  # critic does): mm-sized outputs would take Adam at lr 2e-4 thousands of
  # steps to reach from a zero-initialised layer.
  standardised = _generator(config, state.constants).apply({"params": state.generator}, z)
  displacements = state.constants.image_scale * standardised  # (N, V, 3) mm
  return state.constants.template + displacements, displacements


def discriminator_images(constants: Constants, vertices: jax.Array) -> jax.Array:
  """What the critic sees: the geometry image of each mesh, standardised.

  (N, V, 3) mm -> (N, n, n, 3): (I(v) - I(template)) / s with s the
  training meshes' displacement spread (`Constants.image_scale`). An affine
  map of the geometry image, so the critic judges exactly the geometry
  images of the meshes, in units where the gradient penalty's unit slope
  and the instance noise's sigma = 0.1 have the meaning they have for
  images in [-1, 1] (in mm they would not: a critic on mm inputs had
  Wasserstein estimates in the thousands). Instance noise is added by the
  step, not here.
  """
  image = geometry_image(vertices, constants.lookup) - constants.template_image
  return image / constants.image_scale


# --------------------------------------------------------------------------- the step


def _random_codes(rng, config, count: int) -> dict[str, jax.Array]:
  dims = code_dims(config)
  keys = jax.random.split(rng, len(dims))
  return {
    name: jax.random.normal(key, (count, dim))
    for key, (name, dim) in zip(keys, dims.items(), strict=True)
  }


def _paired(rng, base: jax.Array, count: int) -> tuple[jax.Array, jax.Array]:
  """Codes (count, d) where random pairs of rows share one of `base` (count/2, d).

  Returns the codes and (count/2, 2) the row indices of each pair.
  """
  order = jax.random.permutation(rng, count)  # pair k = rows order[2k], order[2k+1]
  codes = jnp.zeros((count, base.shape[-1]), base.dtype).at[order].set(jnp.repeat(base, 2, 0))
  return codes, order.reshape(count // 2, 2)


def labelled_slot(step: jax.Array, config) -> jax.Array:
  """Index into `config.gan.classify` of the factor whose codes step `step` labels."""
  return step % max(len(config.gan.classify), 1)


def _generator_batch(rng, state: State, count: int, config):
  """Codes for a generator update and, per classified factor, labels and pairs.

  The labelled factor (`labelled_slot`) takes labelled codes T^k[c] (labels
  c uniform over classes, equivalent in expectation to the balanced
  weights); every other factor's codes are shared by random pairs of samples.
  Returns (codes, labels, pairs, the labelled slot).
  """
  constants, classify = state.constants, tuple(config.gan.classify)
  dims = code_dims(config)
  slot_now = labelled_slot(state.step, config)
  codes = _random_codes(jax.random.fold_in(rng, 0), config, count)  # noise stays independent
  labels, pairs = {}, {}
  for index, factor in enumerate(config.gan.factors):
    factor_rng = jax.random.fold_in(rng, index + 1)
    pair_rng, base_rng, label_rng = jax.random.split(factor_rng, 3)
    base = jax.random.normal(base_rng, (count // 2, dims[factor]))
    paired, pairs[factor] = _paired(pair_rng, base, count)
    if factor not in classify:
      codes[factor] = paired
      continue
    slot = classify.index(factor)
    fixed = constants.fixed_codes[slot]  # (n_f, d_f)
    label = jax.random.randint(label_rng, (count,), 0, fixed.shape[0])
    is_labelled = slot_now == slot
    codes[factor] = jnp.where(is_labelled, fixed[label], paired)
    labels[factor] = jnp.where(is_labelled, label, -1)
  return codes, labels, pairs, slot_now


def _critic_input(rng, state: State, vertices: jax.Array, config) -> jax.Array:
  images = discriminator_images(state.constants, vertices)
  return images + config.gan.instance_noise * jax.random.normal(rng, images.shape)


def _discriminator_loss(params, state: State, real, real_labels, fake, rng, config):
  """Eq. 6 for one critic step: WGAN-GP + lambda_C (class-weighted CE on labelled reals)."""
  gan = config.gan
  net = _discriminator(config, state.constants)
  noise_rng, gp_rng = jax.random.split(rng)
  real_rng, fake_noise_rng = jax.random.split(noise_rng)
  real_images = _critic_input(real_rng, state, real, config)
  fake_images = _critic_input(fake_noise_rng, state, fake, config)
  real_scores, real_logits, _ = net.apply({"params": params}, real_images)
  fake_scores, _, _ = net.apply({"params": params}, fake_images)
  wasserstein = adversarial.wasserstein_critic_loss(real_scores, fake_scores)
  penalty = adversarial.gradient_penalty(
    lambda x: net.apply({"params": params}, x)[0], real_images, fake_images, gp_rng
  )
  metrics = {"d_wasserstein": -wasserstein, "d_gradient_penalty": penalty}
  classification = 0.0
  for slot, factor in enumerate(gan.classify):
    term = losses.weighted_cross_entropy(
      real_logits[factor], real_labels[factor], state.constants.class_weights[slot]
    )
    classification += term
    metrics[f"d_class_{factor}"] = term
    metrics[f"d_accuracy_{factor}"] = losses.classification_accuracy(
      real_logits[factor], real_labels[factor]
    )
  total = wasserstein + gan.gradient_penalty * penalty + gan.lambda_class_d * classification
  metrics["d_loss"] = total
  return total, metrics


def _generator_loss(params, state: State, rng, count: int, config):
  """Eq. 8 for the generator update: (loss, metrics) of `count` generated meshes judged by the
  critic `state.discriminator`; `rng` is the iteration's key."""
  gan, classify = config.gan, tuple(config.gan.classify)
  current = state.replace(generator=params)
  codes, labels, pairs, slot_now = _generator_batch(
    jax.random.fold_in(rng, 1000), current, count, config
  )
  vertices, displacements = generate(current, codes, config)
  images = _critic_input(jax.random.fold_in(rng, 1001), current, vertices, config)
  scores, logits, features = _discriminator(config, state.constants).apply(
    {"params": state.discriminator}, images
  )
  wasserstein = adversarial.wasserstein_generator_loss(scores)
  classification, feature = 0.0, 0.0
  metrics = {}
  for slot, factor in enumerate(classify):
    class_term = losses.weighted_cross_entropy(logits[factor], labels[factor])
    # The feature loss scores the factor only when its codes are the shared (unlabelled) ones.
    feature_term = jnp.where(
      slot_now == slot, 0.0, losses.feature_loss(features[factor], pairs[factor])
    )
    classification += class_term
    feature += feature_term
    metrics[f"g_class_{factor}"] = class_term
    metrics[f"g_feature_{factor}"] = feature_term
  # In the critic's standardised units, like everything else the networks see: with
  # lambda_4 = 100 on mm^2 the regulariser outweighed the critic ~15x and the generator
  # stayed at the template.
  laplacian = losses.laplacian_energy(
    state.constants.laplacian, displacements / state.constants.image_scale
  )
  total = (
    gan.lambda_gan * wasserstein
    + gan.lambda_class * classification
    + gan.lambda_feat * feature
    + gan.lambda_laplacian * laplacian
  )
  metrics.update(g_gan=wasserstein, g_laplacian=laplacian, g_loss=total)
  return total, metrics


def train_step(state: State, batch, *, config, stage: Stage):
  """One iteration: `d_steps` critic updates (one real batch each), then a generator update."""
  gan = config.gan
  d_steps, classify = gan.d_steps, tuple(gan.classify)
  rng = jax.random.fold_in(state.rng, state.step)
  per_step = batch["vertices"].shape[0] // d_steps
  real = batch["vertices"].reshape((d_steps, per_step, *batch["vertices"].shape[1:]))
  real_labels = {f: batch[f"{f}_label"].reshape(d_steps, per_step) for f in classify}

  # A Python loop, not lax.scan: XLA:CPU ran the scanned critic steps ~8x slower.
  # The generator is fixed during the critic steps: draw all their fakes in one pass.
  fake_codes = _random_codes(jax.random.fold_in(rng, 2000), config, d_steps * per_step)
  fakes = jax.lax.stop_gradient(generate(state, fake_codes, config)[0])
  fakes = fakes.reshape((d_steps, per_step, *fakes.shape[1:]))
  d_params, d_opt, d_metrics = state.discriminator, state.opt_state["discriminator"], []
  d_optimizer = stage.optimizer["discriminator"]
  for index in range(d_steps):
    labels = {f: real_labels[f][index] for f in classify}
    grads, metrics = jax.grad(_discriminator_loss, has_aux=True)(
      d_params, state, real[index], labels, fakes[index], jax.random.fold_in(rng, index), config
    )
    updates, d_opt = d_optimizer.update(grads, d_opt, d_params)
    d_params = optax.apply_updates(d_params, updates)
    d_metrics.append(metrics)
  state = state.replace(discriminator=d_params)

  grads, g_metrics = jax.grad(_generator_loss, has_aux=True)(
    state.generator, state, rng, per_step, config
  )
  updates, g_opt = stage.optimizer["generator"].update(
    grads, state.opt_state["generator"], state.generator
  )
  state = state.replace(
    step=state.step + 1,
    generator=optax.apply_updates(state.generator, updates),
    opt_state={"generator": g_opt, "discriminator": d_opt},
  )
  metrics = {k: jnp.mean(jnp.stack([m[k] for m in d_metrics])) for k in d_metrics[0]}
  metrics.update(g_metrics)
  return state, metrics


# --------------------------------------------------------------------------- evaluation


def shape_generator(state: State, config) -> ShapeGenerator:
  """The trained generator as the metrics see it (codes ~ N(0, I) -> meshes in mm)."""
  state = jax.device_get(state)
  return ShapeGenerator(
    code_dims=code_dims(config),
    decode=functools.partial(_decode, state, config=frozen(config)),
    triangles=np.asarray(state.constants.triangles),
  )


def _decode(state: State, codes, *, config):
  return generate(state, codes, config)[0]


def evaluate(state: State, dataset: MeshDataset, config) -> dict[str, float]:
  """Quick in-training metrics (the paper's Tables 1 and 2: `decoupled_gan.paper_metrics`)."""
  generator = shape_generator(state, config)
  rng = np.random.default_rng(config.seed)
  quick = config.gan.quick_eval
  diversity = generator_diversity(generator, num_pairs=quick.num_pairs, rng=rng)
  reference = dataset.vertices(np.arange(min(len(dataset), quick.reference_meshes)))
  samples = generator.generate(generator.sample_codes(rng, quick.specificity_samples))
  metrics = {f"diversity_{k}_mm": v for k, v in diversity.items()}
  metrics["specificity_mm"] = specificity(samples, reference)
  return metrics


def summaries(state: State, batch, config) -> dict:
  """Sample grids (random; rows sharing each factor's code) and two sample meshes."""
  del batch
  generator = shape_generator(state, config)
  out = {}
  for share in (None, *config.gan.factors):
    name = "random" if share is None else f"same_{share}"
    out[f"samples_{name}"] = sample_grid(generator, np.random.default_rng(0), share=share)
  vertices = generator.generate(generator.sample_codes(np.random.default_rng(1), 2))
  out["sample"] = (vertices, generator.triangles)  # written as sample_0.obj, sample_1.obj
  return out
