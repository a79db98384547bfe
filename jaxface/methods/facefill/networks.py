"""3DFaceFill's state and its networks as the config defines them.

`State` holds every module's variables, one optimiser state per scheduled
stage and the truncated face model's arrays. The network constructors read
their hyper-parameters from `config.facefill` and their sizes that depend on
the face model (shape and expression coefficients) from the state's arrays,
so training, inference and evaluation build exactly the same modules.

Every module keeps its spectral-norm state in `batch_stats`; a training
forward pass refines it (`update_stats=True`), everything else reads it.
"""

from __future__ import annotations

import jax
import optax
from flax import struct

from jaxface.methods.facefill import model, render

#: The state fields holding each module's {"params", "batch_stats"} variables.
MODULES = ("encoder", "decoder", "inpainter", "discriminator", "segmenter")


@struct.dataclass
class State:
  """Every module of 3DFaceFill, the scheduled stages' optimiser states and the face model.

  Attributes:
    step: () int32, steps trained.
    rng: the base PRNG key (a step folds its index in).
    encoder, decoder, inpainter, discriminator, segmenter: {"params", "batch_stats"}.
    opt_state: {stage name: its optimiser's state} for the stages this run schedules.
    arrays: the truncated face model's constants (`render.face_model_arrays`),
      checkpointed with the state, never trained.
  """

  step: jax.Array
  rng: jax.Array
  encoder: dict
  decoder: dict
  inpainter: dict
  discriminator: dict
  segmenter: dict
  opt_state: dict
  arrays: render.FaceModelArrays


def coefficient_counts(arrays: render.FaceModelArrays) -> tuple[int, int]:
  """(Ki, Ke): the shape and expression coefficients the encoder predicts."""
  return arrays.identity_basis.shape[0], arrays.expression_basis.shape[0]


def encoder(config, arrays: render.FaceModelArrays) -> model.Encoder:
  ff = config.facefill
  num_identity, num_expression = coefficient_counts(arrays)
  return model.Encoder(
    num_identity=num_identity, num_expression=num_expression, translation_dims=2,
    feature_dim=ff.feature_dim, width=ff.widths.encoder,
  )  # fmt: skip


def decoder(config) -> model.AlbedoDecoder:
  ff = config.facefill
  return model.AlbedoDecoder(
    uv_size=tuple(ff.uv_size), upsamplings=ff.decoder_upsamplings, width=ff.widths.decoder
  )


def inpainter(config) -> model.SymUNet:
  return model.SymUNet(symmetry=config.facefill.symmetry, width=config.facefill.widths.inpainter)


def discriminator(config) -> model.PyramidDiscriminator:
  return model.PyramidDiscriminator(width=config.facefill.widths.discriminator)


def segmenter(config) -> model.Segmenter:
  return model.Segmenter(width=config.facefill.widths.segmenter)


def adam(config, learning_rate: float) -> optax.GradientTransformation:
  """Adam with a 0.98-per-epoch step decay (supplement sec. 4.3), counted per optimiser."""
  ff = config.facefill
  steps_per_epoch = max(1, config.data.num_train // config.batch_size)
  schedule = optax.exponential_decay(
    learning_rate, transition_steps=steps_per_epoch, decay_rate=ff.lr_decay, staircase=True
  )
  return optax.adam(schedule, b1=ff.beta1, b2=ff.beta2)


def apply(module, variables: dict, *args, update_stats: bool):
  """(output, variables): with `update_stats` the spectral-norm state is refined and returned."""
  if update_stats:
    out, mutated = module.apply(variables, *args, update_stats=True, mutable=["batch_stats"])
    return out, {"params": variables["params"], "batch_stats": mutated["batch_stats"]}
  return module.apply(variables, *args, update_stats=False), variables
