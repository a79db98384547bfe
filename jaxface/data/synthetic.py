"""Synthetic data with exact ground truth, made from any MorphableModel.

Every example is a pure function of (generator settings, seed, index), so a
dataset can be regenerated bit for bit and read by random access.

- `registered_mesh_example`: a registered mesh with an identity label and,
  for a configurable fraction of examples, an expression label among the 7
  basic emotions (+ neutral), each written as ARKit blendshape weights. The
  expression response depends smoothly and non-linearly on identity
  (intensity and blendshape mix vary with the identity code:
  `personal.expression_response`), so decoupling identity from expression
  is not a linear problem. Optionally (setting
  `viseme_fraction`) a third factor, a viseme (mouth shape of a phoneme
  group, `VISEMES`), is added on top, with its own sparse labels.
- `face_image_example`: a rendered face (jaxface's renderer) with its
  identity/expression/albedo coefficients, pose, SH light, 2D/3D landmarks,
  depth, normals, segmentation (background / face / occluder) and random
  occluders over a random background.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxface.data.personal import (
  PersonalRig,
  expression_response,
  personal_albedo,
  personal_rig,
  personal_shape,
)
from jaxface.geometry.camera import PerspectiveCamera, focal_from_fov
from jaxface.geometry.transforms import euler_to_matrix
from jaxface.morphable.model import MorphableModel
from jaxface.render.render import render
from jaxface.render.shading import DC_FACTOR

#: The 7 basic emotions as ARKit blendshape weights (FACS-inspired). A name
#: without _L/_R also drives both sides where a model only has sided modes.
EMOTIONS: dict[str, dict[str, float]] = {
  "neutral": {},
  "happiness": {"mouthSmile_L": 0.8, "mouthSmile_R": 0.8, "cheekSquint_L": 0.5,
                "cheekSquint_R": 0.5, "eyeSquint_L": 0.3, "eyeSquint_R": 0.3},
  "sadness": {"browInnerUp": 0.8, "mouthFrown_L": 0.7, "mouthFrown_R": 0.7, "mouthShrugLower": 0.3},
  "surprise": {"browInnerUp": 0.8, "browOuterUp_L": 0.8, "browOuterUp_R": 0.8, "eyeWide_L": 0.7,
               "eyeWide_R": 0.7, "jawOpen": 0.6},
  "fear": {"browInnerUp": 0.7, "browOuterUp_L": 0.4, "browOuterUp_R": 0.4, "eyeWide_L": 0.8,
           "eyeWide_R": 0.8, "mouthStretch_L": 0.6, "mouthStretch_R": 0.6, "jawOpen": 0.2},
  "anger": {"browDown_L": 0.9, "browDown_R": 0.9, "eyeSquint_L": 0.4, "eyeSquint_R": 0.4,
            "noseSneer_L": 0.3, "noseSneer_R": 0.3, "mouthRollLower": 0.3, "jawForward": 0.2},
  "disgust": {"noseSneer_L": 0.9, "noseSneer_R": 0.9, "mouthUpperUp_L": 0.6, "mouthUpperUp_R": 0.6,
              "browDown_L": 0.3, "browDown_R": 0.3, "cheekSquint_L": 0.3, "cheekSquint_R": 0.3},
  "contempt": {"mouthSmile_L": 0.5, "mouthDimple_L": 0.4},
}  # fmt: skip
EMOTION_NAMES = tuple(EMOTIONS)


#: Visemes (visual counterparts of phoneme groups) as ARKit mouth/jaw
#: blendshape weights. Names resolve like `EMOTIONS` (a name without _L/_R
#: drives both sides where a model only has sided modes); names a model lacks
#: are skipped, so every viseme lists at least one mode of the common ARKit
#: subset (e.g. "mbp" uses mouthRoll* where a model has no mouthClose/Press).
VISEMES: dict[str, dict[str, float]] = {
  "rest": {},
  "aa": {"jawOpen": 0.7, "mouthLowerDown": 0.3},  # "father"
  "oh": {"jawOpen": 0.45, "mouthFunnel": 0.6},  # "go"
  "ou": {"mouthPucker": 0.8, "mouthFunnel": 0.4, "jawOpen": 0.1},  # "you", "w"
  "ee": {"mouthStretch": 0.6, "jawOpen": 0.15, "mouthUpperUp": 0.15},  # "see"
  "mbp": {"mouthClose": 0.5, "mouthPress": 0.6, "mouthRollLower": 0.4,
          "mouthRollUpper": 0.4},  # lips together
  "fv": {"mouthRollLower": 0.7, "mouthUpperUp": 0.4, "jawOpen": 0.05},  # lower lip to teeth
  "ss": {"mouthStretch": 0.35, "mouthUpperUp": 0.2, "mouthLowerDown": 0.2,
         "jawOpen": 0.05},  # teeth nearly closed, "s", "z", "th"
}  # fmt: skip
VISEME_NAMES = tuple(VISEMES)


def _blendshape_vector(model: MorphableModel, weights: dict[str, float]) -> np.ndarray:
  """(Ke,) expression weights of named ARKit blendshapes, with the sided fall-back."""
  names = model.expression_names
  vector = np.zeros(len(names), np.float32)
  for name, weight in weights.items():
    targets = [name] if name in names else [n for n in (name + "_L", name + "_R") if n in names]
    for target in targets:
      vector[names.index(target)] = weight
  return vector


def emotion_vector(model: MorphableModel, emotion: str) -> np.ndarray:
  """(Ke,) expression weights of an emotion for this model's modes."""
  return _blendshape_vector(model, EMOTIONS[emotion])


def viseme_vector(model: MorphableModel, viseme: str) -> np.ndarray:
  """(Ke,) expression weights of a viseme for this model's modes."""
  return _blendshape_vector(model, VISEMES[viseme])


def example_rng(seed: int, index: int, stream: int) -> np.random.Generator:
  """The generator of one example's random `stream` (streams keep draws independent)."""
  return np.random.default_rng((seed, stream, index))


def identity_codes(model: MorphableModel, num_identities: int, seed: int) -> np.ndarray:
  """(N, Ki) identity coefficients of the dataset's identities."""
  return (
    example_rng(seed, 0, 1).standard_normal((num_identities, model.num_identity)).astype(np.float32)
  )


_IDENTITY_RIGS: dict[tuple, tuple[MorphableModel, PersonalRig]] = {}
#: Memory the cached identity rigs may take (ICT: 6 MB per identity).
_IDENTITY_RIG_BYTES = 2**30


def _identity_rig(model, seed: int, num_identities: int, identity: int, strength: float):
  """The shape rig of one dataset identity, computed once (many meshes share an identity)."""
  key = (id(model), seed, num_identities, identity, strength)
  cached = _IDENTITY_RIGS.get(key)
  if cached is None or cached[0] is not model:
    rig_bytes = 12 * model.num_expression * model.num_vertices
    if len(_IDENTITY_RIGS) * rig_bytes > _IDENTITY_RIG_BYTES:
      _IDENTITY_RIGS.clear()
    code = identity_codes(model, num_identities, seed)[identity]
    cached = (model, personal_rig(model, code, shape_strength=strength, albedo_strength=0.0))
    _IDENTITY_RIGS[key] = cached
  return cached[1]


def registered_mesh_example(
  model: MorphableModel,
  index: int,
  *,
  seed: int,
  num_identities: int,
  labelled_fraction: float,
  viseme_fraction: float = 0.0,
  viseme_labelled_fraction: float = 0.68,
  personal_strength: float = 0.0,
) -> dict[str, np.ndarray]:
  """One registered mesh: vertices (V, 3), identity label, expression label (-1 if unlabelled).

  With `personal_strength` > 0 each identity makes its expressions with its
  own blendshapes B_k + dB_k (`personal.personal_rig`, shape only, at that
  strength): expression geometry that depends on identity in a way no
  separable identity + expression linear model expresses. 0 is the generic rig.

  With `viseme_fraction` > 0, a mesh gets a viseme (any of `VISEME_NAMES`,
  "rest" included) with that probability, else "rest"; its weights, scaled
  by a random intensity, are added to the expression weights (clipped to
  [0, 1]). The example then also holds `viseme_true` (int32 index into
  `VISEME_NAMES`) and `viseme_label` (the same, or -1 for the unlabelled
  1 - `viseme_labelled_fraction`). Viseme draws use their own random stream,
  so identity and emotion draws do not depend on the viseme settings, and
  `viseme_fraction=0` gives exactly the viseme-free examples.
  """
  rng = example_rng(seed, index, 2)
  identity = int(rng.integers(num_identities))
  code = identity_codes(model, num_identities, seed)[identity]
  emotion = int(rng.integers(len(EMOTION_NAMES)))
  intensity = rng.uniform(0.5, 1.0)
  weights = emotion_vector(model, EMOTION_NAMES[emotion])
  expression = expression_response(code, weights, intensity)
  labelled = rng.uniform() < labelled_fraction
  visemes = {}
  if viseme_fraction > 0:
    viseme_rng = example_rng(seed, index, 8)
    # A fixed number of draws, so changing a fraction changes nothing else.
    has_viseme = viseme_rng.uniform() < viseme_fraction
    drawn = int(viseme_rng.integers(len(VISEME_NAMES)))
    viseme = drawn if has_viseme else VISEME_NAMES.index("rest")
    viseme_intensity = viseme_rng.uniform(0.6, 1.0)
    viseme_labelled = viseme_rng.uniform() < viseme_labelled_fraction
    shape = viseme_intensity * viseme_vector(model, VISEME_NAMES[viseme])
    expression = np.clip(expression + shape, 0.0, 1.0)
    visemes = {
      "viseme_label": np.int32(viseme if viseme_labelled else -1),
      "viseme_true": np.int32(viseme),
    }
  if personal_strength > 0:
    rig = _identity_rig(model, seed, num_identities, identity, personal_strength)
    vertices = personal_shape(model, rig, code, expression)
  else:
    vertices = np.asarray(model.shape(code, expression.astype(np.float32)))
  return {
    "vertices": vertices.astype(np.float32),
    "identity_label": np.int32(identity),
    "expression_label": np.int32(emotion if labelled else -1),
    "expression_true": np.int32(emotion),
    "identity": code,
    "expression": expression.astype(np.float32),
    **visemes,
  }


_RENDERERS: dict[tuple, tuple[MorphableModel, object]] = {}


def image_renderer(model: MorphableModel, image_size: int, sh_frame: str = "camera"):
  """A jitted renderer of one face image for a model and size (compiled once)."""
  key = (id(model), image_size, sh_frame)
  cached = _RENDERERS.get(key)
  if cached is not None and cached[0] is model:
    return cached[1]
  draw = _build_image_renderer(model, image_size, sh_frame)
  _RENDERERS[key] = (model, draw)
  return draw


def _build_image_renderer(model: MorphableModel, image_size: int, sh_frame: str):

  @jax.jit
  def draw(vertices, rotation, translation, focal, albedo, sh):
    camera = PerspectiveCamera(
      jnp.stack([focal, focal]), jnp.full((2,), image_size / 2.0), rotation, translation
    )
    out = render(
      vertices, model.triangles, camera, (image_size, image_size), uv=model.uv,
      triangle_uv=model.triangle_uv, albedo=albedo, sh_coefficients=sh, near=5.0, far=500.0,
      sh_frame=sh_frame,
    )  # fmt: skip
    pixels, _ = camera.project(vertices[model.landmarks])
    return out, pixels

  return draw


def sample_scene(
  model: MorphableModel, index: int, seed: int, image_size: int, yaw_range: float = 45.0
):
  """Ground-truth parameters of one face image (everything but the pixels)."""
  rng = example_rng(seed, index, 3)
  expression = np.zeros(model.num_expression, np.float32)
  active = rng.choice(model.num_expression, size=min(4, model.num_expression), replace=False)
  expression[active] = rng.uniform(0.0, 0.8, len(active))
  pose = np.deg2rad(rng.uniform([-20, -yaw_range, -10], [20, yaw_range, 10])).astype(np.float32)
  sh = np.zeros((3, 9), np.float32)
  sh[:, 0] = rng.uniform(0.7, 1.1) / DC_FACTOR * rng.uniform(0.9, 1.1, 3)
  sh[:, 1:4] = rng.normal(0.0, 0.15, (1, 3)) + rng.normal(0.0, 0.02, (3, 3))
  sh[:, 4:] = rng.normal(0.0, 0.05, (1, 5))
  extent = float(np.ptp(np.asarray(model.vertices)[:, 1]))
  return {
    "identity": rng.standard_normal(model.num_identity).astype(np.float32),
    "expression": expression,
    "albedo_coefficients": (0.8 * rng.standard_normal(model.num_albedo)).astype(np.float32),
    "pose": pose,  # (pitch, yaw, roll)
    "translation": extent * np.array(
      [rng.normal(0, 0.03), rng.normal(0, 0.03), -rng.uniform(4.0, 4.8)], np.float32
    ),
    "focal": np.float32(focal_from_fov(rng.uniform(14.0, 18.0), image_size)),
    "sh": sh.reshape(27),
  }  # fmt: skip


def render_scene(model: MorphableModel, scene: dict, image_size: int, sh_frame: str = "camera"):
  """Renders the face of a scene: (RenderOutput, landmarks (68, 2) pixels).

  The face is centred at the origin; `scene["pose"]` (pitch, yaw, roll) is
  the world-to-camera rotation and `scene["translation"]` the translation.
  A scene with a `"rig"` (`personal.PersonalRig`) is the person's own
  expression geometry and albedo rather than the generic rig's.
  """
  rig = scene.get("rig")
  if rig is None:
    vertices = model.shape(scene["identity"], scene["expression"])
    albedo = jnp.clip(model.albedo(scene["albedo_coefficients"]), 0.0, 1.0)
  else:
    vertices = personal_shape(model, rig, scene["identity"], scene["expression"])
    albedo = personal_albedo(model, rig, scene["albedo_coefficients"], scene["expression"])
  vertices = vertices - jnp.asarray(np.asarray(model.vertices).mean(axis=0))
  draw = image_renderer(model, image_size, sh_frame)
  return draw(
    vertices,
    euler_to_matrix(scene["pose"]),
    scene["translation"],
    scene["focal"],
    albedo,
    scene["sh"],
  )


def random_background(rng: np.random.Generator, size: int) -> np.ndarray:
  """A smooth random colour field with some texture."""
  corners = rng.uniform(0.0, 1.0, (2, 2, 3))
  t = np.linspace(0.0, 1.0, size)
  top = corners[0, 0] + t[:, None] * (corners[0, 1] - corners[0, 0])
  bottom = corners[1, 0] + t[:, None] * (corners[1, 1] - corners[1, 0])
  field = top[None] + t[:, None, None] * (bottom - top)[None]
  frequency = rng.uniform(2.0, 12.0, 2)
  stripes = (
    0.08
    * np.sin(frequency[0] * 2 * np.pi * t)[:, None]
    * np.cos(frequency[1] * 2 * np.pi * t)[None]
  )
  return np.clip(field + stripes[..., None], 0.0, 1.0)


def _occluders(
  rng: np.random.Generator, size: int, face: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray]:
  """Random rectangles and ellipses over the face: colour image and mask."""
  colours = np.zeros((size, size, 3))
  mask = np.zeros((size, size), bool)
  rows, cols = np.nonzero(face)
  if len(rows) == 0:
    return colours, mask
  yy, xx = np.mgrid[0:size, 0:size]
  for _ in range(count):
    centre = rng.integers(len(rows))
    cy, cx = rows[centre], cols[centre]
    half_h, half_w = rng.uniform(0.05, 0.18, 2) * size
    if rng.uniform() < 0.5:
      shape = (np.abs(yy - cy) < half_h) & (np.abs(xx - cx) < half_w)
    else:
      shape = ((yy - cy) / half_h) ** 2 + ((xx - cx) / half_w) ** 2 < 1.0
    colours[shape] = rng.uniform(0.0, 1.0, 3)
    mask |= shape
  return colours, mask


def face_image_example(
  model: MorphableModel, index: int, *, seed: int, image_size: int, max_occluders: int = 2
) -> dict[str, np.ndarray]:
  """One synthetic face image with exact ground truth (see module docstring)."""
  scene = sample_scene(model, index, seed, image_size)
  out, landmarks = render_scene(model, scene, image_size)
  rng = example_rng(seed, index, 4)
  face = np.asarray(out.mask) > 0.5
  image = np.where(face[..., None], np.asarray(out.image), random_background(rng, image_size))
  occluder_colours, occluded = _occluders(
    rng, image_size, face, int(rng.integers(0, max_occluders + 1))
  )
  image = np.where(occluded[..., None], occluder_colours, image)
  segmentation = np.where(occluded, 2, np.where(face, 1, 0)).astype(np.uint8)
  vertices = np.asarray(model.shape(scene["identity"], scene["expression"])) - np.asarray(
    model.vertices
  ).mean(0)
  return {
    "image": (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8),
    "segmentation": segmentation,  # 0 background, 1 visible face, 2 occluder
    "face_mask": face.astype(np.uint8),  # the face before occlusion
    "depth": np.asarray(out.depth, np.float32),
    "normals": np.asarray(out.normals, np.float32),
    "landmarks": np.asarray(landmarks, np.float32),  # (68, 2) pixels
    "landmarks_3d": vertices[np.asarray(model.landmarks)].astype(np.float32),
    **{key: np.asarray(value, np.float32) for key, value in scene.items()},
  }


def multiview_pair_example(
  model: MorphableModel, index: int, *, seed: int, image_size: int
) -> dict:
  """Two views of one face at one instant under one world-fixed SH light (dataset (c)).

  Each view's camera turns by its own azimuth (+/-45 deg), elevation
  (+/-30 deg) and roll (+/-20 deg); everything else is shared, so a pixel
  of view 1 and its correspondence in view 2 have the same colour.
  """
  scene = sample_scene(model, index, seed, image_size)
  rng = example_rng(seed, index, 5)
  example = {
    key: scene[key] for key in ("identity", "expression", "albedo_coefficients", "sh", "focal")
  }
  for view in (1, 2):
    pose = np.deg2rad(rng.uniform([-30, -45, -20], [30, 45, 20])).astype(np.float32)
    view_scene = dict(scene, pose=pose)
    out, landmarks = render_scene(model, view_scene, image_size, sh_frame="world")
    face = np.asarray(out.mask) > 0.5
    image = np.where(face[..., None], np.asarray(out.image), random_background(rng, image_size))
    example[f"image_{view}"] = (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    example[f"mask_{view}"] = face.astype(np.uint8)
    example[f"depth_{view}"] = np.asarray(out.depth, np.float32)
    example[f"landmarks_{view}"] = np.asarray(landmarks, np.float32)
    example[f"pose_{view}"] = pose
    example[f"translation_{view}"] = scene["translation"]
  return {key: np.asarray(value) for key, value in example.items()}


def sequence_example(
  model: MorphableModel,
  index: int,
  *,
  seed: int,
  image_size: int,
  num_frames: int,
  personal_strength: float = 0.0,
  expression_amplitude: float = 1.0,
) -> dict:
  """Frames of one person with smoothly varying expression, pose and light (dataset (d)).

  About 6 blendshapes of the person are active; each follows a clipped sine
  reaching `expression_amplitude` (ARKit weights span [0, 1]; 1 is the full
  expression, e.g. a wide-open jaw). With `personal_strength` > 0 the
  person's expressions use their own rig (`personal.personal_rig` at that
  shape and albedo strength): identity-specific blendshape corrections and
  expression-dependent albedo. 0 is the generic rig.
  """
  if not 0.0 < expression_amplitude <= 1.0:
    raise ValueError(f"expression_amplitude must be in (0, 1], got {expression_amplitude}")
  base = sample_scene(model, index, seed, image_size)
  if personal_strength > 0:
    base["rig"] = personal_rig(
      model, base["identity"], shape_strength=personal_strength, albedo_strength=personal_strength
    )
  rng = example_rng(seed, index, 6)
  time = np.linspace(0.0, 1.0, num_frames)[:, None]
  phases = rng.uniform(0, 2 * np.pi, (2, model.num_expression))
  active = rng.uniform(size=model.num_expression) < min(1.0, 6.0 / max(model.num_expression, 1))
  expression = active * np.clip(
    expression_amplitude * np.sin(2 * np.pi * time * rng.uniform(0.5, 1.5) + phases[0]), 0, 1
  )
  pose_start = np.deg2rad(rng.uniform([-15, -40, -8], [15, 40, 8]))
  pose_end = np.deg2rad(rng.uniform([-15, -40, -8], [15, 40, 8]))
  poses = (pose_start + time * (pose_end - pose_start)).astype(np.float32)
  light_drift = rng.normal(0, 0.1, 27).astype(np.float32)
  frames = {key: [] for key in ("image", "segmentation", "landmarks", "expression", "pose", "sh")}
  for frame in range(num_frames):
    sh = base["sh"] + float(time[frame, 0]) * light_drift * (np.arange(27) % 9 != 0)
    scene = dict(base, expression=expression[frame].astype(np.float32), pose=poses[frame], sh=sh)
    out, landmarks = render_scene(model, scene, image_size)
    face = np.asarray(out.mask) > 0.5
    image = np.where(
      face[..., None],
      np.asarray(out.image),
      random_background(example_rng(seed, index, 7), image_size),
    )
    frames["image"].append((np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8))
    frames["segmentation"].append(face.astype(np.uint8))
    frames["landmarks"].append(np.asarray(landmarks, np.float32))
    frames["expression"].append(scene["expression"])
    frames["pose"].append(poses[frame])
    frames["sh"].append(sh.astype(np.float32))
  result = {key: np.stack(value) for key, value in frames.items()}
  result.update(identity=base["identity"], albedo_coefficients=base["albedo_coefficients"],
                translation=base["translation"], focal=np.asarray(base["focal"]))  # fmt: skip
  return result
