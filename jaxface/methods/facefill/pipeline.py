"""3DFaceFill's completion pipeline (main paper Fig. 3), shared by inference and training.

`complete(state, images, masks, config=...)`: segment (or take the given
labels) -> factorise the masked image with the 3DMM encoder -> unwrap its
visible pixels into UV through that geometry, shading divided out -> complete
the UV map with the Sym-UNet -> re-render -> blend into the hole -> repeat
with the completed image (iterative refinement). Training the inpainter runs
exactly one such pass (`steps.inpaint_update`), so both use `factorise`,
`unwrap`, `synthesise` and `blend` from here.

Conventions: images (B, H, W, 3) in [0, 1]; `segmentation` (B, H, W) int
labels in `model.SEGMENT_CLASSES` order; hole masks (B, H, W) bool, True =
hidden. `config` is the run's FrozenConfigDict (static under jit).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxface.geometry.transforms import euler_to_matrix, matrix_to_quaternion, quaternion_to_matrix
from jaxface.methods.facefill import model, networks, render
from jaxface.methods.facefill.data import FACE, OCCLUSION
from jaxface.methods.facefill.networks import State
from jaxface.render.interpolate import interpolate
from jaxface.render.texture import sample_texture


def hide(images: jax.Array, hidden: jax.Array) -> jax.Array:
  """(B, H, W, 3) images with the `hidden` (B, H, W) pixels zeroed: what the encoder sees."""
  return images * (1.0 - hidden.astype(images.dtype))[..., None]


def factorise(state: State, images: jax.Array, hidden: jax.Array, config) -> model.Factors:
  """The frozen 3DMM encoder's factors of the images with `hidden` pixels removed."""
  factors = networks.encoder(config, state.arrays).apply(
    state.encoder, hide(images, hidden), update_stats=False
  )
  return jax.tree_util.tree_map(jax.lax.stop_gradient, factors)


def unwrap(state: State, factors, images: jax.Array, visible: jax.Array, config):
  """Visible pixels into UV: albedo (texture for no_il) (B, Hu, Wu, 3), visibility (B, Hu, Wu)."""
  return render.unwrap_face(
    state.arrays, factors, images, visible, remove_shading=config.facefill.remove_shading
  )


def synthesise(state: State, factors, uv_map: jax.Array, log_uncertainty: jax.Array, config):
  """Re-renders a completed UV map through the factors' geometry (and light).

  Takes the UV map (B, Hu, Wu, 3) and its log-uncertainty (B, Hu, Wu[, 1]).
  Returns the image (B, H, W, 3) (shaded albedo, or the texture itself for
  no_il), its coverage (B, H, W), the log-uncertainty looked up at each
  face pixel (B, H, W) (0 off the face) and the rasterizer's overflow (B,).
  """
  if log_uncertainty.ndim == 3:
    log_uncertainty = log_uncertainty[..., None]
  out = render.render_face(state.arrays, factors, uv_map, config.data.image_size)
  image = out.image if config.facefill.remove_shading else out.albedo
  pixel_uv = interpolate(state.arrays.uv, out.fragments, state.arrays.triangle_uv)  # (B, H, W, 2)
  pixel_log_uncertainty = jax.vmap(sample_texture)(log_uncertainty, pixel_uv)[..., 0] * out.mask
  return image, out.mask, pixel_log_uncertainty, out.fragments.overflow


def blend(images, holes, rendered, coverage, visible) -> jax.Array:
  """The completion: the input outside the holes, the re-rendered face inside.

  Hole pixels the re-rendered face does not cover (the estimated face is a
  little small, or the hole reaches off the face) take the mean colour of
  the image's visible face pixels.
  """
  weight = visible.astype(images.dtype)[..., None]  # (B, H, W, 1)
  mean = jnp.sum(images * weight, axis=(1, 2), keepdims=True) / jnp.maximum(
    jnp.sum(weight, axis=(1, 2), keepdims=True), 1.0
  )  # (B, 1, 1, 3)
  fill = jnp.where(coverage[..., None] > 0.5, rendered, mean)
  return jnp.where(holes[..., None], fill, images)


def segment(state: State, images: jax.Array, config) -> jax.Array:
  """The segmenter's labels (B, H, W) int32 of (B, H, W, 3) images."""
  logits = networks.segmenter(config).apply(state.segmenter, images, update_stats=False)
  return jnp.argmax(logits, axis=-1).astype(jnp.int32)


class Completion(NamedTuple):
  """`complete`'s result (the last refinement pass).

  Attributes:
    image: (B, H, W, 3) the completed image: the input outside the holes.
    rendered: (B, H, W, 3) the re-rendered face before blending.
    coverage: (B, H, W) 1 where the re-rendered face covers the image.
    uv_input: (B, Hu, Wu, 3) the unwrapped visible albedo (texture for no_il).
    uv_visible: (B, Hu, Wu) its visibility.
    uv_completed: (B, Hu, Wu, 3) the Sym-UNet's completion.
    log_uncertainty: (B, Hu, Wu) its log-uncertainty.
    factors: the 3DMM factors of the last pass.
    holes: (B, H, W) bool, the completed pixels.
    segmentation: (B, H, W) int32 labels used (given or the segmenter's).
  """

  image: jax.Array
  rendered: jax.Array
  coverage: jax.Array
  uv_input: jax.Array
  uv_visible: jax.Array
  uv_completed: jax.Array
  log_uncertainty: jax.Array
  factors: model.Factors
  holes: jax.Array
  segmentation: jax.Array


def complete(
  state: State,
  images: jax.Array,
  masks: jax.Array | None = None,
  *,
  config,
  segmentation: jax.Array | None = None,
  iterations: int | None = None,
) -> Completion:
  """Completes the masked part of face images (main paper Fig. 3, iterative refinement).

  Each pass: the encoder factorises the image with the holes and occluders
  removed (the first pass) or the previous completion with occluders
  removed (later passes); the visible face pixels are unwrapped into UV
  through that geometry, shading divided out; the Sym-UNet completes the
  UV map; the face is re-rendered under the estimated light; the holes of
  the input take the re-rendered pixels.

  Args:
    state: a trained State.
    images: (B, H, W, 3) in [0, 1]; H, W multiples of 32.
    masks: (B, H, W) 1 / True on the pixels to complete; None: complete
      the occluders the segmentation finds (de-occlusion).
    config: the run's config (static).
    segmentation: (B, H, W) labels in `model.SEGMENT_CLASSES` order; None:
      the segmenter's prediction.
    iterations: refinement passes (static); None: `config.facefill.iterations`.
  """
  images = jnp.asarray(images, jnp.float32)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"images must have shape (B, H, W, 3), got {images.shape}")
  if images.shape[1] % 32 or images.shape[2] % 32:
    raise ValueError(f"images' H and W must be multiples of 32, got {images.shape}")
  iterations = config.facefill.iterations if iterations is None else int(iterations)
  if iterations < 1:
    raise ValueError(f"iterations must be >= 1, got {iterations}")
  if masks is not None and jnp.shape(masks) != images.shape[:3]:
    raise ValueError(f"masks must have shape {images.shape[:3]}, got {jnp.shape(masks)}")
  if segmentation is None:
    segmentation = segment(state, images, config)
  segmentation = jnp.asarray(segmentation, jnp.int32)
  if segmentation.shape != images.shape[:3]:
    raise ValueError(f"segmentation must have shape {images.shape[:3]}, got {segmentation.shape}")
  face, occlusion = segmentation == FACE, segmentation == OCCLUSION
  holes = occlusion if masks is None else jnp.asarray(masks) > 0.5  # (B, H, W)
  visible = face & ~holes
  current, hidden = images, holes | occlusion
  inpainter = networks.inpainter(config)
  for _ in range(iterations):
    factors = factorise(state, current, hidden, config)
    uv_input, uv_visible = unwrap(state, factors, images, visible, config)
    uv_completed, log_uncertainty = inpainter.apply(
      state.inpainter, uv_input, uv_visible, update_stats=False
    )
    rendered, coverage, _, _ = synthesise(state, factors, uv_completed, log_uncertainty, config)
    current = blend(images, holes, rendered, coverage, visible)
    hidden = occlusion & ~holes  # later passes see the filled holes
  return Completion(
    image=current, rendered=rendered, coverage=coverage, uv_input=uv_input,
    uv_visible=uv_visible, uv_completed=uv_completed, log_uncertainty=log_uncertainty[..., 0],
    factors=factors, holes=holes, segmentation=segmentation,
  )  # fmt: skip


#: `complete` compiled; `config` and `iterations` are static (a FrozenConfigDict is hashable).
complete_jit = jax.jit(complete, static_argnames=("config", "iterations"))


def novel_views(
  state: State, completion: Completion, *, config, yaws_degrees=(-30.0, 0.0, 30.0), background=1.0
) -> jax.Array:
  """The completed face re-rendered from other viewpoints (novel-view synthesis).

  The last pass's shape, scale, translation and light are kept; the head is
  turned about the camera's vertical (y) axis by each yaw (right-handed,
  applied after its estimated rotation), and textured with the
  completed UV map (shaded albedo; the texture itself for no_il). Only the
  face is rendered, over `background`.

  Returns (B, V, H, W, 3) for V yaws.
  """
  yaws = jnp.deg2rad(jnp.asarray(yaws_degrees, jnp.float32))  # (V,)
  if yaws.ndim != 1 or yaws.shape[0] == 0:
    raise ValueError(f"yaws_degrees must be a non-empty 1-D list, got shape {yaws.shape}")
  factors = completion.factors
  rotation = quaternion_to_matrix(factors.rotation)  # (B, 3, 3)
  turns = euler_to_matrix(jnp.stack([jnp.zeros_like(yaws), yaws, jnp.zeros_like(yaws)], -1))

  def view(turn):  # (3, 3) -> (B, H, W, 3)
    turned = factors._replace(rotation=matrix_to_quaternion(turn @ rotation))
    out = render.render_face(
      state.arrays, turned, completion.uv_completed, config.data.image_size,
      background=background,
    )  # fmt: skip
    if config.facefill.remove_shading:
      return out.image
    return jnp.where(out.mask[..., None] > 0, out.albedo, jnp.asarray(background, jnp.float32))

  return jnp.moveaxis(jax.lax.map(view, turns), 0, 1)  # (B, V, H, W, 3)


#: `novel_views` compiled with the default yaws; `config` and `yaws_degrees` are static.
novel_views_jit = jax.jit(novel_views, static_argnames=("config", "yaws_degrees"))


def reconstruct(state: State, images, segmentation, config) -> dict:
  """The 3DMM module's reconstruction of images with their occluders removed (B, H, W, ...):
  {"image", "mask", "landmarks", "albedo"}."""
  factors = factorise(state, images, segmentation == OCCLUSION, config)
  albedo = networks.decoder(config).apply(
    state.decoder, factors.albedo_features, update_stats=False
  )
  out = render.render_face(state.arrays, factors, albedo, config.data.image_size)
  return {"image": out.image, "mask": out.mask, "landmarks": out.landmarks, "albedo": albedo}


reconstruct_jit = jax.jit(reconstruct, static_argnames=("config",))
segment_jit = jax.jit(segment, static_argnames=("config",))


def encoder_landmarks(state: State, images: jax.Array, hidden: jax.Array, config) -> jax.Array:
  """The encoder's projected landmark vertices (B, L, 2) in pixels of (B, S, S, 3) images whose
  `hidden` (B, S, S) pixels it does not see (as the completion's first pass)."""
  factors = factorise(state, images, hidden, config)
  return render.project_landmarks(state.arrays, factors, images.shape[1])


encoder_landmarks_jit = jax.jit(encoder_landmarks, static_argnames=("config",))
