"""Training and running 3DFaceFill (supplement sec. 4.3): the trainer's method protocol.

Four stages, the trainer's phases (`phases(config)`; the trainer jits
`train_step(state, batch, phase=stage)` once per stage and runs them in order
on one state, see `configs/facefill.py`):

- "3dmm": encoder E + albedo decoder D_A on supervised + reconstruction +
  regularisation losses (supplement eq. 1);
- "3dmm_unsup": the same modules at 1/10 of the learning rate on the
  reconstruction, landmark and regularisation losses only, with random
  rectangular occlusions hiding part of the encoder's input;
- "inpaint": Sym-UNet G and PyramidGAN D, one update each per step (1:1),
  the 3DMM module frozen;
- "segment": the face segmenter S (focal loss).

`complete(state, images, masks)` is the inference pipeline (main paper
Fig. 3): segment (or take the given labels) -> factorise the masked image ->
unwrap its visible albedo into UV -> complete it with G -> re-render ->
blend into the hole -> repeat with the completed image (iterative
refinement). Training the inpainter runs exactly one such pass, so training
and inference share `_factorise`, `_unwrap`, `_synthesise` and `_blend`.

Conventions: images (B, H, W, 3) in [0, 1]; `segmentation` (B, H, W) int
labels in `model.SEGMENT_CLASSES` order; hole masks (B, H, W) bool, True =
hidden. Every module keeps its spectral-norm state in `batch_stats`; a
training forward pass refines it (`update_stats=True`), everything else
reads it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging
from flax import struct, traverse_util

from jaxface.geometry.transforms import euler_to_matrix, matrix_to_quaternion, quaternion_to_matrix
from jaxface.methods.facefill import baselines, losses, masks, model, render
from jaxface.methods.facefill.data import (
  BACKGROUND,
  FACE,
  OCCLUSION,
  FaceFillDataset,
  create_dataset,
)
from jaxface.metrics import image as image_metrics
from jaxface.nets.layers import host_init_variables
from jaxface.render.interpolate import interpolate
from jaxface.render.texture import sample_texture

__all__ = [
  "METRIC_NAMES",
  "STAGES",
  "Completion",
  "Settings",
  "State",
  "complete",
  "create_dataset",
  "create_state",
  "evaluate",
  "init_state",
  "inpaint_update",
  "load_pretrained",
  "novel_views",
  "phases",
  "settings_from_config",
  "summaries",
  "train_step",
]

STAGES = ("3dmm", "3dmm_unsup", "inpaint", "segment")
#: What each stage trains, and the modules each `config.facefill.init_*` field loads.
STAGE_MODULES = {"3dmm": "3dmm", "3dmm_unsup": "3dmm", "inpaint": "inpaint", "segment": "segment"}
INIT_FIELDS = {
  "init_3dmm": ("3dmm", ("encoder", "decoder")),
  "init_inpaint": ("inpaint", ("inpainter", "discriminator")),
  "init_segment": ("segment", ("segmenter",)),
}
#: The metrics of each stage's step (logged as "<stage>/<name>").
METRIC_NAMES = {
  "3dmm": (
    "loss", "rec", "landmark", "landmark_px", "shape", "pose", "texture", "sym3d", "const",
    "overflow",
  ),
  "3dmm_unsup": ("loss", "rec", "landmark", "landmark_px", "sym3d", "const", "overflow"),
  "inpaint": (
    "g_loss", "uv", "symmetry", "image", "gan", "d_loss", "d_hinge", "d_gradient_penalty",
    "overflow", "usable",
  ),
  "segment": ("loss", "accuracy"),
}  # fmt: skip
_OPTIMIZER_FIELDS = {
  "3dmm": "opt_3dmm",
  "3dmm_unsup": "opt_3dmm_unsup",
  "inpainter": "opt_inpainter",
  "discriminator": "opt_discriminator",
  "segmenter": "opt_segmenter",
}
#: Samples whose unwrapped face shows fewer texels than this fraction of the UV map train nothing.
MIN_VISIBLE_FRACTION = 0.01
#: Summary colours of the segmentation classes (face, occlusion, background).
_CLASS_COLOURS = np.array([[0.9, 0.7, 0.5], [0.2, 0.4, 0.9], [0.1, 0.1, 0.1]], np.float32)


# --------------------------------------------------------------------------- settings and state


@dataclasses.dataclass(frozen=True)
class Settings:
  """Static hyper-parameters (hashable; part of the jitted step's structure).

  `schedule` is the run's ((stage, steps), ...) in order; `trained` the
  module groups ("3dmm", "inpaint", "segment") this run trains or loads,
  which decides what `evaluate` reports. The rest mirrors
  `config.facefill` (see `configs/facefill.py` for each field).
  """

  schedule: tuple[tuple[str, int], ...]
  trained: tuple[str, ...]
  image_size: int
  uv_size: tuple[int, int]
  num_identity: int
  num_expression: int
  feature_dim: int
  decoder_upsamplings: int
  encoder_width: float
  decoder_width: float
  inpainter_width: float
  discriminator_width: float
  segmenter_width: float
  symmetry: str
  remove_shading: bool
  iterations: int
  lambda_sup: float
  lambda_rec: float
  lambda_reg: float
  lambda_shape: float
  lambda_pose: float
  lambda_scale: float
  lambda_translation: float
  lambda_rotation: float
  lambda_texture: float
  lambda_landmark: float
  lambda_sym3d: float
  lambda_const: float
  texture_loss: str
  lambda_uv: float
  lambda_symmetry: float
  lambda_image: float
  lambda_gan: float
  gradient_penalty: float
  uncertainty: bool
  focal_gamma: float
  learning_rate: float
  discriminator_learning_rate: float
  unsup_lr_factor: float
  beta1: float
  beta2: float
  lr_decay: float
  steps_per_epoch: int
  eval_batch_size: int
  num_summaries: int

  @property
  def stages(self) -> tuple[str, ...]:
    return tuple(name for name, _ in self.schedule)

  def encoder(self) -> model.Encoder:
    return model.Encoder(
      num_identity=self.num_identity, num_expression=self.num_expression, translation_dims=2,
      feature_dim=self.feature_dim, width=self.encoder_width,
    )  # fmt: skip

  def decoder(self) -> model.AlbedoDecoder:
    return model.AlbedoDecoder(
      uv_size=self.uv_size, upsamplings=self.decoder_upsamplings, width=self.decoder_width
    )

  def inpainter(self) -> model.SymUNet:
    return model.SymUNet(symmetry=self.symmetry, width=self.inpainter_width)

  def discriminator(self) -> model.PyramidDiscriminator:
    return model.PyramidDiscriminator(width=self.discriminator_width)

  def segmenter(self) -> model.Segmenter:
    return model.Segmenter(width=self.segmenter_width)

  def optimizer(self, name: str) -> optax.GradientTransformation:
    """Adam with a 0.98-per-epoch step decay (counted per optimiser, i.e. per stage)."""
    if name == "discriminator":
      rate = self.discriminator_learning_rate
    elif name == "3dmm_unsup":
      rate = self.learning_rate * self.unsup_lr_factor
    else:
      rate = self.learning_rate
    schedule = optax.exponential_decay(
      rate, transition_steps=self.steps_per_epoch, decay_rate=self.lr_decay, staircase=True
    )
    return optax.adam(schedule, b1=self.beta1, b2=self.beta2)


@struct.dataclass
class State:
  """Every module of 3DFaceFill, one optimiser per stage, and the face model's arrays.

  Modules are {"params", "batch_stats"} variable dicts; `arrays` are the
  truncated face model's constants (`render.face_model_arrays`),
  checkpointed with the state, never trained.
  """

  step: jax.Array
  rng: jax.Array
  encoder: dict
  decoder: dict
  inpainter: dict
  discriminator: dict
  segmenter: dict
  opt_3dmm: optax.OptState
  opt_3dmm_unsup: optax.OptState
  opt_inpainter: optax.OptState
  opt_discriminator: optax.OptState
  opt_segmenter: optax.OptState
  arrays: render.FaceModelArrays
  settings: Settings = struct.field(pytree_node=False)


def _schedule(config: ml_collections.ConfigDict) -> tuple[tuple[str, int], ...]:
  ff = config.facefill
  stage = str(ff.stage)
  for name in STAGES:
    if int(ff[f"steps_{name}"]) < 0:
      raise ValueError(f"config.facefill.steps_{name}={ff[f'steps_{name}']} must be >= 0")
  if stage == "all":
    schedule = tuple(
      (name, int(ff[f"steps_{name}"])) for name in STAGES if int(ff[f"steps_{name}"]) > 0
    )
    if not schedule:
      raise ValueError("config.facefill.steps_<stage> are all 0: nothing to train")
  elif stage in STAGES:
    schedule = ((stage, int(ff[f"steps_{stage}"])),)
  else:
    raise ValueError(f"config.facefill.stage must be 'all' or one of {STAGES}, got {stage!r}")
  total = sum(steps for _, steps in schedule)
  if int(config.num_steps) != total:
    raise ValueError(
      f"config.num_steps={config.num_steps} but config.facefill.steps_<stage> give {total} for "
      f"stage={stage!r}: set stage lengths with --config.facefill.steps_<stage>=N and the "
      "stage with the config argument (file.py:...,stage=NAME)"
    )
  return schedule


def settings_from_config(config: ml_collections.ConfigDict, dataset: FaceFillDataset) -> Settings:
  """Validated settings; ValueErrors name the offending config field."""
  ff = config.facefill
  schedule = _schedule(config)
  trained = {STAGE_MODULES[name] for name, _ in schedule}
  trained |= {group for field, (group, _) in INIT_FIELDS.items() if str(ff[field])}
  if ff.symmetry not in model.SYMMETRY_MODES:
    raise ValueError(
      f"config.facefill.symmetry must be one of {model.SYMMETRY_MODES}, got {ff.symmetry!r}"
    )
  if int(ff.iterations) < 1:
    raise ValueError(f"config.facefill.iterations must be >= 1, got {ff.iterations}")
  if ff.texture_loss not in ("l1", "l2"):
    raise ValueError(f"config.facefill.texture_loss must be 'l1' or 'l2', got {ff.texture_loss!r}")
  uv_size = tuple(int(s) for s in ff.uv_size)
  upsamplings = int(ff.decoder_upsamplings)
  if len(uv_size) != 2 or any(s % 32 or s % 2**upsamplings for s in uv_size):
    raise ValueError(
      f"config.facefill.uv_size={uv_size} must be two multiples of 32 (the Sym-UNet) and of "
      f"2**decoder_upsamplings = {2**upsamplings}"
    )
  if int(config.batch_size) < 1:
    raise ValueError(f"config.batch_size must be positive, got {config.batch_size}")
  for field in ("batch_size", "num_images", "num_summaries"):
    if int(ff.eval[field]) < 1:
      raise ValueError(f"config.facefill.eval.{field} must be positive, got {ff.eval[field]}")
  buckets = tuple(tuple(float(v) for v in b) for b in ff.eval.buckets)
  if not buckets or any(a[1] != b[0] for a, b in itertools.pairwise(buckets)):
    raise ValueError(
      f"config.facefill.eval.buckets={buckets} must be contiguous [low, high) ranges"
    )
  unknown = [b for b in ff.eval.baselines if b not in baselines.METHODS]
  if unknown:
    raise ValueError(f"config.facefill.eval.baselines names {unknown}; known: {baselines.METHODS}")
  widths = ff.widths
  num_coefficients = dataset.num_identity + dataset.num_expression
  lambda_shape = float(ff.lambda_shape)
  return Settings(
    schedule=schedule,
    trained=tuple(g for g in ("3dmm", "inpaint", "segment") if g in trained),
    image_size=dataset.image_size,
    uv_size=uv_size,
    num_identity=dataset.num_identity,
    num_expression=dataset.num_expression,
    feature_dim=int(ff.feature_dim),
    decoder_upsamplings=upsamplings,
    encoder_width=float(widths.encoder),
    decoder_width=float(widths.decoder),
    inpainter_width=float(widths.inpainter),
    discriminator_width=float(widths.discriminator),
    segmenter_width=float(widths.segmenter),
    symmetry=str(ff.symmetry),
    remove_shading=bool(ff.remove_shading),
    iterations=int(ff.iterations),
    lambda_sup=float(ff.lambda_sup),
    lambda_rec=float(ff.lambda_rec),
    lambda_reg=float(ff.lambda_reg),
    lambda_shape=1.0 / num_coefficients if lambda_shape < 0 else lambda_shape,
    lambda_pose=float(ff.lambda_pose),
    lambda_scale=float(ff.lambda_scale),
    lambda_translation=float(ff.lambda_translation),
    lambda_rotation=float(ff.lambda_rotation),
    lambda_texture=float(ff.lambda_texture),
    lambda_landmark=float(ff.lambda_landmark),
    lambda_sym3d=float(ff.lambda_sym3d),
    lambda_const=float(ff.lambda_const),
    texture_loss=str(ff.texture_loss),
    lambda_uv=float(ff.lambda_uv),
    lambda_symmetry=float(ff.lambda_symmetry),
    lambda_image=float(ff.lambda_image),
    lambda_gan=float(ff.lambda_gan),
    gradient_penalty=float(ff.gradient_penalty),
    uncertainty=bool(ff.uncertainty),
    focal_gamma=float(ff.focal_gamma),
    learning_rate=float(ff.learning_rate),
    discriminator_learning_rate=float(ff.discriminator_learning_rate),
    unsup_lr_factor=float(ff.unsup_lr_factor),
    beta1=float(ff.beta1),
    beta2=float(ff.beta2),
    lr_decay=float(ff.lr_decay),
    steps_per_epoch=max(1, int(config.data.num_train) // int(config.batch_size)),
    eval_batch_size=int(ff.eval.batch_size),
    num_summaries=int(ff.eval.num_summaries),
  )


def _check_mirrored_uv(face_model) -> None:
  """The symmetry losses and the Sym-UNet read hflip of a UV map as its bilateral mirror."""
  uv = np.asarray(face_model.vertex_uv)
  mirrored = np.stack([1.0 - uv[:, 0], uv[:, 1]], axis=-1)
  error = float(np.abs(uv[np.asarray(face_model.mirror)] - mirrored).max())
  if error > 0.01:
    logging.warning(
      "model %r: its UV layout is not mirrored about u = 0.5 (error %.3f); the albedo "
      "symmetry losses and the Sym-UNet's flipped branch assume it is",
      face_model.name, error,
    )  # fmt: skip


def init_state(
  config: ml_collections.ConfigDict, rng: jax.Array, dataset: FaceFillDataset
) -> State:
  """A freshly initialised state for `dataset`'s face model (no pretrained weights)."""
  settings = settings_from_config(config, dataset)
  face_model = dataset.model.truncated(settings.num_identity, settings.num_expression)
  _check_mirrored_uv(face_model)
  arrays = render.face_model_arrays(face_model, settings.uv_size)
  seeds = [int(s) for s in np.asarray(jax.random.randint(rng, (6,), 0, 2**31 - 1))]
  size = settings.image_size
  f32 = jnp.float32
  image = jax.ShapeDtypeStruct((1, size, size, 3), f32)
  uv = jax.ShapeDtypeStruct((1, *settings.uv_size, 3), f32)
  uv_mask = jax.ShapeDtypeStruct((1, *settings.uv_size), f32)
  features = jax.ShapeDtypeStruct((1, settings.feature_dim), f32)
  # numpy initialisation from eval_shape: compiling `init` of these networks costs minutes on CPU.
  init = functools.partial(host_init_variables, update_stats=False)
  encoder = init(settings.encoder(), image, seed=seeds[0])
  decoder = init(settings.decoder(), features, seed=seeds[1])
  inpainter = init(settings.inpainter(), uv, uv_mask, seed=seeds[2])
  discriminator = init(settings.discriminator(), image, seed=seeds[3])
  segmenter = init(settings.segmenter(), image, seed=seeds[4])
  three_dmm = {"encoder": encoder["params"], "decoder": decoder["params"]}
  return State(
    step=jnp.zeros((), jnp.int32),
    rng=jax.random.PRNGKey(seeds[5]),
    encoder=encoder,
    decoder=decoder,
    inpainter=inpainter,
    discriminator=discriminator,
    segmenter=segmenter,
    opt_3dmm=settings.optimizer("3dmm").init(three_dmm),
    opt_3dmm_unsup=settings.optimizer("3dmm_unsup").init(three_dmm),
    opt_inpainter=settings.optimizer("inpainter").init(inpainter["params"]),
    opt_discriminator=settings.optimizer("discriminator").init(discriminator["params"]),
    opt_segmenter=settings.optimizer("segmenter").init(segmenter["params"]),
    arrays=arrays,
    settings=settings,
  )


def _checkpoint_folder(path: str, field: str) -> pathlib.Path:
  folder = pathlib.Path(path).expanduser()
  if (folder / "checkpoints").is_dir():
    folder = folder / "checkpoints"
  if not folder.is_dir():
    raise FileNotFoundError(
      f"config.facefill.{field}={path!r} is not a workdir or checkpoint folder"
    )
  return folder


def _restore_modules(path: str, field: str, names: tuple[str, ...]) -> dict:
  """{module name: variables} from the latest checkpoint under `path` (any facefill run)."""
  folder = _checkpoint_folder(path, field)
  options = ocp.CheckpointManagerOptions(read_only=True)
  with contextlib.closing(ocp.CheckpointManager(folder.absolute(), options=options)) as manager:
    step = manager.latest_step()
    if step is None:
      raise ValueError(f"config.facefill.{field}={path!r} holds no checkpoint")
    # No target: the source run may differ elsewhere (another stage, ablation or width).
    restored = manager.restore(step, args=ocp.args.StandardRestore())
  missing = [name for name in names if name not in restored]
  if missing:
    raise ValueError(f"config.facefill.{field}={path!r}: the checkpoint has no {missing}")
  logging.info("config.facefill.%s: loaded %s from %s step %d", field, names, folder, step)
  return {name: restored[name] for name in names}


def _shapes(tree) -> dict:
  return {k: tuple(np.shape(v)) for k, v in traverse_util.flatten_dict(tree, sep="/").items()}


def load_pretrained(state: State, config: ml_collections.ConfigDict) -> State:
  """Replaces modules by those of the runs named in `config.facefill.init_*`."""
  changes = {}
  for field, (_, names) in INIT_FIELDS.items():
    path = str(config.facefill[field])
    if not path:
      continue
    for name, variables in _restore_modules(path, field, names).items():
      mine = getattr(state, name)
      if _shapes(variables) != _shapes(mine):
        theirs, ours = _shapes(variables), _shapes(mine)
        differing = sorted(set(theirs.items()) ^ set(ours.items()))[:4]
        raise ValueError(
          f"config.facefill.{field}={path!r}: its {name} does not match this config's "
          f"(first differences, name and shape: {differing}); check widths, sizes and ablation"
        )
      changes[name] = jax.tree_util.tree_map(
        lambda new, old: jnp.asarray(new, old.dtype), variables, mine
      )
  return state.replace(**changes)


def create_state(config: ml_collections.ConfigDict, rng: jax.Array, example_batch) -> State:
  """Initialises every module, then loads the `config.facefill.init_*` runs' weights."""
  del example_batch  # shapes come from the dataset
  state = init_state(config, rng, create_dataset(config, "train"))
  return load_pretrained(state, config)


# --------------------------------------------------------------------------- shared pieces


def _apply(module, variables: dict, *args, update_stats: bool):
  """(output, variables): with `update_stats` the spectral-norm state is refined and returned."""
  if update_stats:
    out, mutated = module.apply(variables, *args, update_stats=True, mutable=["batch_stats"])
    return out, {"params": variables["params"], "batch_stats": mutated["batch_stats"]}
  return module.apply(variables, *args, update_stats=False), variables


def _hide(images: jax.Array, hidden: jax.Array) -> jax.Array:
  """(B, H, W, 3) images with the `hidden` (B, H, W) pixels zeroed: what the encoder sees."""
  return images * (1.0 - hidden.astype(images.dtype))[..., None]


def _random_flip(rng: jax.Array, *arrays: jax.Array) -> list[jax.Array]:
  """Flips each sample of every (B, H, W, ...) array left-right with probability 1/2."""
  batch = arrays[0].shape[0]
  flip = jax.random.bernoulli(rng, 0.5, (batch,))
  return [
    jnp.where(flip.reshape((batch,) + (1,) * (a.ndim - 1)), jnp.flip(a, axis=2), a) for a in arrays
  ]


def _factorise(state: State, images: jax.Array, hidden: jax.Array) -> model.Factors:
  """The frozen 3DMM encoder's factors of the images with `hidden` pixels removed."""
  factors = state.settings.encoder().apply(state.encoder, _hide(images, hidden), update_stats=False)
  return jax.tree_util.tree_map(jax.lax.stop_gradient, factors)


def _unwrap(state: State, factors, images: jax.Array, visible: jax.Array):
  """Visible pixels into UV: albedo (texture for no_il) (B, Hu, Wu, 3), visibility (B, Hu, Wu)."""
  return render.unwrap_face(
    state.arrays, factors, images, visible, remove_shading=state.settings.remove_shading
  )


def _synthesise(state: State, factors, uv_map: jax.Array, log_uncertainty: jax.Array):
  """Re-renders a completed UV map through the factors' geometry (and light).

  Takes the UV map (B, Hu, Wu, 3) and its log-uncertainty (B, Hu, Wu[, 1]).
  Returns the image (B, H, W, 3) (shaded albedo, or the texture itself for
  no_il), its coverage (B, H, W), the log-uncertainty looked up at each
  face pixel (B, H, W) (0 off the face) and the rasterizer's overflow (B,).
  """
  if log_uncertainty.ndim == 3:
    log_uncertainty = log_uncertainty[..., None]
  size = state.settings.image_size
  out = render.render_face(state.arrays, factors, uv_map, size)
  image = out.image if state.settings.remove_shading else out.albedo
  pixel_uv = interpolate(state.arrays.uv, out.fragments, state.arrays.triangle_uv)  # (B, H, W, 2)
  pixel_log_uncertainty = jax.vmap(sample_texture)(log_uncertainty, pixel_uv)[..., 0] * out.mask
  return image, out.mask, pixel_log_uncertainty, out.fragments.overflow


def _blend(images, holes, rendered, coverage, visible) -> jax.Array:
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


# --------------------------------------------------------------------------- 3DMM stages


def _three_dmm_objective(params, state: State, batch, rng, supervised: bool):
  """Supplement eq. 1: lambda_sup L_sup + lambda_rec L_rec + lambda_reg L_reg.

  The unsupervised stage keeps only the landmark part of L_sup and hides a
  random rectangle of the head from the encoder (the loss still sees it).
  """
  s, arrays = state.settings, state.arrays
  images, labels = batch["image"], batch["segmentation"]  # (B, H, W, 3), (B, H, W)
  face = labels == FACE
  hidden = labels == OCCLUSION  # occluders are removed before encoding, as at inference
  if not supervised:
    hidden = hidden | masks.random_rectangle_mask(rng, labels != BACKGROUND, split="train")
  factors, encoder = _apply(
    s.encoder(), {"params": params["encoder"], "batch_stats": state.encoder["batch_stats"]},
    _hide(images, hidden), update_stats=True,
  )  # fmt: skip
  albedo, decoder = _apply(
    s.decoder(), {"params": params["decoder"], "batch_stats": state.decoder["batch_stats"]},
    factors.albedo_features, update_stats=True,
  )  # (B, Hu, Wu, 3)  # fmt: skip
  out = render.render_face(arrays, factors, albedo, s.image_size)
  rec = losses.masked_l1(out.image, images, out.mask * face)  # L_rec on the visible face
  half = 0.5 * s.image_size  # landmarks in NDC units, the render layer's
  landmark = losses.landmark_loss(out.landmarks / half, batch["landmarks"] / half)
  # L_const's chromaticity comes from the input texture in UV (no gradient through it).
  texture, texture_visible = render.unwrap_face(
    arrays, jax.tree_util.tree_map(jax.lax.stop_gradient, factors), images, face,
    remove_shading=False,
  )  # fmt: skip
  chart = jnp.broadcast_to(arrays.chart_mask, albedo.shape[:3]).astype(albedo.dtype)
  sym3d = losses.albedo_symmetry_loss(albedo, chart)
  const = losses.albedo_constancy_loss(albedo, texture, chart * texture_visible)
  reg = s.lambda_sym3d * sym3d + s.lambda_const * const
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
      scale_weight=s.lambda_scale, translation_weight=s.lambda_translation,
      rotation_weight=s.lambda_rotation,
    )  # fmt: skip
    texture_term = losses.texture_loss(albedo, batch["albedo"], chart, kind=s.texture_loss)
    sup = (
      s.lambda_shape * shape
      + s.lambda_pose * pose
      + s.lambda_texture * texture_term
      + s.lambda_landmark * landmark
    )
    metrics.update(shape=shape, pose=pose, texture=texture_term)
  else:
    sup = s.lambda_landmark * landmark
  total = s.lambda_sup * sup + s.lambda_rec * rec + s.lambda_reg * reg
  metrics["loss"] = total
  return total, (metrics, encoder["batch_stats"], decoder["batch_stats"])


def _train_3dmm(state: State, batch, rng, stage: str):
  s = state.settings
  supervised = stage == "3dmm"
  params = {"encoder": state.encoder["params"], "decoder": state.decoder["params"]}
  grads, (metrics, encoder_stats, decoder_stats) = jax.grad(_three_dmm_objective, has_aux=True)(
    params, state, batch, rng, supervised
  )
  field = _OPTIMIZER_FIELDS[stage]
  updates, opt_state = s.optimizer(stage).update(grads, getattr(state, field), params)
  params = optax.apply_updates(params, updates)
  state = state.replace(
    encoder={"params": params["encoder"], "batch_stats": encoder_stats},
    decoder={"params": params["decoder"], "batch_stats": decoder_stats},
    **{field: opt_state},
  )
  return state, metrics


# --------------------------------------------------------------------------- inpainting stage


def _train_inpaint(state: State, batch, rng):
  """Random flips and face masks, the frozen 3DMM's factors, then `inpaint_update`."""
  flip_rng, mask_rng, penalty_rng = jax.random.split(rng, 3)
  images, labels = _random_flip(flip_rng, batch["image"], batch["segmentation"])
  holes = masks.random_rectangle_mask(mask_rng, labels == FACE, split="train")  # on the face
  factors = _factorise(state, images, holes | (labels == OCCLUSION))
  return inpaint_update(state, images, labels, holes, factors, penalty_rng)


def inpaint_update(state: State, images, labels, holes, factors: model.Factors, rng):
  """One discriminator and one inpainter update (1:1) on one completion pass.

  As the public code's loop: the inpainter's forward pass runs once, the
  discriminator steps on its (detached) blended images, then the inpainter
  steps against the updated discriminator through that same forward pass
  (`jax.vjp`).

  Args:
    state: the State (its 3DMM module is not used: `factors` are given).
    images: (B, H, W, 3) the full images (targets).
    labels: (B, H, W) their segmentation.
    holes: (B, H, W) bool, the pixels hidden from the inpainter (on the face).
    factors: the 3DMM factors of the masked images (held constant).
    rng: PRNG key of the gradient penalty.
  """
  s, arrays = state.settings, state.arrays
  penalty_rng = rng
  face = labels == FACE
  visible = face & ~holes
  partial, partial_visible = _unwrap(state, factors, images, visible)  # the inpainter's input
  target, target_visible = _unwrap(state, factors, images, face)  # what the hole hid
  chart = jnp.broadcast_to(arrays.chart_mask, partial_visible.shape).astype(jnp.float32)
  # A sample whose estimated face shows (almost) no texel gives the Sym-UNet a constant input;
  # GroupNorm's backward then multiplies by rsqrt(eps) level after level and overflows to NaN.
  # Such samples (an untrained or lost 3DMM fit) still count in the metrics but send no gradient.
  usable = jnp.mean(partial_visible, axis=(1, 2)) >= MIN_VISIBLE_FRACTION  # (B,)

  def generate(params):
    variables = {"params": params, "batch_stats": state.inpainter["batch_stats"]}
    (albedo, log_uncertainty), variables = _apply(
      s.inpainter(), variables, partial, partial_visible, update_stats=True
    )  # (B, Hu, Wu, 3), (B, Hu, Wu, 1)
    gate = usable[:, None, None, None]
    albedo = jnp.where(gate, albedo, jax.lax.stop_gradient(albedo))
    log_uncertainty = jnp.where(gate, log_uncertainty, jax.lax.stop_gradient(log_uncertainty))
    rendered, coverage, pixel_log_uncertainty, overflow = _synthesise(
      state, factors, albedo, log_uncertainty
    )
    outputs = {
      "albedo": albedo,
      "log_uncertainty": log_uncertainty[..., 0],
      "blended": _blend(images, holes, rendered, coverage, visible),
      "pixel_log_uncertainty": pixel_log_uncertainty,
    }
    return outputs, (variables["batch_stats"], overflow)

  outputs, generate_vjp, (inpainter_stats, overflow) = jax.vjp(
    generate, state.inpainter["params"], has_aux=True
  )
  batch_size = images.shape[0]
  fake = jax.lax.stop_gradient(outputs["blended"])
  discriminator = s.discriminator()

  def discriminator_objective(params):
    variables = {"params": params, "batch_stats": state.discriminator["batch_stats"]}
    # Real and fake in one pass: one power iteration per step (GroupNorm is per sample).
    logits, variables = _apply(
      discriminator, variables, jnp.concatenate([images, fake]), update_stats=True
    )
    hinge = losses.hinge_discriminator_loss(
      [x[:batch_size] for x in logits], [x[batch_size:] for x in logits]
    )
    penalty = losses.gradient_penalty(
      lambda x: discriminator.apply(variables, x, update_stats=False), images, fake, penalty_rng
    )
    return hinge + s.gradient_penalty * penalty, (hinge, penalty, variables["batch_stats"])

  (d_loss, (hinge, penalty, d_stats)), d_grads = jax.value_and_grad(
    discriminator_objective, has_aux=True
  )(state.discriminator["params"])
  d_updates, d_opt = s.optimizer("discriminator").update(
    d_grads, state.opt_discriminator, state.discriminator["params"]
  )
  d_params = optax.apply_updates(state.discriminator["params"], d_updates)
  d_variables = {"params": d_params, "batch_stats": d_stats}

  def generator_objective(outputs):
    uncertainty = outputs["log_uncertainty"] if s.uncertainty else None
    pixel_uncertainty = outputs["pixel_log_uncertainty"] if s.uncertainty else None
    if uncertainty is None:
      uv = losses.masked_l1(outputs["albedo"], target, target_visible)
    else:
      uv = losses.uncertainty_l1(outputs["albedo"], target, uncertainty, target_visible)
    symmetry = losses.inpainting_symmetry_loss(
      outputs["albedo"], partial_visible, uncertainty, valid=chart
    )
    # Over the holes only: elsewhere the blend is the input, its L1 is 0 and the uncertainty
    # term would just reward c -> -inf there.
    image = losses.blended_image_loss(outputs["blended"], images, holes, pixel_uncertainty)
    gan = losses.hinge_generator_loss(
      discriminator.apply(d_variables, outputs["blended"], update_stats=False)
    )
    total = (
      s.lambda_uv * uv + s.lambda_symmetry * symmetry + s.lambda_image * image + s.lambda_gan * gan
    )
    return total, {"g_loss": total, "uv": uv, "symmetry": symmetry, "image": image, "gan": gan}

  (_, metrics), cotangent = jax.value_and_grad(generator_objective, has_aux=True)(outputs)
  (g_grads,) = generate_vjp(cotangent)
  g_updates, g_opt = s.optimizer("inpainter").update(
    g_grads, state.opt_inpainter, state.inpainter["params"]
  )
  state = state.replace(
    inpainter={
      "params": optax.apply_updates(state.inpainter["params"], g_updates),
      "batch_stats": inpainter_stats,
    },
    discriminator=d_variables,
    opt_inpainter=g_opt,
    opt_discriminator=d_opt,
  )
  metrics.update(
    d_loss=d_loss, d_hinge=hinge, d_gradient_penalty=penalty,
    overflow=jnp.max(overflow).astype(jnp.float32), usable=jnp.mean(usable.astype(jnp.float32)),
  )  # fmt: skip
  return state, metrics


# --------------------------------------------------------------------------- segmentation stage


def _train_segment(state: State, batch, rng):
  s = state.settings
  images, labels = _random_flip(rng, batch["image"], batch["segmentation"])

  def objective(params):
    variables = {"params": params, "batch_stats": state.segmenter["batch_stats"]}
    logits, variables = _apply(s.segmenter(), variables, images, update_stats=True)  # (B, H, W, 3)
    loss = losses.focal_loss(logits, labels, gamma=s.focal_gamma)
    accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == labels)
    return loss, (accuracy, variables["batch_stats"])

  (loss, (accuracy, stats)), grads = jax.value_and_grad(objective, has_aux=True)(
    state.segmenter["params"]
  )
  updates, opt_state = s.optimizer("segmenter").update(
    grads, state.opt_segmenter, state.segmenter["params"]
  )
  state = state.replace(
    segmenter={"params": optax.apply_updates(state.segmenter["params"], updates),
               "batch_stats": stats},
    opt_segmenter=opt_state,
  )  # fmt: skip
  return state, {"loss": loss, "accuracy": accuracy.astype(jnp.float32)}


# --------------------------------------------------------------------------- the step


def _stage_step(name: str, state: State, batch, rng):
  if name in ("3dmm", "3dmm_unsup"):
    return _train_3dmm(state, batch, rng, name)
  if name == "inpaint":
    return _train_inpaint(state, batch, rng)
  if name == "segment":
    return _train_segment(state, batch, rng)
  raise ValueError(f"unknown stage {name!r}; known: {STAGES}")


def phases(config: ml_collections.ConfigDict) -> tuple[tuple[str, int], ...]:
  """The trainer's phases: ((stage, steps), ...) in order, stages with 0 steps left out.

  Also checks, before any training, that a stage which refines or uses the
  3DMM module starts from a trained one. (Restoring a checkpoint needs no
  source run: `create_state` loads the `init_*` fields that are set.)
  """
  schedule = _schedule(config)
  stages = tuple(name for name, _ in schedule)
  for index, name in enumerate(stages):
    needs_3dmm = name in ("3dmm_unsup", "inpaint") and "3dmm" not in stages[:index]
    if needs_3dmm and not config.facefill.init_3dmm:
      raise ValueError(
        f"stage {name!r} starts from a trained 3DMM module: set config.facefill.init_3dmm to "
        "the workdir of a 3dmm (or 3dmm_unsup) run, or use stage=all"
      )
  return schedule


def train_step(state: State, batch, phase: str | None = None):
  """One update of stage `phase` (which may be omitted when the run trains one stage)."""
  stages = state.settings.stages
  if phase is None:
    if len(stages) != 1:
      raise ValueError(
        f"this state trains the stages {stages}: pass phase=<stage> (the trainer does, from "
        "`phases(config)`)"
      )
    phase = stages[0]
  if phase not in stages:
    raise ValueError(f"phase {phase!r} is not a stage of this run's schedule {stages}")
  rng = jax.random.fold_in(state.rng, state.step)
  state, own = _stage_step(phase, state, batch, rng)
  if set(own) != set(METRIC_NAMES[phase]):
    raise AssertionError(f"stage {phase}: metrics {sorted(own)} != {METRIC_NAMES[phase]}")
  metrics = {f"{phase}/{k}": jnp.asarray(v, jnp.float32) for k, v in own.items()}
  return state.replace(step=state.step + 1), metrics


# --------------------------------------------------------------------------- inference


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
    segmentation: (B, H, W) labels in `model.SEGMENT_CLASSES` order; None:
      the segmenter's prediction.
    iterations: refinement passes (static); None: `settings.iterations`.
  """
  s = state.settings
  images = jnp.asarray(images, jnp.float32)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"images must have shape (B, H, W, 3), got {images.shape}")
  if images.shape[1] % 32 or images.shape[2] % 32:
    raise ValueError(f"images' H and W must be multiples of 32, got {images.shape}")
  iterations = s.iterations if iterations is None else int(iterations)
  if iterations < 1:
    raise ValueError(f"iterations must be >= 1, got {iterations}")
  if masks is not None and jnp.shape(masks) != images.shape[:3]:
    raise ValueError(f"masks must have shape {images.shape[:3]}, got {jnp.shape(masks)}")
  if segmentation is None:
    logits = s.segmenter().apply(state.segmenter, images, update_stats=False)
    segmentation = jnp.argmax(logits, axis=-1).astype(jnp.int32)
  segmentation = jnp.asarray(segmentation, jnp.int32)
  if segmentation.shape != images.shape[:3]:
    raise ValueError(f"segmentation must have shape {images.shape[:3]}, got {segmentation.shape}")
  face, occlusion = segmentation == FACE, segmentation == OCCLUSION
  holes = occlusion if masks is None else jnp.asarray(masks) > 0.5  # (B, H, W)
  visible = face & ~holes
  current, hidden = images, holes | occlusion
  for _ in range(iterations):
    factors = _factorise(state, current, hidden)
    uv_input, uv_visible = _unwrap(state, factors, images, visible)
    uv_completed, log_uncertainty = s.inpainter().apply(
      state.inpainter, uv_input, uv_visible, update_stats=False
    )
    rendered, coverage, _, _ = _synthesise(state, factors, uv_completed, log_uncertainty)
    current = _blend(images, holes, rendered, coverage, visible)
    hidden = occlusion & ~holes  # later passes see the filled holes
  return Completion(
    image=current, rendered=rendered, coverage=coverage, uv_input=uv_input,
    uv_visible=uv_visible, uv_completed=uv_completed, log_uncertainty=log_uncertainty[..., 0],
    factors=factors, holes=holes, segmentation=segmentation,
  )  # fmt: skip


_complete = jax.jit(complete, static_argnames=("iterations",))


def novel_views(
  state: State, completion: Completion, yaws_degrees=(-30.0, 0.0, 30.0), background=1.0
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
      state.arrays, turned, completion.uv_completed, state.settings.image_size,
      background=background,
    )  # fmt: skip
    if state.settings.remove_shading:
      return out.image
    return jnp.where(out.mask[..., None] > 0, out.albedo, jnp.asarray(background, jnp.float32))

  return jnp.moveaxis(jax.lax.map(view, turns), 0, 1)  # (B, V, H, W, 3)


_novel_views = jax.jit(novel_views, static_argnames=("yaws_degrees",))


# --------------------------------------------------------------------------- evaluation


@jax.jit
def _reconstruct(state: State, images, segmentation):
  """The 3DMM module's reconstruction of images with their occluders removed (B, H, W, ...)."""
  s = state.settings
  factors = _factorise(state, images, segmentation == OCCLUSION)
  albedo = s.decoder().apply(state.decoder, factors.albedo_features, update_stats=False)
  out = render.render_face(state.arrays, factors, albedo, s.image_size)
  return {"image": out.image, "mask": out.mask, "landmarks": out.landmarks, "albedo": albedo}


@jax.jit
def _segment(state: State, images):
  logits = state.settings.segmenter().apply(state.segmenter, images, update_stats=False)
  return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def _chunks(count: int, size: int):
  """(indices padded to `size` by repeating the last, number of real ones) per chunk."""
  for start in range(0, count, size):
    indices = np.arange(start, min(start + size, count))
    yield np.concatenate([indices, np.full(size - len(indices), indices[-1])]), len(indices)


def _segmentation_scores(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
  scores = {"segment_accuracy": float(np.mean(predicted == labels))}
  ious = []
  for index, name in enumerate(model.SEGMENT_CLASSES):
    union = np.sum((predicted == index) | (labels == index))
    if union:
      ious.append(np.sum((predicted == index) & (labels == index)) / union)
      scores[f"segment_iou_{name}"] = float(ious[-1])
  scores["segment_miou"] = float(np.mean(ious))
  return scores


def completion_report(
  state: State, images: np.ndarray, labels: np.ndarray, config: ml_collections.ConfigDict
) -> image_metrics.MaskRatioReport:
  """PSNR / SSIM / LPIPS of 3DFaceFill and the configured classical baselines by mask ratio.

  LPIPS needs the user's LPIPS v0.1 weights (`config.facefill.eval.lpips`
  or $JAXFACE_LPIPS, see `jaxface.metrics.image.load_lpips`); without them
  the report lists it as unavailable with the reason.

  Every eval image gets one fixed mask per ratio bucket
  (`masks.evaluation_masks` on its visible face, seeded by
  `config.facefill.eval.mask_seed`); the completion uses the ground-truth
  segmentation, so the table measures completion alone. Metrics are over
  the whole image.

  Args:
    state: a State with a trained 3DMM module and inpainter.
    images: (N, H, W, 3) eval images in [0, 1], the targets.
    labels: (N, H, W) their ground-truth segmentation.
    config: the run's config (`config.facefill.eval`).
  """
  s, ev = state.settings, config.facefill.eval
  count = len(images)
  buckets = tuple(tuple(float(v) for v in b) for b in ev.buckets)
  holes, ratios = masks.evaluation_masks(
    labels == FACE, buckets=buckets, seed=int(ev.mask_seed)
  )  # (N, K, H, W), (N, K)
  methods = ("facefill", *tuple(ev.baselines))
  lpips_weights = image_metrics.load_lpips(str(ev.lpips) or None)  # or LpipsUnavailable
  measured = ("psnr", "ssim", "lpips")
  values = {f"{m}_{name}": [] for m in methods for name in measured}
  for bucket in range(len(buckets)):
    for indices, real in _chunks(count, s.eval_batch_size):
      completed = np.asarray(
        _complete(
          state, images[indices], holes[indices, bucket], segmentation=labels[indices]
        ).image
      )[:real]
      targets = images[indices[:real]]
      candidates = {"facefill": completed}
      for method in ev.baselines:
        candidates[method] = baselines.inpaint(targets, holes[indices[:real], bucket], method)
      for method, prediction in candidates.items():
        prediction = np.asarray(prediction, np.float32)
        scores = image_metrics.image_metrics(prediction, targets, lpips_weights)
        for name in measured:
          values[f"{method}_{name}"].append(scores[name])
  per_image = {
    name.removeprefix("facefill_"): (
      lpips_weights
      if isinstance(lpips_weights, image_metrics.LpipsUnavailable) and name.endswith("lpips")
      else np.concatenate([np.asarray(v) for v in chunks])
    )
    for name, chunks in values.items()
  }  # bucket-major, as the ratios below; LPIPS without weights says why it is missing
  edges = (buckets[0][0], *(high for _, high in buckets))
  return image_metrics.metrics_by_mask_ratio(per_image, ratios.T.ravel(), edges)


def evaluate(state: State, dataset: FaceFillDataset, config) -> dict[str, float]:
  """Metrics of the modules this run trained (or loaded).

  - 3DMM: landmark error (px) and face-pixel L1 of the reconstruction;
  - completion (when the inpainter is trained): PSNR / SSIM (/ LPIPS with
    weights; "lpips_available" says) overall ("psnr/all") and per
    mask-ratio bucket ("psnr/20-30%"), and the same for each classical
    baseline ("telea_psnr/20-30%"); the whole table is logged;
  - segmentation (when the segmenter is trained): accuracy and IoU.
  """
  s = state.settings
  count = min(len(dataset), int(config.facefill.eval.num_images))
  data = dataset.read(np.arange(count))
  results: dict[str, float] = {}
  images, labels = data["image"], data["segmentation"]  # (N, H, W, 3), (N, H, W)
  if "3dmm" in s.trained:
    landmark_px, rec_l1 = [], []
    for indices, real in _chunks(count, s.eval_batch_size):
      out = jax.device_get(_reconstruct(state, images[indices], labels[indices]))
      error = np.linalg.norm(out["landmarks"] - data["landmarks"][indices], axis=-1)  # (B, 68)
      landmark_px.append(error.mean(-1)[:real])
      weight = out["mask"] * (labels[indices] == FACE)  # (B, H, W)
      l1 = (np.abs(out["image"] - images[indices]).mean(-1) * weight).sum((1, 2))
      rec_l1.append((l1 / np.maximum(weight.sum((1, 2)), 1.0))[:real])
    results["3dmm_landmark_px"] = float(np.mean(np.concatenate(landmark_px)))
    results["3dmm_rec_l1"] = float(np.mean(np.concatenate(rec_l1)))
  if "inpaint" in s.trained:
    report = completion_report(state, images, labels, config)
    logging.info("completion by mask-to-face ratio:\n%s", report.table())
    results.update(report.scalars())
    results["lpips_available"] = float("lpips" not in report.unavailable)
  if "segment" in s.trained:
    predicted = [
      np.asarray(_segment(state, images[indices]))[:real]
      for indices, real in _chunks(count, s.eval_batch_size)
    ]
    results.update(_segmentation_scores(np.concatenate(predicted), labels))
  return results


# --------------------------------------------------------------------------- summaries


def summaries(state: State, batch) -> dict:
  """Image grids: input, masked input, completion, re-render, novel views, UV albedo (partial and
  completed), the 3DMM module's reconstruction and albedo, the segmenter's labels."""
  s = state.settings
  count = min(s.num_summaries, batch["image"].shape[0])
  # Padded to the evaluation batch so the jitted functions compile once for both.
  indices = np.minimum(np.arange(s.eval_batch_size), count - 1)
  # Host arrays, as `evaluate` passes: a sharded batch would make jit compile another variant.
  images = np.asarray(jax.device_get(batch["image"]))[indices]  # (E, H, W, 3)
  labels = np.asarray(jax.device_get(batch["segmentation"]))[indices]  # (E, H, W)
  holes = np.asarray(
    masks.random_rectangle_mask(jax.random.PRNGKey(0), labels == FACE, split="test")
  )  # (E, H, W) bool
  out = _complete(state, images, holes, segmentation=labels)
  reconstruction = _reconstruct(state, images, labels)
  views = _novel_views(state, out)  # (E, V, H, W, 3)
  images = {
    "input": images,
    "masked": _hide(images, holes),
    "completion": out.image,
    "rendered": out.rendered,
    "uv_partial": out.uv_input,
    "uv_completed": out.uv_completed,
    "reconstruction_3dmm": reconstruction["image"],
    "albedo_3dmm": reconstruction["albedo"],
    "segmentation": jnp.asarray(_CLASS_COLOURS)[_segment(state, images)],
    "novel_views": jnp.concatenate(list(jnp.moveaxis(views, 1, 0)), axis=2),  # (E, H, V*W, 3)
  }
  return {name: value[:count] for name, value in images.items()}
