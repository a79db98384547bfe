"""A small real method for testing the trainer: regress model coefficients from 2D landmarks.

The worked example of the method protocol (`jaxface.training.registry`,
`docs/adding_a_method.md`): a config, a dataset, a state, one stage, an
evaluation and summaries, each as short as a real method's can be.

Each example is a random face of the procedural model (identity and
expression coefficients ~ N(0, 1), truncated to a few modes) seen by an
orthographic camera with a random yaw; its 68 landmarks projected to 2D (+
noise) are the input. An MLP predicts the coefficients; the loss is the
coefficient error plus the 2D landmark reprojection error. Randomness of a
step comes from `fold_in(rng, step)` so resumed runs repeat exactly.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from jaxface.errors import ConfigError
from jaxface.methods.protocol import Stage, init_optimizer
from jaxface.morphable import load
from jaxface.training import loop_defaults, parse_arg, warm_start_source

NUM_IDENTITY, NUM_EXPRESSION = 6, 4


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = parse_arg(arg, variant="smoke", nan_at_step=-1)
  config = loop_defaults()
  config.method = "tests.training.fitting_method"  # dotted path: the loop imports it
  config.batch_size = 16
  config.num_steps = 30  # this method's one stage
  config.log_every = 5
  config.checkpoint_every = 10
  config.eval_every = 15
  config.summary_every = 30
  config.learning_rate = 3e-3
  config.hidden = 64
  config.dataset_size = 256
  config.nan_at_step = args.nan_at_step  # inject a NaN loss at this step (tests)
  # A source of the regressor's weights for a fresh run: --config.warm_start.regressor.workdir=RUN.
  config.warm_start.regressor = warm_start_source(("params",))
  return config


class _Landmarks:
  """Landmark rows of the procedural model: mean (68, 3) and bases."""

  def __init__(self):
    model = load("procedural")
    marks = np.asarray(model.landmarks)
    self.mean = np.asarray(model.vertices)[marks].astype(np.float64)
    self.identity = np.asarray(model.identity_basis)[:NUM_IDENTITY, marks].astype(np.float64)
    self.expression = np.asarray(model.expression_basis)[:NUM_EXPRESSION, marks].astype(np.float64)


class LandmarkDataset:
  def __init__(self, size: int, seed: int):
    self.size, self.seed = size, seed
    self.landmarks = _Landmarks()

  def __len__(self):
    return self.size

  def __getitem__(self, index: int):
    rng = np.random.default_rng((self.seed, index))
    identity = rng.standard_normal(NUM_IDENTITY)
    expression = rng.uniform(0, 1, NUM_EXPRESSION)
    yaw = rng.uniform(-0.5, 0.5)
    shape = self.landmarks.mean + np.einsum("k,kvd->vd", identity, self.landmarks.identity)
    shape += np.einsum("k,kvd->vd", expression, self.landmarks.expression)
    cos, sin = np.cos(yaw), np.sin(yaw)
    rotation = np.array([[cos, 0.0, sin], [0.0, 1.0, 0.0], [-sin, 0.0, cos]])  # yaw about y
    rotated = shape @ rotation.T
    points = rotated[:, :2] / 10.0 + 0.01 * rng.standard_normal((68, 2))
    return {
      "landmarks": points.astype(np.float32),  # (68, 2)
      "coefficients": np.concatenate([identity, expression]).astype(np.float32),  # (10,)
      "yaw": np.float32(yaw),
    }


class Regressor(nn.Module):
  """MLP from 2D landmarks to coefficients and yaw.

  Attributes:
    hidden: width of the hidden layers.
  """

  hidden: int = 64

  @nn.compact
  def __call__(self, landmarks):
    x = landmarks.reshape(landmarks.shape[0], -1)
    x = nn.gelu(nn.Dense(self.hidden)(x))
    x = nn.gelu(nn.Dense(self.hidden)(x))
    return nn.Dense(NUM_IDENTITY + NUM_EXPRESSION + 1)(x)


@struct.dataclass
class State:
  step: jax.Array
  params: dict
  opt_state: optax.OptState
  rng: jax.Array


def create_dataset(config, split):
  return LandmarkDataset(config.dataset_size, seed=config.seed + (0 if split == "train" else 1000))


def stages(config) -> tuple[Stage, ...]:
  if config.learning_rate <= 0:
    raise ConfigError(f"config.learning_rate={config.learning_rate} must be positive")
  return (
    Stage(
      name="fit", steps=config.num_steps, step=train_step, modules=("params",),
      optimizer=optax.adam(config.learning_rate),
    ),
  )  # fmt: skip


def create_state(config, rng, dataset):
  example = dataset[0]["landmarks"][None]  # (1, 68, 2): the network's input shape
  params = Regressor(config.hidden).init(rng, example)["params"]
  (stage,) = stages(config)
  return State(
    step=jnp.zeros((), jnp.int32),
    params=params,
    opt_state=init_optimizer(stage, {"params": params}),
    rng=jax.random.fold_in(rng, 1),
  )


def regression_loss(params, batch, noise_rng, config):
  # Jitter the input a little: exercises per-step randomness for resume tests.
  landmarks = batch["landmarks"] + 0.001 * jax.random.normal(noise_rng, batch["landmarks"].shape)
  prediction = Regressor(config.hidden).apply({"params": params}, landmarks)  # (B, 11)
  target = jnp.concatenate([batch["coefficients"], batch["yaw"][:, None]], axis=1)
  return jnp.mean((prediction - target) ** 2)


def train_step(state: State, batch, *, config, stage: Stage):
  noise_rng = jax.random.fold_in(state.rng, state.step)
  loss, grads = jax.value_and_grad(regression_loss)(state.params, batch, noise_rng, config)
  loss = jnp.where(state.step == config.nan_at_step, jnp.nan, loss)
  updates, opt_state = stage.optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
  return new_state, {"loss": loss}


def evaluate(state, dataset, config):
  batch = {
    k: np.stack([dataset[i][k] for i in range(32)]) for k in ("landmarks", "coefficients", "yaw")
  }
  prediction = Regressor(config.hidden).apply({"params": state.params}, batch["landmarks"])
  error = np.asarray(prediction[:, :-1]) - batch["coefficients"]
  return {"coefficient_rmse": float(np.sqrt(np.mean(error**2)))}


def summaries(state, batch, config):
  # The input landmarks drawn as black dots into small white images.
  del state, config
  landmarks = np.asarray(batch["landmarks"])[:4]
  images = np.ones((len(landmarks), 32, 32, 3), np.float32)
  for image, points in zip(images, landmarks, strict=True):
    cols = np.clip(((points[:, 0] + 1) * 16).astype(int), 0, 31)
    rows = np.clip(((1 - points[:, 1]) * 16).astype(int), 0, 31)
    image[rows, cols] = 0.0
  return {"inputs": images}
