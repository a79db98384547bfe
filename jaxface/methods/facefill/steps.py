"""The step of each of 3DFaceFill's four training stages (supplement sec. 4.3).

- `train_3dmm` / `train_3dmm_unsup`: encoder E + albedo decoder D_A on
  supplement eq. 1; the unsupervised stage keeps only the landmark part of
  the supervised loss and hides random rectangles from the encoder;
- `train_inpaint`: Sym-UNet G and PyramidGAN D, one update each per step
  (1:1), the 3DMM module frozen, on one pass of the completion pipeline;
- `train_segment`: the face segmenter S (focal loss).

Each is `step(state, batch, *, config, stage) -> (state, metrics)` (method
protocol v2): hyper-parameters from `config.facefill`, the optimiser from the
stage's record, metrics named "<stage>/<name>".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxface.methods.facefill import losses, masks, model, networks, render
from jaxface.methods.facefill.data import BACKGROUND, FACE, OCCLUSION
from jaxface.methods.facefill.networks import State
from jaxface.methods.facefill.pipeline import blend, factorise, hide, synthesise, unwrap
from jaxface.methods.protocol import Stage
from jaxface.nets import adversarial

#: Samples whose unwrapped face shows fewer texels than this fraction of the UV map train nothing.
MIN_VISIBLE_FRACTION = 0.01


def _finish(state: State, stage: Stage, metrics: dict, **changes):
  """The stepped state and the stage's metrics as "<stage>/<name>" float32 scalars."""
  state = state.replace(step=state.step + 1, **changes)
  return state, {f"{stage.name}/{k}": jnp.asarray(v, jnp.float32) for k, v in metrics.items()}


def _random_flip(rng: jax.Array, *arrays: jax.Array) -> list[jax.Array]:
  """Flips each sample of every (B, H, W, ...) array left-right with probability 1/2."""
  batch = arrays[0].shape[0]
  flip = jax.random.bernoulli(rng, 0.5, (batch,))
  return [
    jnp.where(flip.reshape((batch,) + (1,) * (a.ndim - 1)), jnp.flip(a, axis=2), a) for a in arrays
  ]


def _lambda_shape(config, arrays) -> float:
  """lambda_S; -1 in the config means 1 / (Ki + Ke), the mean squared coefficient error."""
  value = config.facefill.lambda_shape
  return 1.0 / sum(networks.coefficient_counts(arrays)) if value < 0 else value


# --------------------------------------------------------------------------- 3DMM stages


def _three_dmm_objective(params, state: State, batch, rng, supervised: bool, config):
  """Supplement eq. 1: lambda_sup L_sup + lambda_rec L_rec + lambda_reg L_reg.

  The unsupervised stage keeps only the landmark part of L_sup and hides a
  random rectangle of the head from the encoder (the loss still sees it).
  """
  ff, arrays = config.facefill, state.arrays
  image_size = config.data.image_size
  images, labels = batch["image"], batch["segmentation"]  # (B, H, W, 3), (B, H, W)
  face = labels == FACE
  hidden = labels == OCCLUSION  # occluders are removed before encoding, as at inference
  if not supervised:
    hidden = hidden | masks.random_rectangle_mask(rng, labels != BACKGROUND, split="train")
  factors, encoder = networks.apply(
    networks.encoder(config, arrays),
    {"params": params["encoder"], "batch_stats": state.encoder["batch_stats"]},
    hide(images, hidden), update_stats=True,
  )  # fmt: skip
  albedo, decoder = networks.apply(
    networks.decoder(config),
    {"params": params["decoder"], "batch_stats": state.decoder["batch_stats"]},
    factors.albedo_features, update_stats=True,
  )  # (B, Hu, Wu, 3)  # fmt: skip
  out = render.render_face(arrays, factors, albedo, image_size)
  rec = losses.masked_l1(out.image, images, out.mask * face)  # L_rec on the visible face
  half = 0.5 * image_size  # landmarks in NDC units, the render layer's
  landmark = losses.landmark_loss(out.landmarks / half, batch["landmarks"] / half)
  # L_const's chromaticity comes from the input texture in UV (no gradient through it).
  texture, texture_visible = render.unwrap_face(
    arrays, jax.tree_util.tree_map(jax.lax.stop_gradient, factors), images, face,
    remove_shading=False,
  )  # fmt: skip
  chart = jnp.broadcast_to(arrays.chart_mask, albedo.shape[:3]).astype(albedo.dtype)
  sym3d = losses.albedo_symmetry_loss(albedo, chart)
  const = losses.albedo_constancy_loss(albedo, texture, chart * texture_visible)
  reg = ff.lambda_sym3d * sym3d + ff.lambda_const * const
  metrics = {
    "rec": rec, "landmark": landmark, "sym3d": sym3d, "const": const,
    "landmark_px": jnp.mean(jnp.linalg.norm(out.landmarks - batch["landmarks"], axis=-1)),
    "overflow": jnp.max(out.fragments.overflow).astype(jnp.float32),
  }  # fmt: skip
  if supervised:
    coefficients = jnp.concatenate([factors.identity, factors.expression], axis=-1)
    targets = jnp.concatenate([batch["identity"], batch["expression"]], axis=-1)
    shape = losses.shape_loss(coefficients, targets)
    pose = losses.pose_loss(
      factors.scale, factors.translation, factors.rotation,
      batch["scale"], batch["translation"], batch["rotation"],
      scale_weight=ff.lambda_scale, translation_weight=ff.lambda_translation,
      rotation_weight=ff.lambda_rotation,
    )  # fmt: skip
    texture_term = losses.texture_loss(albedo, batch["albedo"], chart, kind=ff.texture_loss)
    sup = (
      _lambda_shape(config, arrays) * shape
      + ff.lambda_pose * pose
      + ff.lambda_texture * texture_term
      + ff.lambda_landmark * landmark
    )
    metrics.update(shape=shape, pose=pose, texture=texture_term)
  else:
    sup = ff.lambda_landmark * landmark
  total = ff.lambda_sup * sup + ff.lambda_rec * rec + ff.lambda_reg * reg
  metrics["loss"] = total
  return total, (metrics, encoder["batch_stats"], decoder["batch_stats"])


def _train_3dmm(state: State, batch, config, stage: Stage, supervised: bool):
  rng = jax.random.fold_in(state.rng, state.step)
  params = {"encoder": state.encoder["params"], "decoder": state.decoder["params"]}
  grads, (metrics, encoder_stats, decoder_stats) = jax.grad(_three_dmm_objective, has_aux=True)(
    params, state, batch, rng, supervised, config
  )
  updates, opt_state = stage.optimizer.update(grads, state.opt_state[stage.name], params)
  params = optax.apply_updates(params, updates)
  return _finish(
    state, stage, metrics,
    encoder={"params": params["encoder"], "batch_stats": encoder_stats},
    decoder={"params": params["decoder"], "batch_stats": decoder_stats},
    opt_state={**state.opt_state, stage.name: opt_state},
  )  # fmt: skip


def train_3dmm(state: State, batch, *, config, stage: Stage):
  """Stage "3dmm": supervised shape, pose, texture and landmarks + reconstruction + regularisers."""
  return _train_3dmm(state, batch, config, stage, supervised=True)


def train_3dmm_unsup(state: State, batch, *, config, stage: Stage):
  """Stage "3dmm_unsup": reconstruction, landmarks and regularisers on randomly occluded inputs."""
  return _train_3dmm(state, batch, config, stage, supervised=False)


# --------------------------------------------------------------------------- inpainting stage


def train_inpaint(state: State, batch, *, config, stage: Stage):
  """Stage "inpaint": random flips and face masks, the frozen 3DMM's factors, `inpaint_update`."""
  rng = jax.random.fold_in(state.rng, state.step)
  flip_rng, mask_rng, penalty_rng = jax.random.split(rng, 3)
  images, labels = _random_flip(flip_rng, batch["image"], batch["segmentation"])
  holes = masks.random_rectangle_mask(mask_rng, labels == FACE, split="train")  # on the face
  # The public code factorises the full image ("unmasked"); jaxface, by default, what the
  # inpainter is given, as at test time ("masked"). Occluders are hidden either way.
  hidden = labels == OCCLUSION
  if config.facefill.get("factorise_input", "masked") == "masked":
    hidden = hidden | holes
  factors = factorise(state, images, hidden, config)
  state, metrics = inpaint_update(
    state, images, labels, holes, factors, penalty_rng, config=config, stage=stage
  )
  return _finish(state, stage, metrics)


def inpaint_update(
  state: State, images, labels, holes, factors: model.Factors, rng, *, config, stage: Stage
):
  """One discriminator and one inpainter update (1:1) on one completion pass.

  As the public code's loop: the inpainter's forward pass runs once, the
  discriminator steps on its (detached) blended images, then the inpainter
  steps against the updated discriminator through that same forward pass
  (`jax.vjp`). Returns the state (step not advanced) and the raw metrics.

  Args:
    state: the State (its 3DMM module is not used: `factors` are given).
    images: (B, H, W, 3) the full images (targets).
    labels: (B, H, W) their segmentation.
    holes: (B, H, W) bool, the pixels hidden from the inpainter (on the face).
    factors: the 3DMM factors of the masked images (held constant).
    rng: PRNG key of the gradient penalty.
    config: the run's config; stage: the inpaint stage (its optimisers).
  """
  ff, arrays = config.facefill, state.arrays
  penalty_rng = rng
  face = labels == FACE
  visible = face & ~holes
  partial, partial_visible = unwrap(state, factors, images, visible, config)  # the input
  target, target_visible = unwrap(state, factors, images, face, config)  # what the hole hid
  chart = jnp.broadcast_to(arrays.chart_mask, partial_visible.shape).astype(jnp.float32)
  # A sample whose estimated face shows (almost) no texel gives the Sym-UNet a constant input;
  # GroupNorm's backward then multiplies by rsqrt(eps) level after level and overflows to NaN.
  # Such samples (an untrained or lost 3DMM fit) still count in the metrics but send no gradient.
  usable = jnp.mean(partial_visible, axis=(1, 2)) >= MIN_VISIBLE_FRACTION  # (B,)
  inpainter = networks.inpainter(config)
  whole_face = ff.get("image_loss_region", "holes") == "face"

  def generate(params):
    variables = {"params": params, "batch_stats": state.inpainter["batch_stats"]}
    (albedo, log_uncertainty), variables = networks.apply(
      inpainter, variables, partial, partial_visible, update_stats=True
    )  # (B, Hu, Wu, 3), (B, Hu, Wu, 1)
    gate = usable[:, None, None, None]
    albedo = jnp.where(gate, albedo, jax.lax.stop_gradient(albedo))
    log_uncertainty = jnp.where(gate, log_uncertainty, jax.lax.stop_gradient(log_uncertainty))
    rendered, coverage, pixel_log_uncertainty, overflow = synthesise(
      state, factors, albedo, log_uncertainty, config
    )
    outputs = {
      "albedo": albedo,
      "log_uncertainty": log_uncertainty[..., 0],
      "blended": blend(images, holes, rendered, coverage, visible),
      "pixel_log_uncertainty": pixel_log_uncertainty,
    }
    if whole_face:  # the public code's image loss: the rendering over the whole face
      outputs["blended_face"] = blend(images, face, rendered, coverage, visible)
    return outputs, (variables["batch_stats"], overflow)

  outputs, generate_vjp, (inpainter_stats, overflow) = jax.vjp(
    generate, state.inpainter["params"], has_aux=True
  )
  batch_size = images.shape[0]
  fake = jax.lax.stop_gradient(outputs["blended"])
  discriminator = networks.discriminator(config)

  def discriminator_objective(params):
    variables = {"params": params, "batch_stats": state.discriminator["batch_stats"]}
    # Real and fake in one pass: one power iteration per step (GroupNorm is per sample).
    logits, variables = networks.apply(
      discriminator, variables, jnp.concatenate([images, fake]), update_stats=True
    )
    hinge = adversarial.hinge_discriminator_loss(
      [x[:batch_size] for x in logits], [x[batch_size:] for x in logits]
    )
    penalty = adversarial.gradient_penalty(
      lambda x: discriminator.apply(variables, x, update_stats=False), images, fake, penalty_rng
    )
    return hinge + ff.gradient_penalty * penalty, (hinge, penalty, variables["batch_stats"])

  (d_loss, (hinge, penalty, d_stats)), d_grads = jax.value_and_grad(
    discriminator_objective, has_aux=True
  )(state.discriminator["params"])
  d_updates, d_opt = stage.optimizer["discriminator"].update(
    d_grads, state.opt_state[stage.name]["discriminator"], state.discriminator["params"]
  )
  d_params = optax.apply_updates(state.discriminator["params"], d_updates)
  d_variables = {"params": d_params, "batch_stats": d_stats}

  def generator_objective(outputs):
    uncertainty = outputs["log_uncertainty"] if ff.uncertainty else None
    pixel_uncertainty = outputs["pixel_log_uncertainty"] if ff.uncertainty else None
    if uncertainty is None:
      uv = losses.masked_l1(outputs["albedo"], target, target_visible)
    else:
      uv = losses.uncertainty_l1(outputs["albedo"], target, uncertainty, target_visible)
    symmetry = losses.inpainting_symmetry_loss(
      outputs["albedo"], partial_visible, uncertainty, valid=chart
    )
    if whole_face:
      image = losses.blended_image_loss(outputs["blended_face"], images, face, pixel_uncertainty)
    else:
      # Over the holes only: elsewhere the blend is the input, its L1 is 0 and the uncertainty
      # term would just reward c -> -inf there.
      image = losses.blended_image_loss(outputs["blended"], images, holes, pixel_uncertainty)
    gan = adversarial.hinge_generator_loss(
      discriminator.apply(d_variables, outputs["blended"], update_stats=False)
    )
    total = (
      ff.lambda_uv * uv + ff.lambda_symmetry * symmetry + ff.lambda_image * image
      + ff.lambda_gan * gan
    )  # fmt: skip
    return total, {"g_loss": total, "uv": uv, "symmetry": symmetry, "image": image, "gan": gan}

  (_, metrics), cotangent = jax.value_and_grad(generator_objective, has_aux=True)(outputs)
  (g_grads,) = generate_vjp(cotangent)
  g_updates, g_opt = stage.optimizer["inpainter"].update(
    g_grads, state.opt_state[stage.name]["inpainter"], state.inpainter["params"]
  )
  state = state.replace(
    inpainter={
      "params": optax.apply_updates(state.inpainter["params"], g_updates),
      "batch_stats": inpainter_stats,
    },
    discriminator=d_variables,
    opt_state={**state.opt_state, stage.name: {"inpainter": g_opt, "discriminator": d_opt}},
  )
  metrics.update(
    d_loss=d_loss, d_hinge=hinge, d_gradient_penalty=penalty,
    overflow=jnp.max(overflow).astype(jnp.float32), usable=jnp.mean(usable.astype(jnp.float32)),
  )  # fmt: skip
  return state, metrics


# --------------------------------------------------------------------------- segmentation stage


def train_segment(state: State, batch, *, config, stage: Stage):
  """Stage "segment": the focal loss of the segmenter on randomly flipped images."""
  rng = jax.random.fold_in(state.rng, state.step)
  images, labels = _random_flip(rng, batch["image"], batch["segmentation"])
  segmenter = networks.segmenter(config)

  def objective(params):
    variables = {"params": params, "batch_stats": state.segmenter["batch_stats"]}
    logits, variables = networks.apply(segmenter, variables, images, update_stats=True)
    loss = losses.focal_loss(logits, labels, gamma=config.facefill.focal_gamma)
    accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == labels)
    return loss, (accuracy, variables["batch_stats"])

  (loss, (accuracy, stats)), grads = jax.value_and_grad(objective, has_aux=True)(
    state.segmenter["params"]
  )
  updates, opt_state = stage.optimizer.update(
    grads, state.opt_state[stage.name], state.segmenter["params"]
  )
  return _finish(
    state, stage, {"loss": loss, "accuracy": accuracy.astype(jnp.float32)},
    segmenter={"params": optax.apply_updates(state.segmenter["params"], updates),
               "batch_stats": stats},
    opt_state={**state.opt_state, stage.name: opt_state},
  )  # fmt: skip
