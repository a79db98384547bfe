"""Shu et al. (FG 2020) as the trainer's method: its config checks, two stages and state.

Sec. IV: "we first train 3DMMNet for regressing 3DMM parameters and
viewpoints. Upon convergence, we start training DepthNet along with the
suitability network while keeping the parameters of 3DMMNet fixed", both
with Adam at 2e-4. So two `Stage` records, run in order over one state:

- "3dmm": 3DMMNet g (`steps.train_3dmm`);
- "depth": DepthNet f and the suitability network h (`steps.train_depth`),
  f alone in the `no_suitability` ablation.

`config.multiview.stage` runs both ("all") or one; the depth stage alone
starts from a trained 3DMMNet through the trainer's warm start
(`config.warm_start.three_dmm.workdir`), which is how the ablations share
one 3DMMNet.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxface.errors import ConfigError
from jaxface.methods.multiview_depth import networks, steps
from jaxface.methods.multiview_depth.data import PairDataset, check_data_config
from jaxface.methods.multiview_depth.networks import State
from jaxface.methods.protocol import Stage, init_optimizer
from jaxface.morphable import load as load_model
from jaxface.nets.layers import host_init_variables

STAGES = ("3dmm", "depth")
PHOTO_LOSSES = ("l1", "l1_ssim")


def check_config(config: ml_collections.ConfigDict) -> None:
  """Every `config.multiview` value the method relies on; ConfigError naming the field."""
  mv = config.multiview
  if mv.stage != "all" and mv.stage not in STAGES:
    raise ConfigError(f"config.multiview.stage must be 'all' or one of {STAGES}, got {mv.stage!r}")
  for name in STAGES:
    if mv[f"steps_{name}"] < 0:
      raise ConfigError(f"config.multiview.steps_{name}={mv[f'steps_{name}']} must be >= 0")
  if mv.photo_loss not in PHOTO_LOSSES:
    raise ConfigError(
      f"config.multiview.photo_loss must be one of {PHOTO_LOSSES}, got {mv.photo_loss!r}"
    )
  if mv.depth_a == 0:
    raise ConfigError("config.multiview.depth_a must be non-zero (eq. 7's scale a)")
  if not 0.0 < mv.face_threshold < 1.0:
    raise ConfigError(f"config.multiview.face_threshold must be in (0, 1), got {mv.face_threshold}")
  for field in ("lambda_identity", "lambda_expression", "lambda_3dmm", "suitability_weight",
                "occlusion_threshold", "learning_rate"):  # fmt: skip
    if mv[field] < 0:
      raise ConfigError(f"config.multiview.{field} must be >= 0, got {mv[field]}")
  if not 0.0 <= mv.ssim_weight <= 1.0:
    raise ConfigError(f"config.multiview.ssim_weight must be in [0, 1], got {mv.ssim_weight}")
  for field in ("batch_size", "num_summaries"):
    if mv.eval[field] < 1:
      raise ConfigError(f"config.multiview.eval.{field} must be positive, got {mv.eval[field]}")
  check_data_config(config)


def _adam(config) -> optax.GradientTransformation:
  return optax.adam(config.multiview.learning_rate)


def stages(config: ml_collections.ConfigDict) -> tuple[Stage, ...]:
  """Both stages in order (those with 0 steps left out), or `multiview.stage` alone.

  A depth stage without a 3DMM stage before it needs
  `config.warm_start.three_dmm.workdir`: DepthNet learns from a trained g.
  """
  check_config(config)
  mv = config.multiview
  depth_modules = ("depth", "suitability") if mv.use_suitability else ("depth",)
  every = (
    Stage("3dmm", mv.steps_3dmm, steps.train_3dmm, ("three_dmm",), _adam(config)),
    Stage("depth", mv.steps_depth, steps.train_depth, depth_modules, _adam(config)),
  )
  if mv.stage == "all":
    chosen = tuple(stage for stage in every if stage.steps > 0)
    if not chosen:
      raise ConfigError("config.multiview.steps_3dmm and steps_depth are both 0: nothing to train")
  else:
    chosen = tuple(stage for stage in every if stage.name == mv.stage)
  names = tuple(stage.name for stage in chosen)
  if "depth" in names and "3dmm" not in names and not config.warm_start.three_dmm.workdir:
    raise ConfigError(
      "the depth stage trains with a frozen, trained 3DMMNet: set "
      "config.warm_start.three_dmm.workdir to a 3dmm run, or use stage=all"
    )
  return chosen


def create_state(config: ml_collections.ConfigDict, rng: jax.Array, dataset: PairDataset) -> State:
  """The three networks freshly initialised, and one optimiser state per scheduled stage."""
  if dataset.image_size != config.data.image_size:
    raise ConfigError(
      f"config.data.image_size={config.data.image_size} but the dataset's images are "
      f"{dataset.image_size} px"
    )
  model = load_model(str(config.data.model))
  arrays = networks.face_arrays(model, dataset.num_identity, dataset.num_expression)
  seeds = [int(s) for s in np.asarray(jax.random.randint(rng, (4,), 0, 2**31 - 1))]
  size = config.data.image_size
  image = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  init = host_init_variables
  variables = {
    "three_dmm": init(
      networks.three_dmm_net(config, arrays), image, arrays.face_height, seed=seeds[0]
    ),
    "depth": init(networks.depth_net(config), image, seed=seeds[1]),
    "suitability": init(networks.suitability_net(config), image, seed=seeds[2]),
  }
  params = {name: value["params"] for name, value in variables.items()}
  return State(
    step=jnp.zeros((), jnp.int32),
    rng=jax.random.PRNGKey(seeds[3]),
    opt_state={stage.name: init_optimizer(stage, params) for stage in stages(config)},
    arrays=arrays,
    **{name: {"params": value} for name, value in params.items()},
  )
