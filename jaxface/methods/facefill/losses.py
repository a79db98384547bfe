"""3DFaceFill's loss terms (WACV 2022 supplement, sec. 4.2-4.3), as plain jnp functions.

Three groups, one per trained module:
- 3DMM module (supplement eq. 1, sec. 4.2): supervised shape / pose / texture /
  landmark losses, the image reconstruction L1 and the two albedo
  regularisers (bilateral symmetry, chromaticity-weighted local constancy);
- albedo inpainter (sec. 4.3, main eq. 2, and the public code): the
  uncertainty-weighted L1 `(l * exp(-c) + c) / 2` in UV, the symmetry L1 that
  ignores differences <= 0.005 and the L1 of the blended image (its hinge GAN
  losses and WGAN-GP penalty are shared with the decoupled GAN:
  `jaxface.nets.adversarial`);
- face segmenter (sec. 4.3): the focal loss.

Every function returns a scalar to minimise and is jit/vmap/grad-safe (shape
checks are static). Images and UV maps are channels-last: `(..., H, W, C)`
with masks `(..., H, W)` (1 = the texel/pixel counts). Masked means pool
over the whole batch, sum(loss * mask) / sum(mask), as the public code does, so
a sample with an empty mask adds nothing and never divides by zero.

Loss weights (the paper's lambdas, "equal weightage") belong to the method's
config, not to these functions (the public code's gradient-penalty weight 10
is `config.facefill.gradient_penalty`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxface.nets.layers import check_image

# Tran & Liu's nonlinear-3DMM constancy loss, which the supplement's L_const
# restates without numbers: exp(-15 * chromaticity distance), ||.||_2^0.8.
ALBEDO_CONSTANCY_ALPHA = 15.0
ALBEDO_CONSTANCY_P = 0.8
# Public 3DFaceFill code: |A - hflip(A)| <= 0.005 is treated as already symmetric.
SYMMETRY_THRESHOLD = 0.005

_EPS = 1e-8


# --------------------------------------------------------------------------- helpers


def _check_same(a: jax.Array, b: jax.Array, name_a: str, name_b: str) -> None:
  if a.shape != b.shape:
    raise ValueError(f"{name_a} {a.shape} and {name_b} {b.shape} must have the same shape")


def _check_mask(mask: jax.Array, image: jax.Array, name: str) -> None:
  """A mask is (..., H, W) matching the image's leading and spatial axes."""
  if mask.shape != image.shape[:-1]:
    raise ValueError(
      f"{name} must have shape {image.shape[:-1]} (the image's (..., H, W)), got {mask.shape}"
    )


def _masked_mean(values: jax.Array, mask: jax.Array | None) -> jax.Array:
  """sum(values * mask) / sum(mask) over every axis; the plain mean when mask is None."""
  if mask is None:
    return jnp.mean(values)
  mask = jnp.broadcast_to(mask.astype(values.dtype), values.shape)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), _EPS)


def _hflip(x: jax.Array, spatial_axis: int) -> jax.Array:
  return jnp.flip(x, axis=spatial_axis)


# --------------------------------------------------------------------------- 3DMM module


def shape_loss(prediction: jax.Array, target: jax.Array) -> jax.Array:
  """Supervised shape loss E[||f_S - f~_S||_2^2] (supplement sec. 4.2, "Shape loss").

  The squared norm runs over the last axis and the expectation over all the
  others, so the same function serves both readings of the paper:
  coefficients `(B, K)` (shape and expression concatenated, K = 199 + 29 for
  BFM) give E_b ||f_b - f~_b||^2, and vertices `(B, V, 3)` give the mean
  squared per-vertex distance.
  """
  prediction, target = jnp.asarray(prediction), jnp.asarray(target)
  _check_same(prediction, target, "prediction", "target")
  if prediction.ndim < 1:
    raise ValueError(f"prediction must have shape (..., K), got {prediction.shape}")
  return jnp.mean(jnp.sum((prediction - target) ** 2, axis=-1))


def rotation_loss(quaternion: jax.Array, target_quaternion: jax.Array) -> jax.Array:
  """L_R = E[||quat(R) - quat(R~)||_2^2] (sec. 4.2, pose loss), sign-invariant.

  q and -q are the same rotation, so the distance is taken to the nearer of
  ±q~: min(||q - q~||^2, ||q + q~||^2) = 2 - 2 |<q, q~>| for unit quaternions,
  which is 2 - 2 cos(theta / 2) for a relative rotation by theta. Both inputs
  are normalised first, so a network may output an unnormalised quaternion.

  Args:
    quaternion, target_quaternion: (..., 4) (w, x, y, z).
  """
  quaternion, target_quaternion = jnp.asarray(quaternion), jnp.asarray(target_quaternion)
  _check_same(quaternion, target_quaternion, "quaternion", "target_quaternion")
  if quaternion.shape[-1] != 4:
    raise ValueError(f"quaternion must have shape (..., 4), got {quaternion.shape}")

  def unit(q):
    return q / jnp.sqrt(jnp.sum(q * q, axis=-1, keepdims=True) + _EPS)

  q, p = unit(quaternion), unit(target_quaternion)  # (..., 4)
  minus = jnp.sum((q - p) ** 2, axis=-1)
  plus = jnp.sum((q + p) ** 2, axis=-1)
  return jnp.mean(jnp.minimum(minus, plus))


def pose_loss(
  scale: jax.Array,
  translation: jax.Array,
  quaternion: jax.Array,
  target_scale: jax.Array,
  target_translation: jax.Array,
  target_quaternion: jax.Array,
  *,
  scale_weight: float = 1.0,
  translation_weight: float = 1.0,
  rotation_weight: float = 1.0,
) -> jax.Array:
  """Weak-perspective pose loss (sec. 4.2):

  L(p, p~) = λ_s E[(s - s~)^2] + λ_t E[||t_xy - t~_xy||^2] + λ_r L_R,
  with L_R from `rotation_loss` (so q and -q score the same).

  Args:
    scale, target_scale: (B,) weak-perspective scales.
    translation, target_translation: (B, 2) image-plane translations.
    quaternion, target_quaternion: (B, 4) rotations (w, x, y, z).
  """
  scale, target_scale = jnp.asarray(scale), jnp.asarray(target_scale)
  translation, target_translation = jnp.asarray(translation), jnp.asarray(target_translation)
  _check_same(scale, target_scale, "scale", "target_scale")
  _check_same(translation, target_translation, "translation", "target_translation")
  if translation.ndim < 1:
    raise ValueError(f"translation must have shape (..., T), got {translation.shape}")
  scale_term = jnp.mean((scale - target_scale) ** 2)
  translation_term = jnp.mean(jnp.sum((translation - target_translation) ** 2, axis=-1))
  rotation_term = rotation_loss(quaternion, target_quaternion)
  return (
    scale_weight * scale_term
    + translation_weight * translation_term
    + rotation_weight * rotation_term
  )


def texture_loss(
  prediction: jax.Array, target: jax.Array, mask: jax.Array, *, kind: str = "l1"
) -> jax.Array:
  """Supervised UV texture loss L(T^uv, T~^uv) over the valid texels (sec. 4.2).

  The supplement writes a squared L2; the public code (and Tran & Liu's,
  which it follows) trains the texture with L1, hence `kind="l1"` by default
  and `kind="l2"` for the paper's form. Per texel the error is averaged over
  channels, then pooled over the texels where `mask` is set (the UV chart
  and, for ground truth unwrapped from a photo, the visible part).

  Args:
    prediction, target: (..., Hu, Wu, C) UV textures.
    mask: (..., Hu, Wu) 1 on valid texels.
    kind: "l1" (|d|) or "l2" (d^2).
  """
  prediction, target, mask = jnp.asarray(prediction), jnp.asarray(target), jnp.asarray(mask)
  check_image(prediction, "prediction", batched=False)
  _check_same(prediction, target, "prediction", "target")
  _check_mask(mask, prediction, "mask")
  if kind == "l1":
    error = jnp.abs(prediction - target)
  elif kind == "l2":
    error = (prediction - target) ** 2
  else:
    raise ValueError(f"kind must be 'l1' or 'l2', got {kind!r}")
  return _masked_mean(jnp.mean(error, axis=-1), mask)


def landmark_loss(
  prediction: jax.Array, target: jax.Array, weights: jax.Array | None = None
) -> jax.Array:
  """2D landmark loss ||M(p) [S(:, d); 1] - U||_2^2 (sec. 4.2), per landmark averaged.

  The projection M(p) [S(:, d); 1] is the caller's (it owns the camera);
  this takes the projected points. Returns the (weighted) mean over
  landmarks and batch of the squared 2D distance, in the units of the
  inputs; `weights` lets undetected or invisible landmarks drop out.

  Args:
    prediction, target: (..., L, 2) projected and ground-truth landmarks (L = 68).
    weights: (..., L) optional per-landmark weights (e.g. detector confidence).
  """
  prediction, target = jnp.asarray(prediction), jnp.asarray(target)
  _check_same(prediction, target, "prediction", "target")
  if prediction.ndim < 2 or prediction.shape[-1] != 2:
    raise ValueError(f"prediction must have shape (..., L, 2), got {prediction.shape}")
  squared = jnp.sum((prediction - target) ** 2, axis=-1)  # (..., L)
  if weights is not None:
    weights = jnp.asarray(weights)
    if weights.shape != squared.shape:
      raise ValueError(f"weights must have shape {squared.shape}, got {weights.shape}")
  return _masked_mean(squared, weights)


def masked_l1(prediction: jax.Array, target: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Image reconstruction L_rec = E[||I - I~||_1] over the face pixels (sec. 4.2).

  Per pixel the absolute error is averaged over channels, then pooled over
  the pixels where `mask` is set: for the 3DMM module, the rendered face's
  coverage times the visible (non-occluded) face; without a mask, all pixels.

  Args:
    prediction, target: (..., H, W, C).
    mask: (..., H, W) 1 on the pixels that count.
  """
  prediction, target = jnp.asarray(prediction), jnp.asarray(target)
  check_image(prediction, "prediction", batched=False)
  _check_same(prediction, target, "prediction", "target")
  if mask is not None:
    mask = jnp.asarray(mask)
    _check_mask(mask, prediction, "mask")
  return _masked_mean(jnp.mean(jnp.abs(prediction - target), axis=-1), mask)


def albedo_symmetry_loss(albedo: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """L_3dsym(A) = ||A^uv - hflip(A^uv)||_1 (sec. 4.2, "Albedo symmetry loss").

  Assumes a UV layout mirrored about its vertical centre line (BFM's is, and
  so is jaxface's procedural chart), so hflip maps each texel to its
  bilateral twin. A texel pair counts only where both texels are valid:
  weight mask * hflip(mask). Gradients flow into both sides.

  Args:
    albedo: (..., Hu, Wu, C) UV albedo.
    mask: (..., Hu, Wu) 1 on texels inside the UV chart; None: all texels.
  """
  albedo = jnp.asarray(albedo)
  check_image(albedo, "albedo", batched=False)
  weight = None
  if mask is not None:
    mask = jnp.asarray(mask)
    _check_mask(mask, albedo, "mask")
    weight = mask * _hflip(mask, -1)  # (..., Hu, Wu)
  difference = jnp.abs(albedo - _hflip(albedo, -2))  # (..., Hu, Wu, C)
  return _masked_mean(jnp.mean(difference, axis=-1), weight)


def chromaticity(texture: jax.Array) -> jax.Array:
  """(..., 3) RGB in [0, 1] -> (..., 3) rgb / (r + g + b): brightness-free colour."""
  texture = jnp.asarray(texture)
  return texture / (jnp.sum(texture, axis=-1, keepdims=True) + 1e-6)


def albedo_constancy_loss(
  albedo: jax.Array,
  texture: jax.Array,
  mask: jax.Array | None = None,
  *,
  alpha: float = ALBEDO_CONSTANCY_ALPHA,
  p: float = ALBEDO_CONSTANCY_P,
) -> jax.Array:
  """L_const (sec. 4.2): Σ_{j ∈ N_i} ω_ij ||A_i - A_j||_2^p, ω_ij = exp(-α ||c_i - c_j||).

  N_i is the 4-neighbourhood in UV and c the chromaticity of the input
  texture (`chromaticity`, texture in [0, 1]): neighbours of the same colour
  up to shading must share albedo, while a chromaticity edge (lips, brows)
  frees them. The supplement gives no α and p; these follow Tran & Liu's
  nonlinear 3DMM, which the loss comes from: α = 15, p = 0.8. As there, the
  weights carry no gradient and the sum is normalised by Σ ω, so the loss is
  a weighted mean. Each unordered neighbour pair is visited once (right and
  down); visiting both directions would double numerator and denominator
  alike. A pair counts where both texels are valid.

  ||d||^p has an infinite slope at d = 0 for p < 1, so pairs with
  ||d||^2 <= 1e-12 contribute 0 and no gradient (a double `where`); above
  that the slope is at most p * 1e-6^(p-1) ≈ 13 and the value exact.

  Args:
    albedo: (..., Hu, Wu, C) predicted UV albedo.
    texture: (..., Hu, Wu, 3) input texture in UV, RGB in [0, 1].
    mask: (..., Hu, Wu) 1 on valid texels (chart and visible); None: all.
  """
  albedo, texture = jnp.asarray(albedo), jnp.asarray(texture)
  check_image(albedo, "albedo", batched=False)
  check_image(texture, "texture", batched=False)
  if texture.shape[-1] != 3:
    raise ValueError(f"texture must have shape (..., Hu, Wu, 3), got {texture.shape}")
  if texture.shape[:-1] != albedo.shape[:-1]:
    raise ValueError(f"texture {texture.shape} and albedo {albedo.shape} must share (..., Hu, Wu)")
  if mask is None:
    mask = jnp.ones(albedo.shape[:-1], albedo.dtype)
  else:
    mask = jnp.asarray(mask, albedo.dtype)
    _check_mask(mask, albedo, "mask")
  chroma = jax.lax.stop_gradient(chromaticity(texture))  # (..., Hu, Wu, 3)
  mask = jax.lax.stop_gradient(mask)
  tiny = 1e-12

  def pairs(axis: int):
    """Weighted penalties of each texel and its next neighbour along `axis` (-3 rows, -2 cols)."""
    size = albedo.shape[axis]
    first = lambda x, ax: jax.lax.slice_in_dim(x, 0, size - 1, axis=ax)
    second = lambda x, ax: jax.lax.slice_in_dim(x, 1, size, axis=ax)
    # chroma is gradient-free, so sqrt's infinite slope at 0 never enters a gradient.
    chroma_distance = jnp.sqrt(jnp.sum((first(chroma, axis) - second(chroma, axis)) ** 2, axis=-1))
    weight = (
      jnp.exp(-alpha * chroma_distance) * first(mask, axis + 1) * second(mask, axis + 1)
    )  # (..., pairs)
    squared = jnp.sum((first(albedo, axis) - second(albedo, axis)) ** 2, axis=-1)
    nonzero = squared > tiny
    penalty = jnp.where(nonzero, jnp.where(nonzero, squared, 1.0) ** (0.5 * p), 0.0)
    return jnp.sum(weight * penalty), jnp.sum(weight)

  down_penalty, down_weight = pairs(-3)
  right_penalty, right_weight = pairs(-2)
  return (down_penalty + right_penalty) / jnp.maximum(down_weight + right_weight, _EPS)


# --------------------------------------------------------------------------- inpainting


def uncertainty_weighted(loss_map: jax.Array, log_uncertainty: jax.Array) -> jax.Array:
  """(l * exp(-c) + c) / 2, the public code's uncertainty weighting of a loss map l.

  c is the inpainter's predicted log-uncertainty (σ^uv in the supplement's
  Table 5). For fixed l > 0 it is minimised at c = log l, where it equals
  (1 + log l) / 2: the network pays for doubt with c and may spend it where
  errors are unavoidable (masked regions, eyes; supplement Fig. 13).
  """
  loss_map, log_uncertainty = jnp.asarray(loss_map), jnp.asarray(log_uncertainty)
  _check_same(loss_map, log_uncertainty, "loss_map", "log_uncertainty")
  return 0.5 * (loss_map * jnp.exp(-log_uncertainty) + log_uncertainty)


def uncertainty_l1(
  prediction: jax.Array,
  target: jax.Array,
  log_uncertainty: jax.Array,
  mask: jax.Array | None = None,
) -> jax.Array:
  """Uncertainty-weighted L1 of the inpainter (public code's `norm_loss(..., conf=c)`).

  l = channel-mean |prediction - target| per texel, then
  `uncertainty_weighted(l, c)`, then the masked mean. Used twice:
  - in UV, completed albedo vs the unwrapped albedo over the valid face texels;
  - in the image, the blended completion vs the input over the face region,
    with c rendered into the image (see `blended_image_loss`).

  Args:
    prediction, target: (..., H, W, C).
    log_uncertainty: (..., H, W) predicted c.
    mask: (..., H, W) 1 where the loss counts; None: everywhere.
  """
  prediction, target = jnp.asarray(prediction), jnp.asarray(target)
  log_uncertainty = jnp.asarray(log_uncertainty)
  check_image(prediction, "prediction", batched=False)
  _check_same(prediction, target, "prediction", "target")
  _check_mask(log_uncertainty, prediction, "log_uncertainty")
  if mask is not None:
    mask = jnp.asarray(mask)
    _check_mask(mask, prediction, "mask")
  l1 = jnp.mean(jnp.abs(prediction - target), axis=-1)  # (..., H, W)
  return _masked_mean(uncertainty_weighted(l1, log_uncertainty), mask)


def inpainting_symmetry_loss(
  albedo: jax.Array,
  visible: jax.Array,
  log_uncertainty: jax.Array | None = None,
  *,
  valid: jax.Array | None = None,
  threshold: float = SYMMETRY_THRESHOLD,
) -> jax.Array:
  """Symmetry L1 of the completed albedo against its (frozen) mirror image.

  As in the public code: the target is stop_gradient(hflip(Â)); element
  differences |Â - hflip(Â)| <= `threshold` count as symmetric and add
  nothing (neither loss nor gradient), so the inpainter is not forced to make
  texels bit-identical to their twins; the loss counts on texels that were
  masked but whose mirror twin was visible, (1 - M) * hflip(M), since only
  there does the mirror hold information the input lacked; and it is
  uncertainty-weighted when c is given.

  Args:
    albedo: (..., Hu, Wu, C) completed UV albedo Â.
    visible: (..., Hu, Wu) M, 1 on texels visible in the input.
    log_uncertainty: (..., Hu, Wu) optional c.
    valid: (..., Hu, Wu) optional UV chart mask, multiplied into the weight.
    threshold: differences at or below this are ignored.
  """
  albedo, visible = jnp.asarray(albedo), jnp.asarray(visible, jnp.asarray(albedo).dtype)
  check_image(albedo, "albedo", batched=False)
  _check_mask(visible, albedo, "visible")
  mirror = jax.lax.stop_gradient(_hflip(albedo, -2))
  difference = jnp.abs(albedo - mirror)  # (..., Hu, Wu, C)
  difference = jnp.where(difference <= threshold, 0.0, difference)
  loss_map = jnp.mean(difference, axis=-1)  # (..., Hu, Wu)
  if log_uncertainty is not None:
    log_uncertainty = jnp.asarray(log_uncertainty)
    _check_mask(log_uncertainty, albedo, "log_uncertainty")
    loss_map = uncertainty_weighted(loss_map, log_uncertainty)
  weight = (1.0 - visible) * _hflip(visible, -1)
  if valid is not None:
    valid = jnp.asarray(valid, albedo.dtype)
    _check_mask(valid, albedo, "valid")
    weight = weight * valid
  return _masked_mean(loss_map, jax.lax.stop_gradient(weight))


def blended_image_loss(
  blended: jax.Array,
  image: jax.Array,
  mask: jax.Array,
  log_uncertainty: jax.Array | None = None,
) -> jax.Array:
  """Image-space L1 of the blended completion (public code's `recon_loss_image`).

  blended = image * (1 - B) + rendered * B, with B the face region covered by
  the re-rendered face, is compared with the unmasked image over `mask` (the
  face region, background excluded); with c rendered into the image the L1
  is uncertainty-weighted as in UV.

  Args:
    blended, image: (..., H, W, C).
    mask: (..., H, W) 1 on face pixels.
    log_uncertainty: (..., H, W) optional c in image space.
  """
  if log_uncertainty is None:
    return masked_l1(blended, image, mask)
  return uncertainty_l1(blended, image, log_uncertainty, mask)


# --------------------------------------------------------------------------- segmentation


def focal_loss(
  logits: jax.Array,
  labels: jax.Array,
  *,
  gamma: float = 2.0,
  class_weights: jax.Array | None = None,
  mask: jax.Array | None = None,
) -> jax.Array:
  """Focal loss -w_y (1 - p_y)^γ log p_y (Lin et al.) of the face segmenter (sec. 4.3).

  The segmenter has 3 classes (face, hair/occlusion, background; the order
  is the caller's). γ = 2 is Lin et al.'s default (the supplement gives
  none); at γ = 0 and no weights it is the mean cross-entropy. `class_weights`
  play Lin et al.'s α_t: they scale each pixel's term but the mean stays over
  pixels (not over Σ w as torch's weighted cross-entropy does).

  Args:
    logits: (..., C) unnormalised class scores.
    labels: (...) int class ids in [0, C).
    gamma: focusing parameter >= 0.
    class_weights: (C,) optional per-class weights.
    mask: (...) optional pixel weights (e.g. 0 on unlabelled pixels).
  """
  logits, labels = jnp.asarray(logits), jnp.asarray(labels)
  if logits.ndim < 1 or logits.shape[:-1] != labels.shape:
    raise ValueError(
      f"labels must have shape logits.shape[:-1]; got logits {logits.shape}, labels {labels.shape}"
    )
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
  if gamma < 0:
    raise ValueError(f"gamma must be >= 0, got {gamma}")
  num_classes = logits.shape[-1]
  log_probs = jax.nn.log_softmax(logits, axis=-1)  # (..., C)
  log_p = jnp.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]  # (...)
  loss = -log_p
  if gamma > 0:
    # -expm1(log p) is 1 - p without cancellation; the floor keeps the slope
    # of (1 - p)^γ finite for γ < 1 when p rounds to 1.
    loss = loss * jnp.maximum(-jnp.expm1(log_p), 1e-30) ** gamma
  if class_weights is not None:
    class_weights = jnp.asarray(class_weights)
    if class_weights.shape != (num_classes,):
      raise ValueError(f"class_weights must have shape ({num_classes},), got {class_weights.shape}")
    loss = loss * class_weights[labels]
  if mask is not None:
    mask = jnp.asarray(mask)
    if mask.shape != labels.shape:
      raise ValueError(f"mask must have shape {labels.shape}, got {mask.shape}")
  return _masked_mean(loss, mask)
