"""A face model built by code: always available, no files, deterministic.

The neutral face is a smooth, bilaterally symmetric surface on a regular
UV grid (`GRID_COLUMNS x GRID_ROWS` vertices): an elliptic-cylinder shell
whose width and depth profiles follow the head, plus anatomical features
(forehead, brow ridge, eye sockets and lids, nose, cheekbones, nasolabial
folds, lips, chin, jaw) written as smooth bumps and grooves in the frontal
(x, y) plane, in cm, with +z towards the viewer and +x the face's own left.

Identity modes are PCA over sampled anatomical variations (feature sizes,
proportions, positions, and random smooth bumps), each sample paired with its
mirror image so the mean is exactly symmetric; bases are scaled to
unit-variance weights. Expression modes are ARKit-named displacement fields
(`_R` modes are exact mirrors of `_L`). Every vertex keeps its anatomical
meaning across identities because features are evaluated at each vertex's
canonical position and variations move whole regions.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.interpolate import PchipInterpolator

from jaxface.geometry.symmetry import mirror_vertex_map
from jaxface.morphable.landmarks import CANONICAL_LANDMARKS
from jaxface.morphable.model import MorphableModel, as_model

GRID_COLUMNS = 81  # odd, so the midline is a vertex column
GRID_ROWS = 97
NUM_IDENTITY = 50
NUM_ALBEDO = 20
IDENTITY_SAMPLES = 300
SEED = 20261123
_HALF_ANGLE = 1.3  # radians of the cylinder wrapped by the face surface

EXPRESSION_NAMES = (
    "browDown_L", "browDown_R", "browInnerUp", "browOuterUp_L", "browOuterUp_R",
    "cheekPuff", "cheekSquint_L", "cheekSquint_R",
    "eyeBlink_L", "eyeBlink_R", "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R",
    "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthDimple_L", "mouthDimple_R", "mouthFrown_L", "mouthFrown_R", "mouthFunnel",
    "mouthLeft", "mouthLowerDown_L", "mouthLowerDown_R", "mouthPucker", "mouthRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthSmile_L", "mouthSmile_R", "mouthStretch_L", "mouthStretch_R",
    "mouthUpperUp_L", "mouthUpperUp_R", "noseSneer_L", "noseSneer_R",
)  # fmt: skip


def _gauss(x, y, cx, cy, sx, sy):
  return np.exp(-0.5 * ((x - cx) / sx) ** 2 - 0.5 * ((y - cy) / sy) ** 2)


def _sigmoid(x):
  return 0.5 * (1.0 + np.tanh(0.5 * x))


def _ridge(x, y, curve_x, curve_y, sigma):
  """exp(-d^2 / 2 sigma^2) with d the distance from (x, y) to a polyline."""
  points = np.stack([x.ravel(), y.ravel()], axis=1)  # (N, 2)
  start = np.stack([curve_x[:-1], curve_y[:-1]], axis=1)  # (S, 2)
  delta = np.stack([np.diff(curve_x), np.diff(curve_y)], axis=1)
  rel = points[:, None, :] - start[None]  # (N, S, 2)
  t = np.clip(np.sum(rel * delta, -1) / np.sum(delta * delta, -1), 0.0, 1.0)
  closest = start[None] + t[..., None] * delta[None]
  distance = np.min(np.linalg.norm(points[:, None, :] - closest, axis=-1), axis=1)
  return np.exp(-0.5 * (distance / sigma) ** 2).reshape(x.shape)


def grid_topology() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Canonical grid coordinates s (V,), t (V,) and mirror-symmetric triangles (F, 3).

  s in [-1, 1] runs from the face's right to its left, t in [0, 1] from the
  chin to the forehead; vertex id = row * GRID_COLUMNS + column.
  """
  cols, rows = GRID_COLUMNS, GRID_ROWS
  column, row = np.meshgrid(np.arange(cols), np.arange(rows), indexing="xy")
  s = (2.0 * column / (cols - 1) - 1.0).ravel()
  t = (row / (rows - 1)).ravel()
  triangles = []
  mid = (cols - 1) // 2
  for r in range(rows - 1):
    for c in range(cols - 1):
      a, b = r * cols + c, r * cols + c + 1
      d, e = (r + 1) * cols + c, (r + 1) * cols + c + 1
      # Diagonals point away from the midline on both sides, so the
      # triangulation is its own mirror image.
      if c < mid:
        triangles += [(a, b, e), (a, e, d)]
      else:
        triangles += [(a, b, d), (b, e, d)]
  return s, t, np.asarray(triangles, np.int32)


_HALF_WIDTH = PchipInterpolator(
  [-10.5, -9.0, -7.0, -5.0, -3.0, 0.0, 3.0, 6.0, 9.0, 11.5],
  [2.9, 3.8, 5.1, 6.2, 6.8, 7.25, 7.35, 6.95, 6.2, 5.2],
)
_FRONT_DEPTH = PchipInterpolator(
  [-10.5, -9.0, -7.5, -5.0, -3.5, -1.0, 1.5, 3.5, 6.0, 9.0, 11.5],
  [7.6, 8.8, 9.7, 10.2, 10.5, 10.45, 10.2, 10.15, 10.45, 10.0, 8.9],
)


def _canonical_frontal(s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Frontal (x, y) of the base shell at canonical grid coordinates."""
  y_bottom = -9.6 + 2.0 * s**2 + 3.2 * s**4
  y_top = 11.0 - 1.6 * s**2
  y = y_bottom + t * (y_top - y_bottom)
  x = _HALF_WIDTH(y) * np.sin(s * _HALF_ANGLE)
  return x, y


@functools.lru_cache(maxsize=1)
def _grooves() -> dict[str, np.ndarray]:
  """The curve-shaped features of the canonical grid (independent of identity)."""
  x, y = _canonical_frontal(*grid_topology()[:2])
  ax = np.abs(x)
  fissure_x = np.linspace(1.85, 4.4, 24)
  arc = np.sin(np.pi * (fissure_x - 1.85) / 2.55)
  fissure_y = 3.3 + 0.15 * (fissure_x - 1.85) / 2.55 + 0.18 * arc
  fold_x, fold_y = np.linspace(1.55, 3.0, 16), np.linspace(-0.9, -4.0, 16)
  mouth_x = np.linspace(-2.5, 2.5, 41)
  return {
    "fissure": _ridge(ax, y, fissure_x, fissure_y, 0.09),
    "lid_crease": _ridge(ax, y, fissure_x, fissure_y + 0.5 + 0.1 * arc, 0.12),
    "nasolabial": _ridge(ax, y, fold_x, fold_y, 0.3),
    "mouth_line": _ridge(x, y, mouth_x, -3.45 + 0.03 * (mouth_x / 2.45) ** 2, 0.1),
  }


def _features(x: np.ndarray, y: np.ndarray, p: dict[str, float]) -> np.ndarray:
  """Height of the anatomical features above the shell at the grid's frontal (x, y), cm."""
  ax = np.abs(x)
  grooves = _grooves()
  h = np.zeros_like(x)
  # Forehead bossing and temples.
  h += 0.2 * p["forehead"] * _gauss(ax, y, 2.6, 8.0, 1.8, 1.6)
  h -= 0.35 * p["temples"] * _gauss(ax, y, 6.0, 5.0, 1.1, 1.3)
  # Brow ridge: a band over the eyes, strongest above the inner brows.
  band = np.exp(-0.5 * ((y - 5.35) / 0.75) ** 2) * np.exp(
    -0.5 * (np.maximum(ax - 3.8, 0) / 1.1) ** 2
  )
  h += 0.55 * p["brow_ridge"] * band
  h -= 0.25 * _gauss(ax, y, 0.0, 3.95, 0.9, 0.55)  # nasion
  # Eye sockets, eyeballs under the lids, the lid fissure and the upper lid crease.
  h -= 1.3 * p["eye_socket"] * _gauss(ax, y, 3.1, 3.5, 1.55, 1.15)
  h += 0.75 * p["eyeball"] * _gauss(ax, y, 3.1, 3.45, 1.05, 0.62)
  h -= 0.14 * grooves["fissure"]
  h -= 0.1 * grooves["lid_crease"]
  # Nose: bridge growing from the nasion to the tip, tip bulb, wings, nostrils.
  bridge_height = (
    np.interp(y, [-0.6, 0.4, 1.5, 2.6, 3.9], [1.6, 2.1, 1.6, 1.0, 0.35]) * p["nose_height"]
  )
  bridge_width = np.interp(y, [-0.6, 1.0, 3.9], [0.75, 0.6, 0.5]) * p["nose_width"]
  below_tip = _sigmoid((y + 0.75) / 0.17)
  above_nasion = _sigmoid((4.2 - y) / 0.25)
  h += bridge_height * np.exp(-0.5 * (x / bridge_width) ** 2) * below_tip * above_nasion
  h += 0.45 * p["nose_tip"] * _gauss(x, y, 0.0, 0.0, 0.62 * p["nose_width"], 0.55)
  h += 0.85 * p["nose_wings"] * _gauss(ax, y, 1.2 * p["nose_width"], -0.75, 0.5, 0.48)
  h -= 0.45 * _gauss(ax, y, 0.6 * p["nose_width"], -1.0, 0.26, 0.2)
  # Cheekbones, nasolabial folds and the cheek fat beside them.
  h += 0.6 * p["cheekbones"] * _gauss(ax, y, 4.4, 0.9, 1.7, 1.3)
  h -= 0.22 * p["nasolabial"] * grooves["nasolabial"]
  h += 0.2 * p["nasolabial"] * _gauss(ax, y, 3.3, -2.0, 0.9, 1.1)
  # Mouth: dental arch, upper and lower lips, the mouth line, philtrum.
  h += 0.45 * p["mouth_protrusion"] * _gauss(x, y, 0.0, -3.4, 2.9, 1.8)
  upper = np.exp(-0.5 * ((y - (-3.05 - 0.22 * (x / 2.4) ** 2)) / 0.3) ** 2)
  upper *= _sigmoid((2.45 - ax) / 0.22) * (1.0 - 0.25 * _gauss(x, y, 0.0, -2.75, 0.3, 0.25))
  h += 0.42 * p["upper_lip"] * upper
  lower = np.exp(-0.5 * ((y - (-3.95 + 0.35 * (x / 2.3) ** 2)) / 0.38) ** 2)
  lower *= _sigmoid((2.2 - ax) / 0.3)
  h += 0.5 * p["lower_lip"] * lower
  h -= 0.32 * grooves["mouth_line"]
  philtrum = (
    np.exp(-0.5 * (x / 0.22) ** 2) * _sigmoid((y + 2.75) / 0.15) * _sigmoid((-1.3 - y) / 0.15)
  )
  h -= 0.1 * philtrum
  # Chin: the mentolabial groove and the chin pad.
  h -= 0.3 * p["chin_groove"] * _gauss(x, y, 0.0, -5.0, 1.8, 0.45)
  h += 0.55 * p["chin"] * _gauss(x, y, 0.0, -6.5, 1.4, 1.0)
  return h


NEUTRAL_PARAMETERS = {
    name: 1.0
    for name in (
        "forehead", "temples", "brow_ridge", "eye_socket", "eyeball", "nose_height",
        "nose_width", "nose_tip", "nose_wings", "cheekbones", "nasolabial",
        "mouth_protrusion", "upper_lip", "lower_lip", "chin_groove", "chin",
    )
}  # fmt: skip


def _surface(s, t, params=NEUTRAL_PARAMETERS) -> np.ndarray:
  """3D vertices (V, 3) of the face for feature parameters, before region warps."""
  x, y = _canonical_frontal(s, t)
  angle = s * _HALF_ANGLE
  depth = _FRONT_DEPTH(y)
  z = depth * (0.3 + 0.7 * np.cos(angle))
  # Features ride on the front, fading towards the sides of the face.
  z = z + _features(x, y, params) * np.cos(angle) ** 2
  # The bottom rows curl under the chin and jaw.
  z = z - 1.6 * np.exp(-t / 0.035)
  return np.stack([x, y, z], axis=-1)


def _sample_identity(rng: np.random.Generator, s, t) -> np.ndarray:
  """One random identity's vertices (V, 3)."""
  params = {
      name: float(np.clip(1.0 + scale * rng.standard_normal(), 0.2, 2.2))
      for name, scale in {
          "forehead": 0.6, "temples": 0.5, "brow_ridge": 0.35, "eye_socket": 0.2,
          "eyeball": 0.15, "nose_height": 0.15, "nose_width": 0.12, "nose_tip": 0.35,
          "nose_wings": 0.25, "cheekbones": 0.4, "nasolabial": 0.5,
          "mouth_protrusion": 0.35, "upper_lip": 0.25, "lower_lip": 0.25,
          "chin_groove": 0.4, "chin": 0.35,
      }.items()
  }  # fmt: skip
  vertices = _surface(s, t, params)
  x0, y0 = _canonical_frontal(s, t)
  x, y, z = vertices[:, 0].copy(), vertices[:, 1].copy(), vertices[:, 2].copy()
  normal = rng.standard_normal
  # Region warps move whole anatomical regions, so vertices keep their meaning.
  x += 0.18 * normal() * np.tanh(x0 / 1.5) * np.exp(-0.5 * ((y0 - 3.5) / 2.0) ** 2)  # eye spacing
  y += 0.35 * normal() * _sigmoid(-(y0 + 1.0) / 1.2)  # lower-face height
  y += 0.35 * normal() * _sigmoid((y0 - 5.0) / 1.2) * (y0 - 5.0) / 6.0  # forehead height
  y += 0.15 * normal() * _gauss(x0, y0, 0.0, -3.4, 3.0, 1.2)  # mouth height
  x *= 1.0 + 0.07 * normal() * _sigmoid(-(y0 + 3.0) / 1.5)  # jaw width
  z += 0.25 * normal() * _gauss(x0, y0, 0.0, -6.5, 2.0, 1.6)  # chin projection
  z += 0.2 * normal() * _gauss(x0, y0, 0.0, 1.5, 0.8, 1.6)  # nose hump
  z -= 0.35 * normal() * (x0 / 7.0) ** 4  # flat or round face
  z += 0.3 * normal() * _sigmoid((y0 - 7.0) / 1.5)  # forehead slope
  # Random smooth bumps, mostly symmetric.
  for _ in range(10):
    cx, cy = rng.uniform(-6.5, 6.5), rng.uniform(-8.5, 10.0)
    sigma = rng.uniform(1.0, 3.0)
    amplitude = 0.12 * normal()
    bump = _gauss(x0, y0, cx, cy, sigma, sigma)
    if rng.uniform() < 0.8:
      bump = bump + _gauss(x0, y0, -cx, cy, sigma, sigma)
    z += amplitude * bump * np.cos(s * _HALF_ANGLE)
  # Global proportions.
  x *= 1.0 + 0.05 * normal()
  y *= 1.0 + 0.04 * normal()
  z *= 1.0 + 0.04 * normal()
  return np.stack([x, y, z], axis=-1)


def _expression_fields(vertices: np.ndarray, s, t) -> dict[str, np.ndarray]:
  """Displacement fields (V, 3) of the `_L`-side and symmetric expressions."""
  x, y = _canonical_frontal(s, t)
  g = lambda cx, cy, sx, sy: _gauss(x, y, cx, cy, sx, sy)[:, None]
  vec = lambda *c: np.asarray(c, np.float64)[None, :]
  fields = {}
  # Jaw: a rotation about the jaw hinge for everything below the mouth line.
  below_mouth = _sigmoid(((-3.45 + 0.11 * x**2) - y) / 0.3)[:, None]
  pivot = np.array([0.0, 1.5, 1.0])
  angle = 0.2
  cos, sin = np.cos(angle), np.sin(angle)
  rel = vertices - pivot
  rotated = np.stack(
    [rel[:, 0], cos * rel[:, 1] - sin * rel[:, 2], sin * rel[:, 1] + cos * rel[:, 2]], -1
  )
  fields["jawOpen"] = below_mouth * (rotated - rel + vec(0.0, -0.2, 0.8))
  fields["jawForward"] = below_mouth * vec(0.0, 0.0, 0.6)
  fields["jawLeft"] = below_mouth * vec(0.6, 0.0, 0.0)
  fields["mouthSmile_L"] = g(2.45, -3.45, 0.9, 0.7) * vec(0.35, 0.45, -0.25) + g(
    3.3, -1.5, 1.3, 1.3
  ) * vec(0.1, 0.25, 0.15)
  fields["mouthFrown_L"] = g(2.4, -3.7, 0.9, 0.8) * vec(0.05, -0.4, -0.05)
  fields["mouthStretch_L"] = g(2.3, -3.8, 1.2, 1.0) * vec(0.4, -0.3, -0.15)
  fields["mouthDimple_L"] = g(2.6, -3.4, 0.5, 0.5) * vec(0.1, 0.0, -0.2)
  lips = g(0.0, -3.45, 2.0, 0.95)
  fields["mouthPucker"] = lips * np.stack([-0.35 * np.tanh(x / 1.2), 0 * x, 0.5 + 0 * x], -1)
  fields["mouthFunnel"] = lips * np.stack(
    [-0.25 * np.tanh(x / 1.2), 0.25 * np.tanh((y + 3.45) / 0.4), 0.35 + 0 * x], -1
  )
  fields["mouthLeft"] = g(0.0, -3.5, 2.6, 1.3) * vec(0.5, 0.0, 0.0)
  fields["mouthUpperUp_L"] = g(1.2, -2.9, 0.8, 0.5) * vec(0.0, 0.3, 0.05)
  fields["mouthLowerDown_L"] = g(1.2, -4.1, 0.8, 0.5) * vec(0.0, -0.3, 0.05)
  fields["mouthRollLower"] = g(0.0, -4.0, 1.8, 0.5) * vec(0.0, 0.15, -0.3)
  fields["mouthRollUpper"] = g(0.0, -2.9, 1.8, 0.45) * vec(0.0, -0.15, -0.3)
  fields["mouthShrugLower"] = g(0.0, -5.0, 1.8, 1.2) * vec(0.0, 0.3, 0.2)
  fields["mouthShrugUpper"] = g(0.0, -3.0, 2.0, 0.6) * vec(0.0, 0.2, 0.15)
  cheeks = g(3.5, -2.5, 1.4, 1.4) + g(-3.5, -2.5, 1.4, 1.4)
  fields["cheekPuff"] = cheeks * np.stack([0.45 * np.tanh(x), 0 * x, 0.35 + 0 * x], -1)
  fields["cheekSquint_L"] = g(3.6, 1.8, 1.2, 0.8) * vec(0.0, 0.3, 0.1)
  fields["eyeBlink_L"] = g(3.1, 3.75, 1.25, 0.35) * vec(0.0, -0.45, 0.08)
  fields["eyeWide_L"] = g(3.1, 3.9, 1.3, 0.4) * vec(0.0, 0.2, 0.03)
  fields["eyeSquint_L"] = g(3.1, 3.0, 1.3, 0.35) * vec(0.0, 0.15, 0.05) + g(
    3.6, 2.0, 1.2, 0.8
  ) * vec(0.0, 0.1, 0.05)
  fields["browInnerUp"] = (g(1.4, 5.6, 1.0, 0.8) + g(-1.4, 5.6, 1.0, 0.8)) * vec(0.0, 0.45, 0.0)
  fields["browDown_L"] = g(2.8, 5.7, 1.6, 0.8) * vec(-0.15, -0.35, 0.05)
  fields["browOuterUp_L"] = g(4.6, 5.5, 1.1, 0.9) * vec(0.0, 0.45, 0.0)
  fields["noseSneer_L"] = g(1.0, 0.6, 0.7, 0.9) * vec(0.05, 0.25, 0.05) + g(
    1.25, -0.8, 0.6, 0.5
  ) * vec(0.0, 0.2, 0.0)
  return fields


def _mirror_field(field: np.ndarray, mirror: np.ndarray) -> np.ndarray:
  """The displacement field of the mirror-image expression."""
  mirrored = field[mirror].copy()
  mirrored[:, 0] *= -1.0
  return mirrored


def _mirror_vertices(vertices: np.ndarray, mirror: np.ndarray) -> np.ndarray:
  return _mirror_field(vertices, mirror)


@functools.lru_cache(maxsize=4)
def _build(num_identity: int, num_albedo: int, albedo_size: tuple[int, int]) -> MorphableModel:
  from jaxface.morphable.albedo import procedural_albedo  # albedo imports this module's constants

  s, t, triangles = grid_topology()
  column = np.arange(len(s)) % GRID_COLUMNS
  grid_mirror = np.arange(len(s)) - column + (GRID_COLUMNS - 1 - column)
  rng = np.random.default_rng(SEED)
  samples = np.stack([_sample_identity(rng, s, t) for _ in range(IDENTITY_SAMPLES)])
  samples = np.concatenate([samples, np.stack([_mirror_vertices(v, grid_mirror) for v in samples])])
  mean = samples.mean(axis=0)  # (V, 3), symmetric by construction
  mean = 0.5 * (mean + _mirror_vertices(mean, grid_mirror))
  centred = (samples - mean).reshape(len(samples), -1)
  # PCA through the (N, N) Gram matrix, cheaper than an SVD of (N, 3V).
  eigenvalues, eigenvectors = np.linalg.eigh(centred @ centred.T)
  order = np.argsort(eigenvalues)[::-1][:num_identity]
  eigenvalues = np.maximum(eigenvalues[order], 1e-20)
  components = eigenvectors[:, order].T @ centred / np.sqrt(eigenvalues)[:, None]
  std = np.sqrt(eigenvalues / (len(samples) - 1))
  # Fix each component's sign so the basis does not depend on the SVD's whim.
  signs = np.sign(components[np.arange(len(components)), np.argmax(np.abs(components), axis=1)])
  identity_basis = (components * signs[:, None] * std[:, None])[:num_identity].reshape(
    num_identity, -1, 3
  )

  mirror, _ = mirror_vertex_map(mean)
  fields = _expression_fields(mean, s, t)
  expression_basis = []
  for name in EXPRESSION_NAMES:
    if name in fields:
      expression_basis.append(fields[name])
    else:
      mirrored_name = (
        name.replace("_R", "_L") if name.endswith("_R") else name.replace("Right", "Left")
      )
      expression_basis.append(_mirror_field(fields[mirrored_name], mirror))
  expression_basis = np.stack(expression_basis)

  x0, y0 = _canonical_frontal(s, t)
  frontal = np.stack([x0, y0], axis=1)
  # The surface is a graph over the frontal plane, so the nearest vertex in
  # (x, y) is the landmark's place on the face.
  landmarks = np.array(
    [np.argmin(np.linalg.norm(frontal - point, axis=1)) for point in CANONICAL_LANDMARKS]
  )
  uv = np.stack([(s + 1.0) / 2.0, t], axis=1)
  albedo_mean, albedo_basis = procedural_albedo(
    mean, triangles, uv, triangles, landmarks, size=albedo_size, num_modes=num_albedo
  )
  return as_model(
    "procedural",
    vertices=mean,
    triangles=triangles,
    uv=uv,
    triangle_uv=triangles,
    vertex_uv=uv,
    identity_basis=identity_basis,
    expression_basis=expression_basis,
    albedo_mean=albedo_mean,
    albedo_basis=albedo_basis,
    landmarks=landmarks,
    mirror=mirror,
    expression_names=EXPRESSION_NAMES,
    name="procedural",
    units="cm",
  )


def procedural_model(
  num_identity: int = NUM_IDENTITY,
  num_albedo: int = NUM_ALBEDO,
  albedo_size: tuple[int, int] = (256, 256),
) -> MorphableModel:
  """The procedural face model (cached per process; identical in every process)."""
  if num_identity > 2 * IDENTITY_SAMPLES:
    raise ValueError(f"num_identity must be at most {2 * IDENTITY_SAMPLES}, got {num_identity}")
  return _build(int(num_identity), int(num_albedo), tuple(int(n) for n in albedo_size))
