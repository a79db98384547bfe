"""The personalized face model as the trainer's method: config checks, two stages and state.

The supplement trains in two stages: tracking and modeling networks jointly,
then the modeling network fine-tuned with the tracking network fixed. So
two `Stage` records over one state (`steps.train` for both; each stage's
`modules` say what it updates):

- "joint": ("modeling", "tracking");
- "finetune": ("modeling",).

`config.personalized.stage` runs both ("all") or one; a standalone
finetune stage takes both networks from a joint run through the trainer's
warm start (`config.warm_start.joint.workdir`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxface.errors import ConfigError
from jaxface.methods.personalized import losses, networks, steps
from jaxface.methods.personalized.data import UserFrames, check_data_config
from jaxface.methods.personalized.networks import State
from jaxface.methods.personalized.rig import rig_arrays
from jaxface.methods.protocol import Stage, init_optimizer
from jaxface.morphable import load as load_model
from jaxface.nets.layers import host_init_variables

STAGES = ("joint", "finetune")
CORRECTION_SUPPORTS = ("blendshape", "free")


def check_config(config: ml_collections.ConfigDict) -> None:
  """Every `config.personalized` value the method relies on; ConfigError naming the field."""
  pc = config.personalized
  if pc.stage != "all" and pc.stage not in STAGES:
    raise ConfigError(
      f"config.personalized.stage must be 'all' or one of {STAGES}, got {pc.stage!r}"
    )
  for name in STAGES:
    if pc[f"steps_{name}"] < 0:
      raise ConfigError(f"config.personalized.steps_{name}={pc[f'steps_{name}']} must be >= 0")
  for field in ("frames_per_user", "draws_per_user", "eval_frames_per_user"):
    if pc[field] < 1:
      raise ConfigError(f"config.personalized.{field}={pc[field]} must be positive")
  for field in ("learning_rate", "finetune_learning_rate", "shape_scale", "albedo_scale"):
    if not pc[field] > 0:
      raise ConfigError(f"config.personalized.{field} must be > 0, got {pc[field]}")
  unknown = sorted(set(pc.weights) - set(losses.WEIGHTS))
  missing = sorted(set(losses.WEIGHTS) - set(pc.weights))
  if unknown or missing:
    raise ConfigError(
      f"config.personalized.weights must name exactly {sorted(losses.WEIGHTS)}; "
      f"unknown {unknown}, missing {missing}"
    )
  for name, value in pc.weights.items():
    if value < 0:
      raise ConfigError(f"config.personalized.weights.{name} must be >= 0, got {value}")
  if pc.correction_support not in CORRECTION_SUPPORTS:
    raise ConfigError(
      f"config.personalized.correction_support must be one of {CORRECTION_SUPPORTS}, "
      f"got {pc.correction_support!r}"
    )
  if len(pc.encoder_widths) != len(networks.ENCODER_STRIDES) + 1:
    raise ConfigError(
      f"config.personalized.encoder_widths needs {len(networks.ENCODER_STRIDES) + 1} entries "
      f"(Table 1a), got {tuple(pc.encoder_widths)}"
    )
  if len(pc.decoder_widths) != 4:
    raise ConfigError(
      "config.personalized.decoder_widths needs 4 entries (Table 1b), got "
      f"{tuple(pc.decoder_widths)}"
    )
  if pc.eval.num_summaries < 1:
    raise ConfigError(
      f"config.personalized.eval.num_summaries must be positive, got {pc.eval.num_summaries}"
    )
  check_data_config(config)


def stages(config: ml_collections.ConfigDict) -> tuple[Stage, ...]:
  """Both stages in order (those with 0 steps left out), or `personalized.stage` alone."""
  check_config(config)
  pc = config.personalized
  every = (
    Stage("joint", pc.steps_joint, steps.train, ("modeling", "tracking"),
          optax.adam(pc.learning_rate)),
    Stage("finetune", pc.steps_finetune, steps.train, ("modeling",),
          optax.adam(pc.finetune_learning_rate)),
  )  # fmt: skip
  if pc.stage == "all":
    chosen = tuple(stage for stage in every if stage.steps > 0)
    if not chosen:
      raise ConfigError("config.personalized.steps_joint and steps_finetune are both 0")
  else:
    chosen = tuple(stage for stage in every if stage.name == pc.stage)
  names = tuple(stage.name for stage in chosen)
  if names == ("finetune",) and not config.warm_start.joint.workdir:
    raise ConfigError(
      "the finetune stage starts from trained networks: set config.warm_start.joint.workdir "
      "to a joint run, or use stage=all"
    )
  return chosen


def create_state(config: ml_collections.ConfigDict, rng: jax.Array, dataset: UserFrames) -> State:
  """Both networks freshly initialised, and one optimiser state per scheduled stage."""
  if dataset.image_size != config.data.image_size:
    raise ConfigError(
      f"config.data.image_size={config.data.image_size} but the dataset's frames are "
      f"{dataset.image_size} px"
    )
  model = load_model(str(config.data.model))
  pc, size = config.personalized, config.data.image_size
  uv_size = 16 * (size // 32 + 1)  # what the decoders produce (networks.Decoder)
  arrays = rig_arrays(model, pc.num_identity or model.num_identity, uv_size)
  seeds = [int(s) for s in np.asarray(jax.random.randint(rng, (3,), 0, 2**31 - 1))]
  frames = jax.ShapeDtypeStruct((1, pc.frames_per_user, size, size, 3), jnp.float32)
  frame = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  modeling = host_init_variables(
    networks.modeling_network(config, arrays), frames, train=False, seed=seeds[0]
  )
  tracking = host_init_variables(
    networks.tracking_network(config, arrays), frame, networks.face_height(arrays), seed=seeds[1]
  )
  params = {"modeling": modeling["params"], "tracking": tracking["params"]}
  return State(
    step=jnp.zeros((), jnp.int32),
    rng=jax.random.PRNGKey(seeds[2]),
    modeling=modeling,
    tracking={"params": tracking["params"]},
    opt_state={stage.name: init_optimizer(stage, params) for stage in stages(config)},
    arrays=arrays,
  )
