"""The three networks of Shu et al. (FG 2020, sec. III-B), the method's state and its face model.

- DepthNet f: a U-Net, image -> normalised depth D' in [0, 1] (eq. 7);
- 3DMMNet g: a DenseNet, image -> identity and expression coefficients of
  the fitted morphable model and the camera pose (R, t) of a perspective
  camera with a fixed focal length (eq. 1-2);
- suitability network h: a U-Net, image -> per-pixel weight C in [0, 1].

The constructors read their sizes from `config.multiview` and the face
model's arrays, so training, evaluation and the photo command build the same
modules. None of the networks keeps batch statistics (GroupNorm, no
spectral norm): their variables are {"params"} only.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxface.data.multiview import NOSE_TIP
from jaxface.geometry.transforms import euler_to_matrix
from jaxface.morphable.model import MorphableModel
from jaxface.nets.densenet import DenseNet
from jaxface.nets.layers import UNet

#: The state fields holding each network's {"params"}.
MODULES = ("three_dmm", "depth", "suitability")


class FaceArrays(NamedTuple):
  """The fitted morphable model, in the face frame (origin at the mean face's nose tip).

  Attributes:
    mean: (V, 3) mean shape; identity_basis (Ki, V, 3); expression_basis (Ke, V, 3).
    triangles: (F, 3) int32; landmarks: (68,) int32 vertex ids (iBUG-68).
    face_height: () the mean face's height (the unit of the camera distance).
  """

  mean: jax.Array
  identity_basis: jax.Array
  expression_basis: jax.Array
  triangles: jax.Array
  landmarks: jax.Array
  face_height: jax.Array


def face_arrays(model: MorphableModel, num_identity: int, num_expression: int) -> FaceArrays:
  """The first `num_identity` / `num_expression` modes of `model`, centred at its nose tip."""
  vertices = np.asarray(model.vertices)
  origin = vertices[np.asarray(model.landmarks)[NOSE_TIP]]
  return FaceArrays(
    mean=jnp.asarray(vertices - origin, jnp.float32),
    identity_basis=jnp.asarray(model.identity_basis)[:num_identity],
    expression_basis=jnp.asarray(model.expression_basis)[:num_expression],
    triangles=jnp.asarray(model.triangles, jnp.int32),
    landmarks=jnp.asarray(model.landmarks, jnp.int32),
    face_height=jnp.asarray(np.ptp(vertices[:, 1]), jnp.float32),
  )


@struct.dataclass
class State:
  """The three networks, the scheduled stages' optimiser states and the fitted face model.

  Attributes:
    step: () int32, steps trained.
    rng: the base PRNG key (unused by the deterministic steps; kept for the protocol).
    three_dmm, depth, suitability: {"params"} of g, f and h.
    opt_state: {stage name: its optimiser's state}.
    arrays: the fitted morphable model (`FaceArrays`), checkpointed, never trained.
  """

  step: jax.Array
  rng: jax.Array
  three_dmm: dict
  depth: dict
  suitability: dict
  opt_state: dict
  arrays: FaceArrays


class Fit(NamedTuple):
  """3DMMNet's output for a batch: (B, Ki), (B, Ke), rotation (B, 3, 3), translation (B, 3)."""

  identity: jax.Array
  expression: jax.Array
  rotation: jax.Array
  translation: jax.Array


class ThreeDMMNet(nn.Module):
  """g: DenseNet features -> coefficients and camera pose (sec. III-B-b).

  The pose head predicts (pitch, yaw, roll) in units of `angle_scale`
  radians and a translation in face heights around the nominal camera
  distance, so every output starts near a plausible frontal face.

  Attributes:
    num_identity, num_expression: Ki, Ke of the fitted model.
    blocks, growth, stem_features: the DenseNet's (see `jaxface.nets.DenseNet`).
    nominal_distance: the camera's distance from the nose tip in face heights.
    angle_scale: radians per unit of the angle outputs.
  """

  num_identity: int
  num_expression: int
  blocks: tuple[int, ...] = (6, 12, 24, 16)
  growth: int = 32
  stem_features: int = 64
  nominal_distance: float = 4.4
  angle_scale: float = 0.5

  @nn.compact
  def __call__(self, images: jax.Array, face_height: jax.Array) -> Fit:
    # images (B, H, W, 3) in [0, 1] -> Fit
    features = DenseNet(self.blocks, self.growth, self.stem_features, name="densenet")(
      images * 2.0 - 1.0
    )
    out = nn.Dense(self.num_identity + self.num_expression + 6, name="head")(features)
    identity = out[:, : self.num_identity]
    expression = out[:, self.num_identity : self.num_identity + self.num_expression]
    angles, shift = out[:, -6:-3], out[:, -3:]
    rotation = euler_to_matrix(self.angle_scale * angles)  # (B, 3, 3)
    translation = face_height * jnp.stack(
      [0.1 * shift[:, 0], 0.1 * shift[:, 1], -(self.nominal_distance + 0.2 * shift[:, 2])], axis=-1
    )  # (B, 3)
    return Fit(identity, expression, rotation, translation)


class DenseMap(nn.Module):
  """f or h: a U-Net with a sigmoid output, image (B, H, W, 3) -> map (B, H, W) in [0, 1]."""

  widths: tuple[int, ...]
  up_widths: tuple[int, ...]

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    unet = UNet(1, tuple(self.widths), tuple(self.up_widths), spectral=False, name="unet")
    return nn.sigmoid(unet(images * 2.0 - 1.0, update_stats=False)[..., 0])


def three_dmm_net(config, arrays: FaceArrays) -> ThreeDMMNet:
  mv = config.multiview
  return ThreeDMMNet(
    num_identity=arrays.identity_basis.shape[0], num_expression=arrays.expression_basis.shape[0],
    blocks=tuple(mv.densenet.blocks), growth=mv.densenet.growth,
    stem_features=mv.densenet.stem_features, nominal_distance=mv.nominal_distance,
  )  # fmt: skip


def depth_net(config) -> DenseMap:
  widths = tuple(config.multiview.depth_widths)
  return DenseMap(widths, tuple(reversed(widths[:-1])))


def suitability_net(config) -> DenseMap:
  widths = tuple(config.multiview.suitability_widths)
  return DenseMap(widths, tuple(reversed(widths[:-1])))


def fit(config, state: State, params: dict | None, images: jax.Array) -> Fit:
  """3DMMNet on (B, H, W, 3) images, with `params` (default: the state's)."""
  params = state.three_dmm["params"] if params is None else params
  module = three_dmm_net(config, state.arrays)
  return module.apply({"params": params}, images, state.arrays.face_height)


def depth(config, params: dict, images: jax.Array) -> jax.Array:
  """DepthNet: (B, H, W, 3) -> (B, H, W) normalised depth D'."""
  return depth_net(config).apply({"params": params}, images)


def suitability(config, params: dict, images: jax.Array) -> jax.Array:
  """The suitability network: (B, H, W, 3) -> (B, H, W) C."""
  return suitability_net(config).apply({"params": params}, images)
