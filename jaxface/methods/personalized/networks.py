"""The modeling and tracking networks (supplement, Table 1) and the method's state.

- `ModelingNetwork`: the shared encoder of Table 1a applied to each of a
  user's K frames, the K features average-pooled (order-invariant, any K,
  frames marked absent left out), and the two decoders of Table 1b: the
  shape decoder's UV maps of dS_0 (3) and dB_k (Ke x 3), the albedo
  decoder's static albedo offset (3) and dA_k (Ke x 3). Every convolution
  and deconvolution is followed by batch norm and ReLU, as the supplement
  says, except the decoders' two 1 x 1 heads, which are the outputs (signed
  corrections, so linear). A linear head on the pooled feature gives the
  identity coefficients alpha of the morphable model, which the UV
  corrections refine (a choice: the supplement gives no identity head; see
  configs/personalized.py).
- `TrackingNetwork`: per frame, a ResNet-18 (GroupNorm, `jaxface.nets`)
  regressing the head pose (pitch, yaw, roll and a translation around the
  nominal distance), the blendshape weights w in [0, 1] and the SH light
  (27). The supplement does not give its architecture; ResNets are what
  Deep3DFaceRecon and DECA regress the same quantities with.

Widths come from `config.personalized`, so training, evaluation, the
benchmark and the video command build the same modules.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from jaxface.geometry.camera import PerspectiveCamera, focal_from_fov
from jaxface.geometry.transforms import euler_to_matrix
from jaxface.methods.personalized.rig import RigArrays
from jaxface.nets.resnet import ResNet18
from jaxface.render.shading import DC_FACTOR

#: Strides of the encoder's 3 x 3 convolutions after the stem and max pool (Table 1a).
ENCODER_STRIDES = (1, 2, 1, 2, 1, 2)
#: Batch-norm momentum of the running statistics (evaluation uses them).
BN_MOMENTUM = 0.9
#: The tracking camera's field of view (the data's lies in 14-18 degrees).
NOMINAL_FOV_DEG = 16.0


def _bn(train: bool, name: str) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, name=name)


class Encoder(nn.Module):
  """Table 1a: (N, H, W, 3) -> (N, H/32, W/32, widths[-1]).

  Attributes:
    widths: output channels of the 7 x 7 stem and of the six 3 x 3 convolutions
      (the paper's (64, 128, 128, 256, 256, 512, 512)).
  """

  widths: tuple[int, ...] = (64, 128, 128, 256, 256, 512, 512)

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    if len(self.widths) != len(ENCODER_STRIDES) + 1:
      raise ValueError(f"the encoder needs {len(ENCODER_STRIDES) + 1} widths, got {self.widths}")
    x = nn.Conv(self.widths[0], (7, 7), 2, padding=3, name="stem")(images)
    x = nn.relu(_bn(train, "stem_bn")(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for i, (features, stride) in enumerate(zip(self.widths[1:], ENCODER_STRIDES, strict=True)):
      x = nn.Conv(features, (3, 3), stride, padding=1, name=f"conv{i}")(x)
      x = nn.relu(_bn(train, f"bn{i}")(x))
    return x


class Decoder(nn.Module):
  """Table 1b: (B, h, w, C) -> a static map (B, U, U, 3) and per-blendshape maps (B, U, U, Ke, 3).

  Four 4 x 4 stride-2 deconvolutions (the first unpadded, 7 -> 16, then
  doubling: U = 16 (h + 1), 128 for the paper's h = 7), then two 1 x 1
  heads from the same last feature map.

  Attributes:
    widths: the deconvolutions' channels (the paper's (512, 256, 128, 64)).
    num_blendshapes: Ke.
    output_scale: multiplies both heads (their units: cm for shape, RGB for albedo).
  """

  widths: tuple[int, ...]
  num_blendshapes: int
  output_scale: float = 1.0

  @nn.compact
  def __call__(self, features: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array]:
    x = features
    for i, width in enumerate(self.widths):
      padding = "VALID" if i == 0 else "SAME"
      x = nn.ConvTranspose(width, (4, 4), (2, 2), padding=padding, name=f"deconv{i}")(x)
      x = nn.relu(_bn(train, f"bn{i}")(x))
    static = nn.Conv(3, (1, 1), name="static_head")(x)
    dynamic = nn.Conv(self.num_blendshapes * 3, (1, 1), name="blendshape_head")(x)
    dynamic = dynamic.reshape(*dynamic.shape[:-1], self.num_blendshapes, 3)
    return self.output_scale * static, self.output_scale * dynamic


class PersonMaps(NamedTuple):
  """The modeling network's outputs for B users (see `rig.person_from_maps` for the units)."""

  identity: jax.Array  # (B, Ki)
  shape_static: jax.Array  # (B, U, U, 3)
  shape_dynamic: jax.Array  # (B, U, U, Ke, 3)
  albedo_static: jax.Array  # (B, U, U, 3)
  albedo_dynamic: jax.Array  # (B, U, U, Ke, 3)


def pool_frames(features: jax.Array, present: jax.Array | None) -> jax.Array:
  """The mean over a user's frames: (B, K, ...) features, (B, K) bool present -> (B, ...).

  Order-invariant; frames marked absent do not count (every user needs one present frame).
  """
  if present is None:
    return features.mean(axis=1)
  weights = present.astype(features.dtype)
  weights = weights / jnp.maximum(weights.sum(axis=1, keepdims=True), 1.0)
  return jnp.einsum("bk,bk...->b...", weights, features)


class ModelingNetwork(nn.Module):
  """A user's K frames -> their `PersonMaps` (module docstring).

  Attributes:
    num_identity, num_blendshapes: Ki, Ke of the rig.
    encoder_widths, decoder_widths: see `Encoder`, `Decoder`.
    shape_scale: cm per unit of the shape heads' raw output.
    albedo_scale: RGB per unit of the albedo heads' raw output.
  """

  num_identity: int
  num_blendshapes: int
  encoder_widths: tuple[int, ...] = (64, 128, 128, 256, 256, 512, 512)
  decoder_widths: tuple[int, ...] = (512, 256, 128, 64)
  shape_scale: float = 0.1
  albedo_scale: float = 0.1

  @nn.compact
  def __call__(
    self, images: jax.Array, present: jax.Array | None = None, *, train: bool
  ) -> PersonMaps:
    # images (B, K, H, W, 3) in [0, 1]; present (B, K) bool or None (all present)
    if images.ndim != 5:
      raise ValueError(f"images must have shape (B, K, H, W, 3), got {images.shape}")
    batch, frames = images.shape[:2]
    flat = images.reshape(batch * frames, *images.shape[2:]) * 2.0 - 1.0
    features = Encoder(tuple(self.encoder_widths), name="encoder")(flat, train=train)
    pooled = pool_frames(features.reshape(batch, frames, *features.shape[1:]), present)
    identity = nn.Dense(self.num_identity, name="identity_head")(pooled.mean(axis=(1, 2)))
    decoder = lambda name, scale: Decoder(
      tuple(self.decoder_widths), self.num_blendshapes, scale, name=name
    )
    shape_static, shape_dynamic = decoder("shape_decoder", self.shape_scale)(pooled, train=train)
    albedo_static, albedo_dynamic = decoder("albedo_decoder", self.albedo_scale)(
      pooled, train=train
    )
    return PersonMaps(identity, shape_static, shape_dynamic, albedo_static, albedo_dynamic)


class Track(NamedTuple):
  """The tracking network's per-frame outputs for N frames."""

  rotation: jax.Array  # (N, 3, 3) world-to-camera
  translation: jax.Array  # (N, 3)
  weights: jax.Array  # (N, Ke) blendshape weights in [0, 1]
  sh: jax.Array  # (N, 27) SH light, camera frame


class TrackingNetwork(nn.Module):
  """A frame -> its `Track` (module docstring).

  Outputs start near a frontal face at the nominal distance, weights near
  `initial_weight`, and a white ambient light of the data's mean intensity.

  Attributes:
    num_blendshapes: Ke.
    width: the ResNet-18's width multiplier.
    nominal_distance: camera distance in face heights (the data's are 4-4.8).
    angle_scale: radians per unit of the angle outputs.
    initial_weight: the blendshape weights of a zero output.
  """

  num_blendshapes: int
  width: float = 1.0
  nominal_distance: float = 4.4
  angle_scale: float = 0.5
  initial_weight: float = 0.1

  @nn.compact
  def __call__(self, images: jax.Array, face_height: jax.Array) -> Track:
    # images (N, H, W, 3) in [0, 1]
    ke = self.num_blendshapes
    out = ResNet18(6 + ke + 27, self.width, name="resnet")(images * 2.0 - 1.0)
    angles, shift = out[:, :3], out[:, 3:6]
    rotation = euler_to_matrix(self.angle_scale * angles)  # (N, 3, 3)
    translation = face_height * jnp.stack(
      [0.1 * shift[:, 0], 0.1 * shift[:, 1], -(self.nominal_distance + 0.2 * shift[:, 2])], axis=-1
    )
    offset = jnp.log(self.initial_weight / (1.0 - self.initial_weight))
    weights = nn.sigmoid(out[:, 6 : 6 + ke] + offset)
    sh = 0.1 * out[:, 6 + ke :].reshape(-1, 3, 9)
    sh = sh.at[:, :, 0].add(0.9 / DC_FACTOR).reshape(-1, 27)
    return Track(rotation, translation, weights, sh)


def cameras(track: Track, image_size: int) -> PerspectiveCamera:
  """The frames' perspective cameras (N leaves) at the nominal field of view."""
  count = track.rotation.shape[0]
  focal = jnp.full((count, 2), focal_from_fov(NOMINAL_FOV_DEG, image_size), jnp.float32)
  centre = jnp.full((count, 2), image_size / 2.0, jnp.float32)
  return PerspectiveCamera(focal, centre, track.rotation, track.translation)


@struct.dataclass
class State:
  """Both networks, the scheduled stages' optimiser states and the rig.

  Attributes:
    step: () int32, steps trained.
    rng: the base PRNG key (the steps are deterministic; kept for the protocol).
    modeling: {"params", "batch_stats"} of the modeling network.
    tracking: {"params"} of the tracking network.
    opt_state: {stage name: its optimiser's state}.
    arrays: the rig (`RigArrays`), checkpointed, never trained.
  """

  step: jax.Array
  rng: jax.Array
  modeling: dict
  tracking: dict
  opt_state: dict
  arrays: RigArrays


def face_height(arrays: RigArrays) -> jax.Array:
  """() the mean face's height in model units (the camera distance's unit)."""
  return jnp.ptp(arrays.mean[:, 1])


def modeling_network(config, arrays: RigArrays) -> ModelingNetwork:
  pc = config.personalized
  return ModelingNetwork(
    num_identity=arrays.identity_basis.shape[0], num_blendshapes=arrays.expression_basis.shape[0],
    encoder_widths=tuple(pc.encoder_widths), decoder_widths=tuple(pc.decoder_widths),
    shape_scale=pc.shape_scale, albedo_scale=pc.albedo_scale,
  )  # fmt: skip


def tracking_network(config, arrays: RigArrays) -> TrackingNetwork:
  pc = config.personalized
  return TrackingNetwork(
    num_blendshapes=arrays.expression_basis.shape[0], width=pc.tracking_width,
    nominal_distance=pc.nominal_distance,
  )  # fmt: skip


def model_users(config, state: State, variables: dict | None, images, present=None, *, train: bool):
  """The modeling network on (B, K, H, W, 3): `PersonMaps` (and the new batch stats if `train`)."""
  variables = state.modeling if variables is None else variables
  module = modeling_network(config, state.arrays)
  if train:
    maps, updates = module.apply(variables, images, present, train=True, mutable=["batch_stats"])
    return maps, updates["batch_stats"]
  return module.apply(variables, images, present, train=False)


def track_frames(config, state: State, params: dict | None, images) -> Track:
  """The tracking network on (N, H, W, 3) frames, with `params` (default: the state's)."""
  params = state.tracking["params"] if params is None else params
  module = tracking_network(config, state.arrays)
  return module.apply({"params": params}, images, face_height(state.arrays))
