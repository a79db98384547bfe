"""3DFaceFill (supplement sec. 4.3) as the trainer's method: its config checks, stages and state.

Four stages, each a `Stage` record (`stages(config)`), run in order over one
state by the trainer; `config.facefill.stage` picks all of them or one:

- "3dmm": encoder E + albedo decoder D_A on supervised + reconstruction +
  regularisation losses (supplement eq. 1);
- "3dmm_unsup": the same modules at 1/10 of the learning rate on the
  reconstruction, landmark and regularisation losses only, with random
  rectangular occlusions hiding part of the encoder's input;
- "inpaint": Sym-UNet G and PyramidGAN D, one update each per step (1:1),
  the 3DMM module frozen;
- "segment": the face segmenter S (focal loss).

A stage run alone starts from earlier runs' modules through the trainer's
warm starts (`config.warm_start.three_dmm / inpaint / segment`). The steps
are in `steps`, the completion pipeline in `pipeline`, evaluation and
summaries in `evaluation`.
"""

from __future__ import annotations

import functools
import itertools
import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxface.errors import ConfigError
from jaxface.methods.facefill import baselines, model, networks, render, steps
from jaxface.methods.facefill.data import FaceFillDataset, check_image_size
from jaxface.methods.facefill.networks import State
from jaxface.methods.protocol import Stage, init_optimizer
from jaxface.nets.layers import host_init_variables

log = logging.getLogger(__name__)

#: The stages in training order (their records: `stages`).
STAGES = ("3dmm", "3dmm_unsup", "inpaint", "segment")


#: `config.facefill.image_loss_region` and `factorise_input`: jaxface's default first, then the
#: public code's choice.
IMAGE_LOSS_REGIONS = ("holes", "face")
FACTORISE_INPUTS = ("masked", "unmasked")


def check_config(config: ml_collections.ConfigDict) -> None:
  """Every `config.facefill` (and `config.data`) value the method relies on; ConfigError naming
  the field."""
  ff = config.facefill
  if ff.stage != "all" and ff.stage not in STAGES:
    raise ConfigError(f"config.facefill.stage must be 'all' or one of {STAGES}, got {ff.stage!r}")
  for name in STAGES:
    if ff[f"steps_{name}"] < 0:
      raise ConfigError(f"config.facefill.steps_{name}={ff[f'steps_{name}']} must be >= 0")
  check_image_size(config)
  if ff.symmetry not in model.SYMMETRY_MODES:
    raise ConfigError(
      f"config.facefill.symmetry must be one of {model.SYMMETRY_MODES}, got {ff.symmetry!r}"
    )
  if ff.iterations < 1:
    raise ConfigError(f"config.facefill.iterations must be >= 1, got {ff.iterations}")
  if ff.texture_loss not in ("l1", "l2"):
    raise ConfigError(f"config.facefill.texture_loss must be 'l1' or 'l2', got {ff.texture_loss!r}")
  for field, known in (("image_loss_region", IMAGE_LOSS_REGIONS), ("factorise_input",
                       FACTORISE_INPUTS)):  # fmt: skip
    value = ff.get(field, known[0])
    if value not in known:
      raise ConfigError(f"config.facefill.{field} must be one of {known}, got {value!r}")
  uv_size, upsamplings = tuple(ff.uv_size), ff.decoder_upsamplings
  if len(uv_size) != 2 or any(s <= 0 or s % 32 or s % 2**upsamplings for s in uv_size):
    raise ConfigError(
      f"config.facefill.uv_size={uv_size} must be two multiples of 32 (the Sym-UNet) and of "
      f"2**decoder_upsamplings = {2**upsamplings}"
    )
  for field in ("batch_size", "num_images", "num_summaries"):
    if ff.eval[field] < 1:
      raise ConfigError(f"config.facefill.eval.{field} must be positive, got {ff.eval[field]}")
  buckets = tuple(tuple(float(v) for v in b) for b in ff.eval.buckets)
  if not buckets or any(a[1] != b[0] for a, b in itertools.pairwise(buckets)):
    raise ConfigError(
      f"config.facefill.eval.buckets={buckets} must be contiguous [low, high) ranges"
    )
  unknown = [b for b in ff.eval.baselines if b not in baselines.METHODS]
  if unknown:
    raise ConfigError(f"config.facefill.eval.baselines names {unknown}; known: {baselines.METHODS}")


def stages(config: ml_collections.ConfigDict) -> tuple[Stage, ...]:
  """The run's stages: all four in order (those with 0 steps left out), or `facefill.stage`.

  Also checks, before any training, that a stage which refines or uses the
  3DMM module starts from a trained one: trained earlier in this run, or
  warm-started (`config.warm_start.three_dmm`).
  """
  check_config(config)
  ff = config.facefill
  rate = ff.learning_rate
  adam = functools.partial(networks.adam, config)
  every = (
    Stage("3dmm", ff.steps_3dmm, steps.train_3dmm, ("encoder", "decoder"), adam(rate)),
    Stage(
      "3dmm_unsup", ff.steps_3dmm_unsup, steps.train_3dmm_unsup, ("encoder", "decoder"),
      adam(rate * ff.unsup_lr_factor),
    ),
    Stage(
      "inpaint", ff.steps_inpaint, steps.train_inpaint, ("inpainter", "discriminator"),
      {"inpainter": adam(rate), "discriminator": adam(ff.discriminator_learning_rate)},
    ),
    Stage("segment", ff.steps_segment, steps.train_segment, ("segmenter",), adam(rate)),
  )  # fmt: skip
  if ff.stage == "all":
    chosen = tuple(stage for stage in every if stage.steps > 0)
    if not chosen:
      raise ConfigError("config.facefill.steps_<stage> are all 0: nothing to train")
  else:
    chosen = tuple(stage for stage in every if stage.name == ff.stage)
  names = tuple(stage.name for stage in chosen)
  for index, name in enumerate(names):
    needs_3dmm = name in ("3dmm_unsup", "inpaint") and "3dmm" not in names[:index]
    if needs_3dmm and not config.warm_start.three_dmm.workdir:
      raise ConfigError(
        f"stage {name!r} starts from a trained 3DMM module: set "
        "config.warm_start.three_dmm.workdir to a 3dmm (or 3dmm_unsup) run, or use stage=all"
      )
  return chosen


def trained_modules(config: ml_collections.ConfigDict) -> frozenset[str]:
  """The modules this run trains or takes from other runs (what `evaluate` can report on)."""
  trained = {name for stage in stages(config) for name in stage.modules}
  for source in config.warm_start.values():
    if source.workdir:
      trained |= set(source.modules)
  return frozenset(trained)


def _check_mirrored_uv(face_model) -> None:
  """The symmetry losses and the Sym-UNet read hflip of a UV map as its bilateral mirror."""
  uv = np.asarray(face_model.vertex_uv)
  mirrored = np.stack([1.0 - uv[:, 0], uv[:, 1]], axis=-1)
  error = float(np.abs(uv[np.asarray(face_model.mirror)] - mirrored).max())
  if error > 0.01:
    log.warning(
      "model %r: its UV layout is not mirrored about u = 0.5 (error %.3f); the albedo "
      "symmetry losses and the Sym-UNet's flipped branch assume it is",
      face_model.name, error,
    )  # fmt: skip


def create_state(
  config: ml_collections.ConfigDict, rng: jax.Array, dataset: FaceFillDataset
) -> State:
  """Every module freshly initialised for the face model of the training `dataset`, and one
  optimiser state per scheduled stage (earlier runs' weights are the trainer's warm starts)."""
  if dataset.image_size != config.data.image_size:
    raise ConfigError(
      f"config.data.image_size={config.data.image_size} but the dataset's images are "
      f"{dataset.image_size} px"
    )
  face_model = dataset.model.truncated(dataset.num_identity, dataset.num_expression)
  _check_mirrored_uv(face_model)
  arrays = render.face_model_arrays(face_model, tuple(config.facefill.uv_size))
  seeds = [int(s) for s in np.asarray(jax.random.randint(rng, (6,), 0, 2**31 - 1))]
  size, uv_size = config.data.image_size, tuple(config.facefill.uv_size)
  f32 = jnp.float32
  image = jax.ShapeDtypeStruct((1, size, size, 3), f32)
  uv = jax.ShapeDtypeStruct((1, *uv_size, 3), f32)
  uv_mask = jax.ShapeDtypeStruct((1, *uv_size), f32)
  features = jax.ShapeDtypeStruct((1, config.facefill.feature_dim), f32)
  # numpy initialisation from eval_shape: compiling `init` of these networks costs minutes on CPU.
  init = functools.partial(host_init_variables, update_stats=False)
  variables = {
    "encoder": init(networks.encoder(config, arrays), image, seed=seeds[0]),
    "decoder": init(networks.decoder(config), features, seed=seeds[1]),
    "inpainter": init(networks.inpainter(config), uv, uv_mask, seed=seeds[2]),
    "discriminator": init(networks.discriminator(config), image, seed=seeds[3]),
    "segmenter": init(networks.segmenter(config), image, seed=seeds[4]),
  }
  params = {name: value["params"] for name, value in variables.items()}
  return State(
    step=jnp.zeros((), jnp.int32),
    rng=jax.random.PRNGKey(seeds[5]),
    opt_state={stage.name: init_optimizer(stage, params) for stage in stages(config)},
    arrays=arrays,
    **variables,
  )
