"""The steps of the two training stages (supplement, sec. 1).

Both minimise the same energy (`losses`) on a batch of B users x K frames:
the modeling network sees the K frames of each user at once (its batch
norms in training mode), the tracking network each frame.

- "joint": tracking and modeling networks together;
- "finetune": the modeling network alone, the tracking network frozen
  ("fine-tuning the modeling network during the second stage of training
  ensures further decoupling between tracking and modeling").

One step function, `train`, serves both: the stage's record says which
modules it updates. It is `step(state, batch, *, config, stage) -> (state,
metrics)` (method protocol v2), metrics named "<stage>/<name>".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxface.methods.personalized import losses, networks
from jaxface.methods.personalized.image_formation import personal_model, render_frames
from jaxface.methods.personalized.networks import State
from jaxface.methods.protocol import Stage


def loss_weights(config) -> dict[str, float]:
  """The supplement's weights, from `config.personalized.weights` (one per term)."""
  return {name: float(config.personalized.weights[name]) for name in losses.WEIGHTS}


def energy_terms(config, arrays, person, track, frames, images, face_mask, landmarks):
  """Every loss term (unweighted) and the face pixels compared, for rendered `frames`.

  images (N, H, W, 3), face_mask (N, H, W) bool, landmarks (N, 68, 2): the N = B K frames.
  """
  compared = (frames.render.mask > 0.5) & face_mask
  terms = {
    "photometric": losses.photometric_loss(frames.render.image, images, compared),
    "landmark": losses.landmark_loss(frames.landmarks, landmarks, images.shape[1]),
    "dynamic_albedo": losses.dynamic_albedo_loss(person.dynamic_albedo),
    "shape_deformation": losses.shape_deformation_loss(
      person.neutral_correction, person.blendshape_corrections, arrays.cm_per_unit
    ),
    "blendshape_gradient": losses.blendshape_gradient_loss(
      person.blendshape_corrections, arrays.mean, arrays.edges
    ),
    "coefficients": losses.coefficient_loss(person.identity, track.weights),
    "light": losses.light_loss(track.sh),
  }
  return terms, compared


def objective(params: dict, state: State, batch, config):
  """The weighted energy for {"modeling", "tracking"} params: (total, (terms, batch stats)).

  `params["modeling"]` holds the modeling network's {"params"}; its batch
  statistics come from the state and the updated ones are returned.
  """
  images = jnp.asarray(batch["image"])  # (B, K, H, W, 3)
  batch_size, frames, size = images.shape[0], images.shape[1], images.shape[2]
  flat = images.reshape(batch_size * frames, size, size, 3)
  variables = {"params": params["modeling"], "batch_stats": state.modeling["batch_stats"]}
  maps, batch_stats = networks.model_users(config, state, variables, images, train=True)
  person = personal_model(config, state.arrays, maps)
  track = networks.track_frames(config, state, params["tracking"], flat)
  rendered = render_frames(state.arrays, person, track, size, frames)
  terms, compared = energy_terms(
    config, state.arrays, person, track, rendered, flat,
    batch["face_mask"].reshape(flat.shape[:3]), batch["landmarks"].reshape(-1, 68, 2),
  )  # fmt: skip
  total = losses.total(terms, loss_weights(config))
  extras = {"face_coverage": jnp.mean(compared), "mean_weight": jnp.mean(track.weights)}
  return total, (terms, extras, batch_stats)


def train(state: State, batch, *, config, stage: Stage):
  """One step of the stage's modules (`stage.modules`) on the energy; the others stay frozen.

  Only the trained modules are differentiated, so a frozen tracking network
  costs its forward pass alone.
  """
  params = {"modeling": state.modeling["params"], "tracking": state.tracking["params"]}
  current = {name: params[name] for name in stage.modules}
  energy = lambda trained: objective({**params, **trained}, state, batch, config)
  (loss, (terms, extras, batch_stats)), grads = jax.value_and_grad(energy, has_aux=True)(current)
  if len(stage.modules) == 1:
    grads, current = grads[stage.modules[0]], current[stage.modules[0]]
  updates, opt_state = stage.optimizer.update(grads, state.opt_state[stage.name], current)
  new = optax.apply_updates(current, updates)
  if len(stage.modules) == 1:
    new = {stage.modules[0]: new}
  changes = {"modeling": {"params": new["modeling"], "batch_stats": batch_stats}}
  if "tracking" in stage.modules:
    changes["tracking"] = {"params": new["tracking"]}
  metrics = {"loss": loss, **terms, **extras}
  state = state.replace(
    step=state.step + 1, opt_state={**state.opt_state, stage.name: opt_state}, **changes
  )
  return state, {f"{stage.name}/{k}": jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
