"""Training the decoupled 3D face GAN (paper sec. 4.3, 5.1): the trainer's method protocol.

One `train_step` is one paper iteration: `d_steps` (3) critic updates, each
on its own real batch, then one generator update. The pipeline therefore
delivers `config.batch_size = d_steps * per_step_batch` meshes per step.

The factors of variation are data: `config.gan.factors` names them (each
with a code size and a `<factor>_label` field in the dataset), `noise_dim`
adds an unlabelled noise code, and `config.gan.classify` lists the factors
that get an auxiliary classifier. For the generator update, the batch
alternates between the classified factors (`step % len(classify)`): the
current factor's codes come from its fixed per-label codes T^f (scored by
the classification loss), every other factor's codes are shared by pairs
of samples (scored by the feature loss on its classifier's features).

Lengths: the data arrive in the morphable model's units and are converted
to mm once (`MeshDataset`), so losses, instance noise and metrics are in
mm as in the paper.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from jaxface.geometry.laplacian import LaplacianOperator, cotangent_laplacian
from jaxface.methods.decoupled_gan import losses
from jaxface.methods.decoupled_gan.data import MeshDataset, create_dataset
from jaxface.methods.decoupled_gan.figures import sample_grid
from jaxface.methods.decoupled_gan.model import Discriminator, Generator, concatenate_codes
from jaxface.metrics.shape import ShapeGenerator, generator_diversity, specificity
from jaxface.render.geometry_image import (
  GeometryImageLookup,
  geometry_image,
  geometry_image_lookup,
)

__all__ = [
  "Constants",
  "Settings",
  "State",
  "create_dataset",
  "create_state",
  "discriminator_images",
  "evaluate",
  "init_state",
  "shape_generator",
  "summaries",
  "train_step",
]


@dataclasses.dataclass(frozen=True)
class Settings:
  """Static hyper-parameters (hashable; part of the jitted step's structure)."""

  factors: tuple[str, ...]
  factor_dims: tuple[int, ...]
  noise_dim: int
  classify: tuple[str, ...]
  num_classes: tuple[int, ...]  # per classified factor
  num_vertices: int
  hidden: int
  output_init: str
  d_steps: int
  lambda_class_d: float
  lambda_gan: float
  lambda_class: float
  lambda_feat: float
  lambda_laplacian: float
  gradient_penalty: float
  instance_noise: float
  learning_rate: float
  beta1: float
  beta2: float

  @property
  def code_names(self) -> tuple[str, ...]:
    return self.factors + (("noise",) if self.noise_dim else ())

  @property
  def code_dims(self) -> dict[str, int]:
    dims = dict(zip(self.factors, self.factor_dims, strict=True))
    if self.noise_dim:
      dims["noise"] = self.noise_dim
    return dims

  def generator(self) -> Generator:
    initialisers = {"zeros": nn.initializers.zeros, "lecun_normal": nn.initializers.lecun_normal()}
    if self.output_init not in initialisers:
      raise ValueError(
        f"config.gan.output_init must be one of {sorted(initialisers)}, got {self.output_init!r}"
      )
    return Generator(
      num_vertices=self.num_vertices, hidden=self.hidden, output_init=initialisers[self.output_init]
    )

  def discriminator(self) -> Discriminator:
    return Discriminator(num_classes=dict(zip(self.classify, self.num_classes, strict=True)))

  def optimizer(self) -> optax.GradientTransformation:
    return optax.adam(self.learning_rate, b1=self.beta1, b2=self.beta2)


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
  step: jax.Array
  generator: dict
  discriminator: dict
  generator_opt: optax.OptState
  discriminator_opt: optax.OptState
  rng: jax.Array
  constants: Constants
  settings: Settings = struct.field(pytree_node=False)


def settings_from_config(config: ml_collections.ConfigDict, dataset: MeshDataset) -> Settings:
  gan = config.gan
  factors = tuple(gan.factors)
  classify = tuple(gan.classify)
  unknown = [f for f in classify if f not in factors]
  if unknown:
    raise ValueError(f"config.gan.classify names {unknown}, not in config.gan.factors {factors}")
  if len(gan.factor_dims) != len(factors):
    raise ValueError(
      f"config.gan.factor_dims {tuple(gan.factor_dims)} must give one size per factor {factors}"
    )
  if config.batch_size % gan.d_steps:
    raise ValueError(
      f"config.batch_size={config.batch_size} must be a multiple of config.gan.d_steps="
      f"{gan.d_steps} (each critic step takes batch_size / d_steps real meshes)"
    )
  if (config.batch_size // gan.d_steps) % 2:
    raise ValueError("the per-step batch (batch_size / d_steps) must be even: codes come in pairs")
  return Settings(
    factors=factors,
    factor_dims=tuple(int(d) for d in gan.factor_dims),
    noise_dim=int(gan.noise_dim),
    classify=classify,
    num_classes=tuple(dataset.num_classes[f] for f in classify),
    num_vertices=dataset.num_vertices,
    hidden=int(gan.hidden),
    output_init=str(gan.output_init),
    d_steps=int(gan.d_steps),
    lambda_class_d=float(gan.lambda_class_d),
    lambda_gan=float(gan.lambda_gan),
    lambda_class=float(gan.lambda_class),
    lambda_feat=float(gan.lambda_feat),
    lambda_laplacian=float(gan.lambda_laplacian),
    gradient_penalty=float(gan.gradient_penalty),
    instance_noise=float(gan.instance_noise),
    learning_rate=float(gan.learning_rate),
    beta1=float(gan.beta1),
    beta2=float(gan.beta2),
  )


def _displacement_scale(dataset: MeshDataset, count: int = 512) -> float:
  """Standard deviation (mm) of vertex displacements from the template over a data sample."""
  indices = np.linspace(0, len(dataset) - 1, min(count, len(dataset))).astype(int)
  displacements = dataset.vertices(indices) - dataset.template  # (n, V, 3)
  return float(np.sqrt(np.mean(displacements**2)))


def create_state(config: ml_collections.ConfigDict, rng: jax.Array, example_batch) -> State:
  del example_batch  # shapes and labels come from the training set
  return init_state(config, rng, create_dataset(config, "train"))


def init_state(config: ml_collections.ConfigDict, rng: jax.Array, dataset: MeshDataset) -> State:
  """A fresh state for `dataset` (its template, UV map and training labels)."""
  settings = settings_from_config(config, dataset)
  template = jnp.asarray(dataset.template, jnp.float32)  # (V, 3) mm
  lookup = geometry_image_lookup(
    np.asarray(dataset.triangles), np.asarray(dataset.uv), np.asarray(dataset.triangle_uv),
    int(config.gan.image_size),
  )  # fmt: skip
  code_rng, g_rng, d_rng, state_rng = jax.random.split(rng, 4)
  fixed_codes = tuple(
    jax.random.normal(jax.random.fold_in(code_rng, index), (count, settings.code_dims[factor]))
    for index, (factor, count) in enumerate(
      zip(settings.classify, settings.num_classes, strict=False)
    )
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
      for f, n in zip(settings.classify, settings.num_classes, strict=True)
    ),
  )
  codes = jnp.zeros((1, sum(settings.code_dims.values())))
  generator = settings.generator().init(g_rng, codes)["params"]
  images = jnp.zeros((1, *constants.template_image.shape))
  discriminator = settings.discriminator().init(d_rng, images)["params"]
  optimizer = settings.optimizer()
  return State(
    step=jnp.zeros((), jnp.int32),
    generator=generator,
    discriminator=discriminator,
    generator_opt=optimizer.init(generator),
    discriminator_opt=optimizer.init(discriminator),
    rng=state_rng,
    constants=constants,
    settings=settings,
  )


def generate(state: State, codes: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
  """Codes {name: (N, d)} -> (vertices (N, V, 3) mm, displacements (N, V, 3))."""
  z = concatenate_codes(codes, state.settings.code_names)
  # The network speaks in units of the data's displacement spread (as the
  # critic does): mm-sized outputs would take Adam at lr 2e-4 thousands of
  # steps to reach from a zero-initialised layer.
  standardised = state.settings.generator().apply({"params": state.generator}, z)
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


def _random_codes(rng, settings: Settings, count: int) -> dict[str, jax.Array]:
  keys = jax.random.split(rng, len(settings.code_names))
  return {
    name: jax.random.normal(key, (count, dim))
    for key, (name, dim) in zip(keys, settings.code_dims.items(), strict=True)
  }


def _paired(rng, base: jax.Array, count: int) -> tuple[jax.Array, jax.Array]:
  """Codes (count, d) where random pairs of rows share one of `base` (count/2, d).

  Returns the codes and (count/2, 2) the row indices of each pair.
  """
  order = jax.random.permutation(rng, count)  # pair k = rows order[2k], order[2k+1]
  codes = jnp.zeros((count, base.shape[-1]), base.dtype).at[order].set(jnp.repeat(base, 2, 0))
  return codes, order.reshape(count // 2, 2)


def _generator_batch(rng, state: State, count: int):
  """Codes for a generator update and, per classified factor, labels and pairs.

  Factor k = step % len(classify) takes labelled codes T^k[c] (labels c
  uniform over classes, equivalent in expectation to the balanced weights);
  every other factor's codes are shared by random pairs of samples.
  """
  settings, constants = state.settings, state.constants
  phase = state.step % max(len(settings.classify), 1)
  codes = _random_codes(jax.random.fold_in(rng, 0), settings, count)  # noise stays independent
  labels, pairs = {}, {}
  for index, factor in enumerate(settings.factors):
    factor_rng = jax.random.fold_in(rng, index + 1)
    pair_rng, base_rng, label_rng = jax.random.split(factor_rng, 3)
    base = jax.random.normal(base_rng, (count // 2, settings.code_dims[factor]))
    paired, pairs[factor] = _paired(pair_rng, base, count)
    if factor not in settings.classify:
      codes[factor] = paired
      continue
    slot = settings.classify.index(factor)
    label = jax.random.randint(label_rng, (count,), 0, settings.num_classes[slot])
    labelled = constants.fixed_codes[slot][label]
    is_labelled = phase == slot
    codes[factor] = jnp.where(is_labelled, labelled, paired)
    labels[factor] = jnp.where(is_labelled, label, -1)
  return codes, labels, pairs, phase


def _critic_input(rng, state: State, vertices: jax.Array) -> jax.Array:
  images = discriminator_images(state.constants, vertices)
  return images + state.settings.instance_noise * jax.random.normal(rng, images.shape)


def _discriminator_loss(params, state: State, real, real_labels, fake, rng):
  """Eq. 6 for one critic step: WGAN-GP + lambda_C (class-weighted CE on labelled reals)."""
  settings = state.settings
  net = settings.discriminator()
  noise_rng, gp_rng = jax.random.split(rng)
  real_rng, fake_noise_rng = jax.random.split(noise_rng)
  real_images = _critic_input(real_rng, state, real)
  fake_images = _critic_input(fake_noise_rng, state, fake)
  real_scores, real_logits, _ = net.apply({"params": params}, real_images)
  fake_scores, _, _ = net.apply({"params": params}, fake_images)
  gan = losses.wasserstein_critic_loss(real_scores, fake_scores)
  penalty = losses.gradient_penalty(
    lambda x: net.apply({"params": params}, x)[0], real_images, fake_images, gp_rng
  )
  metrics = {"d_wasserstein": -gan, "d_gradient_penalty": penalty}
  classification = 0.0
  for slot, factor in enumerate(settings.classify):
    term = losses.weighted_cross_entropy(
      real_logits[factor], real_labels[factor], state.constants.class_weights[slot]
    )
    classification += term
    metrics[f"d_class_{factor}"] = term
    metrics[f"d_accuracy_{factor}"] = losses.classification_accuracy(
      real_logits[factor], real_labels[factor]
    )
  total = gan + settings.gradient_penalty * penalty + settings.lambda_class_d * classification
  metrics["d_loss"] = total
  return total, metrics


def train_step(state: State, batch):
  """One iteration: `d_steps` critic updates (one real batch each), then a generator update."""
  settings = state.settings
  optimizer = settings.optimizer()
  rng = jax.random.fold_in(state.rng, state.step)
  per_step = batch["vertices"].shape[0] // settings.d_steps
  real = batch["vertices"].reshape((settings.d_steps, per_step, *batch["vertices"].shape[1:]))
  real_labels = {
    f: batch[f"{f}_label"].reshape(settings.d_steps, per_step) for f in settings.classify
  }

  # A Python loop, not lax.scan: XLA:CPU ran the scanned critic steps ~8x slower.
  # The generator is fixed during the critic steps: draw all their fakes in one pass.
  fake_codes = _random_codes(jax.random.fold_in(rng, 2000), settings, settings.d_steps * per_step)
  fakes = jax.lax.stop_gradient(generate(state, fake_codes)[0])
  fakes = fakes.reshape((settings.d_steps, per_step, *fakes.shape[1:]))
  d_params, d_opt, d_metrics = state.discriminator, state.discriminator_opt, []
  for index in range(settings.d_steps):
    labels = {f: real_labels[f][index] for f in settings.classify}
    grads, metrics = jax.grad(_discriminator_loss, has_aux=True)(
      d_params, state, real[index], labels, fakes[index], jax.random.fold_in(rng, index)
    )
    updates, d_opt = optimizer.update(grads, d_opt, d_params)
    d_params = optax.apply_updates(d_params, updates)
    d_metrics.append(metrics)
  state = state.replace(discriminator=d_params, discriminator_opt=d_opt)

  def generator_objective(params):
    current = state.replace(generator=params)
    codes, labels, pairs, phase = _generator_batch(jax.random.fold_in(rng, 1000), current, per_step)
    vertices, displacements = generate(current, codes)
    images = _critic_input(jax.random.fold_in(rng, 1001), current, vertices)
    scores, logits, features = settings.discriminator().apply({"params": d_params}, images)
    gan = losses.wasserstein_generator_loss(scores)
    classification, feature = 0.0, 0.0
    metrics = {}
    for slot, factor in enumerate(settings.classify):
      class_term = losses.weighted_cross_entropy(logits[factor], labels[factor])
      # The feature loss scores the factor only when its codes are the shared (unlabelled) ones.
      feature_term = jnp.where(
        phase == slot, 0.0, losses.feature_loss(features[factor], pairs[factor])
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
      settings.lambda_gan * gan
      + settings.lambda_class * classification
      + settings.lambda_feat * feature
      + settings.lambda_laplacian * laplacian
    )
    metrics.update(g_gan=gan, g_laplacian=laplacian, g_loss=total)
    return total, metrics

  grads, g_metrics = jax.grad(generator_objective, has_aux=True)(state.generator)
  updates, g_opt = optimizer.update(grads, state.generator_opt, state.generator)
  state = state.replace(
    step=state.step + 1,
    generator=optax.apply_updates(state.generator, updates),
    generator_opt=g_opt,
  )
  metrics = {k: jnp.mean(jnp.stack([m[k] for m in d_metrics])) for k in d_metrics[0]}
  metrics.update(g_metrics)
  return state, metrics


def shape_generator(state: State) -> ShapeGenerator:
  """The trained generator as the metrics see it (codes ~ N(0, I) -> meshes in mm)."""
  state = jax.device_get(state)
  return ShapeGenerator(
    code_dims=state.settings.code_dims,
    decode=functools.partial(_decode, state),
    triangles=np.asarray(state.constants.triangles),
  )


def _decode(state: State, codes):
  return generate(state, codes)[0]


def evaluate(state: State, dataset: MeshDataset, config) -> dict[str, float]:
  """Quick in-training metrics (the paper's full tables: `decoupled_gan.evaluate`)."""
  generator = shape_generator(state)
  rng = np.random.default_rng(config.seed)
  quick = config.gan.quick_eval
  diversity = generator_diversity(generator, num_pairs=quick.num_pairs, rng=rng)
  reference = dataset.vertices(np.arange(min(len(dataset), quick.reference_meshes)))
  samples = generator.generate(generator.sample_codes(rng, quick.specificity_samples))
  metrics = {f"diversity_{k}_mm": v for k, v in diversity.items()}
  metrics["specificity_mm"] = specificity(samples, reference)
  return metrics


def summaries(state: State, batch) -> dict:
  """Sample grids (random; rows sharing each factor's code) and two sample meshes."""
  del batch
  generator = shape_generator(state)
  out = {}
  for share in (None, *state.settings.factors):
    name = "random" if share is None else f"same_{share}"
    out[f"samples_{name}"] = sample_grid(generator, np.random.default_rng(0), share=share)
  vertices = generator.generate(generator.sample_codes(np.random.default_rng(1), 2))
  out["sample"] = (vertices, generator.triangles)  # written as sample_0.obj, sample_1.obj
  return out
