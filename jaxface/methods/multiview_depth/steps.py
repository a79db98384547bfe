"""The steps of the two training stages (Shu et al. FG 2020, sec. IV).

- `train_3dmm`: 3DMMNet g on E^g = E_alpha + E_pair + E_land (eq. 6), on
  synthetic pairs (full labels) and real-like pairs (identity pseudo-label,
  lambda2 = 0, detector landmarks);
- `train_depth`: DepthNet f and the suitability network h with g frozen, on
  E^{f,h} (eq. 16): depth and normal L1 (synthetic only), the 3DMM
  regulariser, the occlusion- and suitability-weighted photo-consistency
  loss and the suitability regulariser (all data).

Each is `step(state, batch, *, config, stage) -> (state, metrics)` (method
protocol v2), metrics named "<stage>/<name>".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxface.data.multiview import focal_length
from jaxface.methods.multiview_depth import geometry, losses, networks
from jaxface.methods.multiview_depth.networks import Fit, State
from jaxface.methods.protocol import Stage
from jaxface.render.warp import covisibility, warp


def _finish(state: State, stage: Stage, metrics: dict, **changes):
  state = state.replace(step=state.step + 1, **changes)
  return state, {f"{stage.name}/{k}": jnp.asarray(v, jnp.float32) for k, v in metrics.items()}


def _flat(pairs: jax.Array) -> jax.Array:
  """(B, 2, ...) -> (2B, ...), view 1 of every pair first."""
  return jnp.swapaxes(pairs, 0, 1).reshape(-1, *pairs.shape[2:])


def _views(flat: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(2B, ...) from `_flat` -> view 1 (B, ...), view 2 (B, ...)."""
  half = flat.shape[0] // 2
  return flat[:half], flat[half:]


def _split_fit(fit: Fit) -> tuple[Fit, Fit]:
  first, second = zip(*(_views(field) for field in fit), strict=True)
  return Fit(*first), Fit(*second)


def _focal(config) -> float:
  return focal_length(config.data.image_size)


# --------------------------------------------------------------------------- stage 1: 3DMMNet


def _three_dmm_terms(config, state, params, images, landmarks, identity, expression):
  """E_alpha, E_pair and E_land of a batch of pairs (eqs. 3-5); `expression` None: lambda2 = 0."""
  mv, size = config.multiview, config.data.image_size
  fit = networks.fit(config, state, params, _flat(images))
  fit_1, fit_2 = _split_fit(fit)
  coefficients = (
    sum(
      losses.coefficient_loss(f, identity, expression, mv.lambda_identity, mv.lambda_expression)
      for f in (fit_1, fit_2)
    )
    / 2.0
  )
  projected = geometry.project_landmarks(state.arrays, fit, _focal(config), size)
  return {
    "coefficients": coefficients,
    "pair": losses.pair_consistency_loss(fit_1, fit_2),
    "landmarks": losses.landmark_loss(projected, _flat(landmarks), size),
  }


def train_3dmm(state: State, batch, *, config, stage: Stage):
  """One step of 3DMMNet on eq. 6 over the synthetic and (if used) real-like pairs."""
  use_real = config.multiview.use_real

  def objective(params):
    terms = {
      f"syn_{k}": v
      for k, v in _three_dmm_terms(
        config, state, params, batch["syn_image"], batch["syn_landmarks"],
        batch["syn_identity"], batch["syn_expression"],
      ).items()
    }  # fmt: skip
    if use_real:
      terms.update({
        f"real_{k}": v
        for k, v in _three_dmm_terms(
          config, state, params, batch["real_image"], batch["real_landmarks"],
          batch["real_identity"], None,
        ).items()
      })  # fmt: skip
    return sum(terms.values()), terms

  (loss, terms), grads = jax.value_and_grad(objective, has_aux=True)(state.three_dmm["params"])
  updates, opt_state = stage.optimizer.update(
    grads, state.opt_state[stage.name], state.three_dmm["params"]
  )
  params = optax.apply_updates(state.three_dmm["params"], updates)
  return _finish(
    state, stage, {"loss": loss, **terms},
    three_dmm={"params": params}, opt_state={**state.opt_state, stage.name: opt_state},
  )  # fmt: skip


# --------------------------------------------------------------------------- stage 2: DepthNet + h


def frozen_fit(config, state: State, images: jax.Array):
  """3DMMNet's fit of (N, H, W, 3) images and its depth render, all under `stop_gradient`.

  Returns (fit, D_S (N, H, W) metric, its mask (N, H, W) bool, D_S' normalised).
  """
  mv, size = config.multiview, config.data.image_size
  fit = jax.tree.map(jax.lax.stop_gradient, networks.fit(config, state, None, images))
  depth, mask = geometry.render_fit_depth(state.arrays, fit, _focal(config), size)
  distance = geometry.camera_face_distance(fit.translation)
  normalized = geometry.normalize_depth(depth, distance, mask, mv.depth_a, mv.depth_c)
  return fit, jax.lax.stop_gradient(depth), mask, jax.lax.stop_gradient(normalized)


def occlusion_mask(config, fit_1: Fit, fit_2: Fit, depth_1, depth_2, mask_1, mask_2):
  """M_o of eq. 13: view-1 pixels whose 3DMM point view 2 also sees (threshold in D' units).

  With `use_occlusion` off (the `no_occlusion` ablation) every pixel of the
  view-1 render counts as seen.
  """
  mv, size = config.multiview, config.data.image_size
  if not mv.use_occlusion:
    return mask_1
  focal = _focal(config)
  camera_1 = geometry.cameras(fit_1.rotation, fit_1.translation, focal, size)
  camera_2 = geometry.cameras(fit_2.rotation, fit_2.translation, focal, size)
  threshold = mv.occlusion_threshold / abs(mv.depth_a)  # eq. 13's 0.05 is in normalised units
  return jax.vmap(covisibility, in_axes=(0, 0, 0, 0, None, 0, 0))(
    depth_1, depth_2, camera_1, camera_2, threshold, mask_1, mask_2
  )


def photo_terms(config, images, predicted, suitability, fit, fit_depth, fit_mask):
  """Eq. 14 and 15 for pairs: warp view 2 into view 1 by f(I1) and both estimated poses.

  Args:
    images: (2B, H, W, 3) as `_flat` orders them; predicted: (2B, H, W) D'
      of those images; suitability: (B, H, W) C = h(I1) of the view-1 images.
    fit, fit_depth, fit_mask: the frozen 3DMMNet fit and its depth render of the images.

  Returns (E_VS, E_reg, the compared pixels (B, H, W), the occlusion mask (B, H, W)).
  """
  mv, size = config.multiview, config.data.image_size
  focal = _focal(config)
  image_1, image_2 = _views(images)
  fit_1, fit_2 = _split_fit(fit)
  depth_1, depth_2 = _views(fit_depth)
  mask_1, mask_2 = _views(fit_mask)
  occlusion = occlusion_mask(config, fit_1, fit_2, depth_1, depth_2, mask_1, mask_2)
  distance = geometry.camera_face_distance(fit_1.translation)
  metric = geometry.denormalize_depth(_views(predicted)[0], distance, mv.depth_a, mv.depth_c)
  camera_1 = geometry.cameras(fit_1.rotation, fit_1.translation, focal, size)
  camera_2 = geometry.cameras(fit_2.rotation, fit_2.translation, focal, size)
  warped, valid = jax.vmap(warp)(image_2, metric, camera_1, camera_2, mask_1)
  error = losses.photometric_error(image_1, warped, mv.photo_loss, mv.ssim_weight)
  region = valid & occlusion
  vs = losses.view_synthesis_loss(error, suitability, occlusion, valid)
  reg = (
    losses.suitability_regularizer(suitability, region, mv.suitability_weight)
    if mv.use_suitability
    else jnp.zeros(())
  )
  return vs, reg, region, occlusion


def depth_objective(params, state: State, batch, config):
  """E^{f,h} of eq. 16 for {"depth", "suitability"} params: (total, (terms, diagnostics)).

  3DMMNet's fit enters under `stop_gradient`: no term reaches its parameters.
  """
  mv, size = config.multiview, config.data.image_size
  focal = _focal(config)
  groups = ["syn"] + (["real"] if mv.use_real else [])
  terms, extras = {}, {}
  for group in groups:
    images = _flat(batch[f"{group}_image"])  # (2B, H, W, 3)
    fit, fit_depth, fit_mask, fit_normalized = frozen_fit(config, state, images)
    predicted = networks.depth(config, params["depth"], images)  # (2B, H, W) D'
    if mv.use_suitability:
      suitability = networks.suitability(config, params["suitability"], _views(images)[0])
    else:
      suitability = jnp.ones(_views(predicted)[0].shape)
    if group == "syn":
      mask = _flat(batch["syn_mask"])
      distance = _flat(batch["syn_distance"])
      target = geometry.normalize_depth(
        _flat(batch["syn_depth"]), distance, mask, mv.depth_a, mv.depth_c
      )
      terms["syn_depth"] = losses.depth_loss(predicted, target, mask)
      metric = geometry.denormalize_depth(predicted, distance, mv.depth_a, mv.depth_c)
      normals, _ = geometry.depth_normals(metric, mask, focal, size)
      target_normals, valid = geometry.depth_normals(_flat(batch["syn_depth"]), mask, focal, size)
      terms["syn_normals"] = losses.normal_loss(normals, target_normals, valid)
    terms[f"{group}_3dmm"] = losses.three_dmm_regularizer(predicted, fit_normalized, mv.lambda_3dmm)
    vs, reg, region, occlusion = photo_terms(
      config, images, predicted, suitability, fit, fit_depth, fit_mask
    )
    terms[f"{group}_multiview"] = vs
    if mv.use_suitability:
      terms[f"{group}_suitability_reg"] = reg
      extras[f"{group}_mean_suitability"] = losses.masked_mean(suitability, region)
    extras[f"{group}_covisible"] = losses.masked_mean(occlusion, _views(fit_mask)[0])
  return sum(terms.values()), (terms, extras)


def train_depth(state: State, batch, *, config, stage: Stage):
  """One step of DepthNet (+ suitability) on eq. 16 with 3DMMNet frozen."""
  params = {name: getattr(state, name)["params"] for name in ("depth", "suitability")}
  (loss, (terms, extras)), grads = jax.value_and_grad(depth_objective, has_aux=True)(
    params, state, batch, config
  )
  trained = {name: grads[name] for name in stage.modules}
  current = {name: params[name] for name in stage.modules}
  if len(stage.modules) == 1:
    trained, current = trained[stage.modules[0]], current[stage.modules[0]]
  updates, opt_state = stage.optimizer.update(trained, state.opt_state[stage.name], current)
  new = optax.apply_updates(current, updates)
  if len(stage.modules) == 1:
    new = {stage.modules[0]: new}
  changes = {name: {"params": new[name]} for name in stage.modules}
  return _finish(
    state, stage, {"loss": loss, **terms, **extras},
    opt_state={**state.opt_state, stage.name: opt_state}, **changes,
  )  # fmt: skip
