"""The synthetic face-image dataset's ground truth in the render layer's conventions: the
weak-perspective pose of each example, its factors and its UV albedo, for 3DFaceFill's
supervised pose / shape / texture losses (supplement sec. 4.2).

Cameras. The paper (and its code) use weak perspective, `ndc_xy = s (R p)_xy
+ t`. The synthetic face-image dataset (`jaxface.data.synthetic`) renders
with a *perspective* camera: world-to-camera rotation R = euler(pose),
translation (tx, ty, -D) cm with D ~ 4-4.8 face heights, a 14-18 degree
field of view (NDC focal f = 2 focal_px / size ~ 6.3-8.1). For any reference
depth z0 its projection of a model point p (model units) is exactly

    ndc_xy = (s (R p)_xy + t) / (1 - s ((R p)_z - z0) / f),
    k = 1 / (1 - unit z0 / D),  s = k f unit / D,  t = k f (tx, ty) / D,

i.e. a weak-perspective camera times a per-point perspective factor that is
1 at depth z0. Here z0 is the mean rotated depth of the face's landmark
vertices (the visible face, ~0.3 unit in front of the model centre), the
classic scaled-orthographic choice: `pose_targets` returns that (s, t, q)
and f, and (s, t, q) is the weak-perspective pose the supervised pose loss
compares with the encoder's (it fits the dataset's landmarks better than
any scale 5% off, see the tests). The face's own depth (about +-0.45 unit)
still moves its outer parts by up to ~2% of their distance to the face
centre under weak perspective (at 64 px: landmarks 0.25 px off on average,
1.1 px at most; face mask IoU 0.95). The render layer's functions take an
optional `focal`: with the dataset's f (and z0 computed from the factors'
own landmarks, as `pose_targets` does) they render exactly what the dataset
rendered, which also lets a synthetic-data run remove the camera-model
mismatch when the camera is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxface.geometry.transforms import euler_to_matrix, matrix_to_quaternion
from jaxface.methods.facefill.model import Factors
from jaxface.methods.facefill.render import FaceModelArrays
from jaxface.morphable.model import MorphableModel


class PoseTargets(NamedTuple):
  """Weak-perspective pose of a synthetic example (see the module docstring).

  Attributes:
    scale: (...,) NDC per model unit at the landmarks' mean depth.
    translation: (..., 2) NDC image-plane position of the model centre.
    rotation: (..., 4) unit quaternion (w, x, y, z), w >= 0.
    focal: (...,) the dataset camera's NDC focal length 2 focal_px / size;
      pass it as `focal` to render the example's exact perspective.
  """

  scale: jax.Array
  translation: jax.Array
  rotation: jax.Array
  focal: jax.Array


def _example_image_size(example: Mapping[str, jax.Array], image_size) -> int:
  if image_size is not None:
    return int(image_size)
  if "image" not in example:
    raise ValueError("pass image_size: the example has no 'image' to read it from")
  height, width = np.shape(example["image"])[-3:-1]
  if height != width:
    raise ValueError(f"the synthetic face images are square; got {height} x {width}")
  return int(width)


def pose_targets(
  model_arrays: FaceModelArrays, example: Mapping[str, jax.Array], image_size: int | None = None
) -> PoseTargets:
  """The weak-perspective pose (and focal) of synthetic face-image examples.

  The dataset's perspective camera (pose (..., 3) Euler pitch/yaw/roll =
  world-to-camera rotation R, translation (..., 3) cm whose -z is the
  distance D, focal (...) pixels; f = 2 focal / size in NDC) projects a model
  point p exactly as (s (R p)_xy + t) / (1 - s ((R p)_z - z0) / f) with

      k = 1 / (1 - unit z0 / D),  s = k f unit / D,  t = k f (tx, ty) / D,

  for any reference depth z0; z0 is the mean (R p)_z of the example's own
  landmark vertices, so (s, t, q = quat(R)) is the scaled-orthographic
  camera of the visible face (module docstring) and `face_geometry` with
  `focal=f` (which uses the same z0) reproduces the dataset exactly. Works
  on one example or a batch; jit-safe.

  Args:
    model_arrays: from `face_model_arrays`.
    example: a `face_image_example` dict (or a batch of them): "pose",
      "translation", "focal", "identity", "expression" and, unless
      image_size is given, "image".
    image_size: the square image's size in pixels.
  """
  for key in ("pose", "translation", "focal", "identity", "expression"):
    if key not in example:
      raise ValueError(f"example has no {key!r}; need a face_image_example")
  size = _example_image_size(example, image_size)
  pose = jnp.asarray(example["pose"], jnp.float32)
  translation = jnp.asarray(example["translation"], jnp.float32)
  if pose.shape[-1:] != (3,) or translation.shape != pose.shape:
    raise ValueError(
      f"pose and translation must have shape (..., 3), got {pose.shape} and {translation.shape}"
    )
  ids = model_arrays.landmarks
  landmarks = (
    model_arrays.mean_shape[ids]
    + jnp.einsum("...k,kvd->...vd", jnp.asarray(example["identity"], jnp.float32),
                 model_arrays.identity_basis[:, ids])
    + jnp.einsum("...k,kvd->...vd", jnp.asarray(example["expression"], jnp.float32),
                 model_arrays.expression_basis[:, ids])
  )  # fmt: skip
  rotation = euler_to_matrix(pose)  # (..., 3, 3)
  z0 = jnp.mean(jnp.einsum("...j,...vj->...v", rotation[..., 2, :], landmarks), axis=-1)
  focal = 2.0 * jnp.asarray(example["focal"], jnp.float32) / size  # (...,) NDC
  distance = -translation[..., 2]  # (...,) the camera looks along -z
  # Magnification of the reference depth relative to the model centre's.
  k = 1.0 / (1.0 - model_arrays.unit * z0 / distance)
  return PoseTargets(
    scale=k * focal * model_arrays.unit / distance,
    translation=(k * focal / distance)[..., None] * translation[..., :2],
    rotation=matrix_to_quaternion(rotation),
    focal=focal,
  )


def example_factors(
  model_arrays: FaceModelArrays, example: Mapping[str, jax.Array], image_size: int | None = None
) -> Factors:
  """Ground-truth Factors of a batch of face-image examples (albedo_features empty (B, 0)).

  Render them with `ground_truth_albedo` and `focal=pose_targets(...).focal`
  to reproduce the examples' face pixels.
  """
  pose = pose_targets(model_arrays, example, image_size)
  if pose.scale.ndim != 1:
    raise ValueError(f"example must be a batch (leading B), got pose {np.shape(example['pose'])}")
  identity = jnp.asarray(example["identity"], jnp.float32)
  return Factors(
    scale=pose.scale,
    translation=pose.translation,
    rotation=pose.rotation,
    illumination=jnp.asarray(example["sh"], jnp.float32),
    identity=identity,
    expression=jnp.asarray(example["expression"], jnp.float32),
    albedo_features=jnp.zeros((identity.shape[0], 0), jnp.float32),
  )


def ground_truth_albedo(
  model: MorphableModel, albedo_coefficients: jax.Array, uv_size: tuple[int, int] | None = None
) -> jax.Array:
  """The UV albedo a synthetic example was rendered with, (..., Hu, Wu, 3) in [0, 1].

  The model's linear albedo `albedo_mean + albedo_basis . coefficients` at
  its own UV resolution, clipped to [0, 1] as the dataset renders it; with
  `uv_size` resized to the decoder's UV size (linear, antialiased when
  shrinking: UV maps of any size cover the same [0, 1]^2 square with
  texel centres at (j + 0.5) / W, the convention `jax.image.resize` shares).
  Use it with `model_arrays.chart_mask` for the texture loss.
  """
  coefficients = jnp.asarray(albedo_coefficients, jnp.float32)
  albedo = jnp.clip(model.albedo(coefficients), 0.0, 1.0)  # (..., Hu0, Wu0, 3)
  if uv_size is None or tuple(uv_size) == albedo.shape[-3:-1]:
    return albedo
  if len(uv_size) != 2 or min(uv_size) <= 0:
    raise ValueError(f"uv_size must be (Hu, Wu) with positive entries, got {uv_size}")
  shape = (*albedo.shape[:-3], int(uv_size[0]), int(uv_size[1]), 3)
  return jax.image.resize(albedo, shape, method="linear", antialias=True)
