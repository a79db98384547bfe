"""Multi-view face data for monocular depth (Shu et al. FG 2020): synthetic, real-like and test.

Every example is one face at one instant seen by several cameras, a pure
function of (settings, seed, index). Faces are centred at the nose tip
(iBUG-68 landmark 30), as the paper's normalised depth assumes (eq. 7), and
seen through a fixed focal length. Four kinds (`KINDS`):

- "synthetic": the paper's rendered training faces (sec. IV). Identity and
  expression lie in the space of the morphable model 3DMMNet uses (the first
  `fit_identity` / `fit_expression` modes), Lambertian SH shading with the
  light fixed to the face (so views agree on every colour), 10 views per
  face on the paper's grid: azimuth in [-45, 45], elevation in [-30, 30],
  roll in [-20, 20], all in steps of 5 degrees. Full ground truth.
- "real": the stand-in for Multi-PIE. A fixed rig of 9 cameras (`RIG`),
  each with its own colour response, sees one face whose head sits with a
  small random pose. Its geometry lies partly outside the fitted space:
  every identity mode of the model, plus fine surface detail (random bumps
  and forehead wrinkles) displaced along the normal. Skin has a
  view-dependent Blinn-Phong highlight (the non-Lambertian part), and the
  landmarks carry detector-like noise. The method trains on its images and
  noisy landmarks only, plus an identity pseudo-label standing in for the
  paper's regressor (Tran et al.): the true first `fit_identity`
  coefficients plus N(0, 0.25^2) noise.
- "test": real-like faces (the same generator, a disjoint index range) with
  one of the 7 basic emotions or neutral (`EMOTION_NAMES`, index % 8) at
  intensity U(0.6, 1), for evaluation only: exact depth, specular masks,
  3D landmarks and the depth of the best least-squares fit of the fitted
  3DMM to the true mesh (what "beyond the 3DMM" can win).
- "florence": neutral real-like faces in 20 poses each (`FLORENCE_POSES`:
  yaw -45..45 in 10 steps at pitch -10 and +10), the Florence protocol.

Fields (V views; shapes per example):

| field | shape | meaning |
|---|---|---|
| image | (V, H, W, 3) uint8 | the rendered views over random backgrounds |
| mask | (V, H, W) uint8 | the face region (where depth is defined) |
| depth | (V, H, W) float32 | camera depth -z_camera, 0 off the face |
| specular | (V, H, W) uint8 | 1 where the highlight adds more than 0.05 (real-like kinds) |
| landmarks | (V, 68, 2) float32 | 2D landmarks in pixels (noisy for real-like kinds) |
| landmarks_3d | (68, 3) float32 | landmark positions in the face frame |
| rotation, translation | (V, 3, 3), (V, 3) | world(face)-to-camera pose |
| camera | (V,) int32 | rig camera index (-1 off the rig) |
| identity, expression | (Ki,), (Ke,) | the model's true coefficients (all modes) |
| identity_estimate | (fit_identity,) | the identity pseudo-label |
| emotion | () int32 | index into EMOTION_NAMES, -1 when none |
| fit_depth | (V, H, W) float32 | best-fit 3DMM depth ("test" only; zeros elsewhere) |
| focal | () float32 | the fixed focal length in pixels |
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxface.data.synthetic import (
  EMOTION_NAMES,
  emotion_vector,
  example_rng,
  image_renderer,
  random_background,
)
from jaxface.geometry.camera import PerspectiveCamera, focal_from_fov
from jaxface.geometry.mesh import vertex_normals
from jaxface.geometry.transforms import euler_to_matrix
from jaxface.morphable.model import MorphableModel
from jaxface.render.render import depth_map
from jaxface.render.shading import DC_FACTOR

KINDS = ("synthetic", "real", "test", "florence")
NOSE_TIP = 30  # iBUG-68 index of the nose tip
#: Vertical field of view of every camera; with the face 4-4.8 face heights away it fills ~80%.
FIELD_OF_VIEW = 16.0
#: Camera distance in face heights (the nose tip is at this distance on the camera axis).
DISTANCE_RANGE = (4.0, 4.8)
SYNTHETIC_VIEWS = 10
#: The Multi-PIE-like rig: (elevation, azimuth) in degrees of its 9 cameras (no profiles).
RIG = (
  (0, -45), (0, -30), (0, -15), (0, 0), (0, 15), (0, 30), (0, 45), (15, -30), (15, 30),
)  # fmt: skip
FLORENCE_POSES = tuple((pitch, yaw) for pitch in (-10, 10) for yaw in np.linspace(-45, 45, 10))
SPECULAR_THRESHOLD = 0.05
_RIG_SEED = 20200518  # the rig's colour responses are fixed for every dataset


def focal_length(image_size: int) -> float:
  """The fixed focal length in pixels of every camera at this image size."""
  return focal_from_fov(FIELD_OF_VIEW, image_size)


def camera_responses() -> np.ndarray:
  """(9, 3, 3) per rig camera: rows gain (3,), offset (3,), gamma (3,) of its colour response."""
  rng = np.random.default_rng(_RIG_SEED)
  gain = rng.uniform(0.85, 1.15, (len(RIG), 3))
  offset = rng.uniform(-0.03, 0.03, (len(RIG), 3))
  gamma = rng.uniform(0.85, 1.15, (len(RIG), 3))
  return np.stack([gain, offset, gamma], axis=1)


def _grid_angle(rng: np.random.Generator, limit: int) -> float:
  return float(rng.choice(np.arange(-limit, limit + 1, 5)))


def _face_frame(model: MorphableModel) -> tuple[np.ndarray, float]:
  """The nose tip of the mean face (the origin of the face frame) and the face height."""
  vertices = np.asarray(model.vertices)
  return vertices[np.asarray(model.landmarks)[NOSE_TIP]], float(np.ptp(vertices[:, 1]))


def surface_detail(model: MorphableModel, rng: np.random.Generator, strength: float) -> np.ndarray:
  """(V,) normal displacement outside any linear face space: bumps plus forehead wrinkles.

  Heights are fractions of the face height: 6-12 Gaussian bumps of radius
  4-8% and height +/-(0.5-1.5)% and, over the forehead, horizontal wrinkles
  with a 6-9% wavelength and 0.4-0.8% amplitude; `strength` scales all.
  The sizes are chosen so the detail spans several pixels at 64 x 64 (the
  CPU budget's resolution), where a depth map can resolve it at all.
  """
  vertices = np.asarray(model.vertices)
  low, high = vertices.min(0), vertices.max(0)
  unit = (vertices - low) / np.maximum(high - low, 1e-9)  # (V, 3) in [0, 1]
  height = float(high[1] - low[1])
  displacement = np.zeros(len(vertices))
  for _ in range(int(rng.integers(6, 13))):
    centre = unit[rng.integers(len(vertices)), :2]
    radius = rng.uniform(0.04, 0.08)
    amplitude = rng.uniform(0.005, 0.015) * rng.choice([-1.0, 1.0])
    distance2 = ((unit[:, :2] - centre) ** 2).sum(-1)
    displacement += amplitude * np.exp(-distance2 / (2 * radius**2))
  wavelength = rng.uniform(0.06, 0.09)
  forehead = np.clip((unit[:, 1] - 0.72) / 0.06, 0, 1) * np.clip((0.95 - unit[:, 1]) / 0.05, 0, 1)
  forehead *= np.clip(1.0 - np.abs(unit[:, 0] - 0.5) / 0.3, 0, 1)
  wrinkles = np.sin(2 * np.pi * unit[:, 1] / wavelength + rng.uniform(0, 2 * np.pi))
  displacement += rng.uniform(0.004, 0.008) * forehead * wrinkles
  return (strength * height * displacement).astype(np.float32)


def _displace(model: MorphableModel, vertices: np.ndarray, detail: np.ndarray) -> np.ndarray:
  normals = np.asarray(vertex_normals(jnp.asarray(vertices), model.triangles))
  return vertices + detail[:, None] * normals


def _sh(rng: np.random.Generator) -> np.ndarray:
  sh = np.zeros((3, 9), np.float32)
  sh[:, 0] = rng.uniform(0.7, 1.1) / DC_FACTOR * rng.uniform(0.9, 1.1, 3)
  sh[:, 1:4] = rng.normal(0.0, 0.15, (1, 3)) + rng.normal(0.0, 0.02, (3, 3))
  sh[:, 4:] = rng.normal(0.0, 0.05, (1, 5))
  return sh.reshape(27)


def _specular(normals, depth, mask, rotation, focal, light, shininess, strength) -> np.ndarray:
  """(H, W) Blinn-Phong highlight of a world-fixed directional light, in the camera frame."""
  height, width = depth.shape
  rows, cols = np.mgrid[0:height, 0:width] + 0.5
  rays = np.stack(
    [(cols - width / 2) / focal, -(rows - height / 2) / focal, -np.ones_like(rows)], -1
  )
  to_eye = -rays / np.linalg.norm(rays, axis=-1, keepdims=True)
  to_light = rotation @ light
  half = to_eye + to_light
  half /= np.linalg.norm(half, axis=-1, keepdims=True)
  facing = (normals @ to_light) > 0
  highlight = np.clip((normals * half).sum(-1), 0, 1) ** shininess
  return np.where(mask & facing, strength * highlight, 0.0)


def _quantise(image: np.ndarray) -> np.ndarray:
  return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _views(kind: str, rng: np.random.Generator):
  """(elevation, azimuth, roll) per view in degrees and each view's rig camera (-1 off the rig)."""
  if kind == "synthetic":
    angles = [
      (_grid_angle(rng, 30), _grid_angle(rng, 45), _grid_angle(rng, 20))
      for _ in range(SYNTHETIC_VIEWS)
    ]
    return np.asarray(angles, np.float32), np.full(SYNTHETIC_VIEWS, -1, np.int32)
  if kind == "florence":
    angles = [(pitch, yaw, 0.0) for pitch, yaw in FLORENCE_POSES]
    return np.asarray(angles, np.float32), np.full(len(angles), -1, np.int32)
  head = rng.normal(0.0, 3.0, 3)  # the subject's own small head pose, seen by every camera
  angles = [(elevation + head[0], azimuth + head[1], head[2]) for elevation, azimuth in RIG]
  return np.asarray(angles, np.float32), np.arange(len(RIG), dtype=np.int32)


def _expression(model, kind, rng, index, fit_expression) -> tuple[np.ndarray, int]:
  if kind == "synthetic":
    expression = np.zeros(model.num_expression, np.float32)
    active = rng.choice(fit_expression, size=min(4, fit_expression), replace=False)
    expression[active] = rng.uniform(0.0, 0.8, len(active))
    return expression, -1
  if kind == "florence":
    return np.zeros(model.num_expression, np.float32), EMOTION_NAMES.index("neutral")
  emotion = index % len(EMOTION_NAMES) if kind == "test" else int(rng.integers(len(EMOTION_NAMES)))
  intensity = rng.uniform(0.6, 1.0)
  expression = intensity * emotion_vector(model, EMOTION_NAMES[emotion])
  if kind == "real":  # unlabelled training faces also move off the 8 prototypes
    expression = expression + np.abs(rng.normal(0.0, 0.1, model.num_expression)) * (
      rng.uniform(size=model.num_expression) < 0.1
    )
  return np.clip(expression, 0.0, 1.0).astype(np.float32), emotion


def _best_fit(model, vertices, origin, fit_identity, fit_expression) -> np.ndarray:
  """The least-squares fit of the fitted 3DMM (first modes) to a mesh, in the face frame."""
  basis = np.concatenate(
    [
      np.asarray(model.identity_basis)[:fit_identity],
      np.asarray(model.expression_basis)[:fit_expression],
    ]
  ).reshape(fit_identity + fit_expression, -1)  # (K, V*3)
  residual = (vertices + origin - np.asarray(model.vertices)).reshape(-1)
  coefficients, *_ = np.linalg.lstsq(basis.T, residual, rcond=None)
  return (np.asarray(model.vertices) + (coefficients @ basis).reshape(-1, 3) - origin).astype(
    np.float32
  )


def face_views_example(
  model: MorphableModel,
  index: int,
  *,
  seed: int,
  face_kind: str,
  image_size: int,
  fit_identity: int,
  fit_expression: int,
  detail_strength: float = 1.0,
  specular_strength: float = 1.0,
  landmark_noise: float = 0.01,
) -> dict[str, np.ndarray]:
  """One face seen from several views (see the module docstring for kinds and fields).

  Args:
    model: the full morphable model (every mode).
    index: the example's index; seed: the dataset's generation seed.
    face_kind: one of `KINDS`.
    image_size: the square images' side in pixels.
    fit_identity, fit_expression: the modes of the morphable model 3DMMNet
      fits (synthetic faces stay inside them; real-like ones do not).
    detail_strength: scale of the surface detail of real-like faces (0: none).
    specular_strength: scale of the highlight of real-like faces (0: Lambertian).
    landmark_noise: std of the real-like landmark noise as a fraction of
      the image size (the jaw line gets twice as much).
  """
  if face_kind not in KINDS:
    raise ValueError(f"face_kind must be one of {KINDS}, got {face_kind!r}")
  kind = face_kind
  if not 1 <= fit_identity <= model.num_identity or not 0 <= fit_expression <= model.num_expression:
    raise ValueError(
      f"fit_identity={fit_identity} / fit_expression={fit_expression} must be within the "
      f"model's {model.num_identity} / {model.num_expression} modes"
    )
  real_like = kind != "synthetic"
  rng = example_rng(seed, index, 8)
  identity = rng.standard_normal(model.num_identity).astype(np.float32)
  if not real_like:
    identity[fit_identity:] = 0.0
  expression, emotion = _expression(model, kind, rng, index, fit_expression)
  origin, face_height = _face_frame(model)
  vertices = np.asarray(model.shape(identity, expression)) - origin
  if real_like and detail_strength > 0:
    # Its own stream: the same face with and without detail differs by the detail alone.
    detail = surface_detail(model, example_rng(seed, index, 9), detail_strength)
    vertices = _displace(model, vertices, detail)
  fit = _best_fit(model, vertices, origin, fit_identity, fit_expression) if kind == "test" else None
  albedo = jnp.clip(model.albedo(0.8 * rng.standard_normal(model.num_albedo)), 0.0, 1.0)
  sh = _sh(rng)
  light = rng.normal(0.0, 1.0, 3) * np.array([1.0, 1.0, 0.3]) + np.array([0.0, 0.3, 1.0])
  light /= np.linalg.norm(light)
  shininess, highlight = rng.uniform(15.0, 50.0), rng.uniform(0.25, 0.6) * specular_strength
  focal = np.float32(focal_length(image_size))
  distance = face_height * rng.uniform(*DISTANCE_RANGE)
  angles, cameras = _views(kind, rng)
  responses = camera_responses()
  draw = image_renderer(model, image_size, "world")
  landmarks_3d = vertices[np.asarray(model.landmarks)]
  fields = {k: [] for k in ("image", "mask", "depth", "specular", "landmarks", "rotation",
                            "translation", "fit_depth")}  # fmt: skip
  for (elevation, azimuth, roll), camera_index in zip(angles, cameras, strict=True):
    rotation = np.asarray(euler_to_matrix(np.deg2rad(np.array([elevation, azimuth, roll]))))
    translation = np.array(
      [rng.normal(0, 0.02) * face_height, rng.normal(0, 0.02) * face_height, -distance], np.float32
    )
    out, pixels = draw(vertices, rotation, translation, focal, albedo, sh)
    mask = np.asarray(out.mask) > 0.5
    depth = np.asarray(out.depth, np.float32)
    image = np.asarray(out.image)
    specular = np.zeros(mask.shape)
    if real_like:
      specular = _specular(
        np.asarray(out.normals), depth, mask, rotation, focal, light, shininess, highlight
      )
      image = image + specular[..., None]
    image = np.where(mask[..., None], image, random_background(rng, image_size))
    if camera_index >= 0:
      gain, offset, gamma = responses[camera_index]
      image = gain * np.clip(image, 0.0, 1.0) ** gamma + offset
    pixels = np.asarray(pixels, np.float32)
    if real_like:
      noise = rng.normal(0.0, landmark_noise * image_size, pixels.shape)
      noise[:17] *= 2.0  # the jaw line is the least certain part of a detector's output
      pixels = pixels + noise.astype(np.float32)
    fit_depth = np.zeros_like(depth)
    if fit is not None:
      camera = PerspectiveCamera(
        jnp.full((2,), focal), jnp.full((2,), image_size / 2.0), rotation, translation
      )
      fit_depth = np.asarray(
        depth_map(fit, model.triangles, camera, (image_size, image_size), near=5.0, far=500.0)[0]
      )
    for key, value in (
      ("image", _quantise(image)), ("mask", mask.astype(np.uint8)), ("depth", depth),
      ("specular", (specular > SPECULAR_THRESHOLD).astype(np.uint8)), ("landmarks", pixels),
      ("rotation", rotation.astype(np.float32)), ("translation", translation),
      ("fit_depth", fit_depth.astype(np.float32)),
    ):  # fmt: skip
      fields[key].append(value)
  estimate = identity[:fit_identity] + rng.normal(0.0, 0.25, fit_identity).astype(np.float32)
  return {
    **{key: np.stack(value) for key, value in fields.items()},
    "landmarks_3d": landmarks_3d.astype(np.float32),
    "camera": cameras,
    "identity": identity,
    "expression": expression,
    "identity_estimate": estimate.astype(np.float32),
    "emotion": np.int32(emotion),
    "focal": focal,
  }


def num_views(kind: str) -> int:
  """Views per example of a kind."""
  return {"synthetic": SYNTHETIC_VIEWS, "florence": len(FLORENCE_POSES)}.get(kind, len(RIG))
