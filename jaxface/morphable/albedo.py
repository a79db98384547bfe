"""A procedural UV albedo model that fits any face mesh with landmarks.

Every texel of the UV map is traced back to its 3D point on the neutral
mesh; a 2D similarity fitted from the model's 68 landmarks onto the
canonical layout (`landmarks.CANONICAL_LANDMARKS`) puts those points in one
frontal frame, where the model's own landmarks outline the lips, eyes and
brows. Random appearance parameters (melanin-like skin tone, redness, lip,
brow and iris colours, beard shadow, under-eye darkening, low-frequency
blotches) are composed over those regions, and PCA of the samples gives a
mean albedo plus unit-variance modes. The same code serves the procedural
model and any other mesh with UVs (ICT-FaceKit, FLAME), so their albedos
line up anatomically. Colours are linear RGB in [0, 1].
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
from matplotlib.path import Path
from scipy.special import expit

from jaxface.geometry.uv import uv_texel_lookup
from jaxface.morphable.landmarks import CANONICAL_LANDMARKS, IBUG68_GROUPS

ALBEDO_SAMPLES = 160
ALBEDO_SEED = 7

_SKIN_ANCHORS = np.array([[0.86, 0.67, 0.56], [0.28, 0.17, 0.115]])  # lightest, darkest
_IRIS_COLOURS = np.array(
  [[0.25, 0.14, 0.07], [0.32, 0.45, 0.6], [0.3, 0.4, 0.22], [0.42, 0.3, 0.15]]
)


def bake_positions(
  vertices: np.ndarray,
  triangles: np.ndarray,
  uv: np.ndarray,
  triangle_uv: np.ndarray,
  size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
  """3D point of the mesh under each texel: positions (H, W, 3) and chart mask (H, W).

  Texels outside the chart take the position of the nearest texel inside,
  so textures built from the positions have no dark border to bleed into
  bilinear lookups at the chart's edge.
  """
  triangle_id, barycentric = uv_texel_lookup(uv, triangle_uv, size)
  mask = triangle_id >= 0
  if not mask.any():
    raise ValueError(f"no texel of a {size} texture is covered by the UV chart")
  corners = np.asarray(vertices, np.float64)[np.asarray(triangles)[np.maximum(triangle_id, 0)]]
  positions = np.einsum("hwk,hwkd->hwd", barycentric, corners)  # (H, W, 3)
  _, (rows, cols) = scipy.ndimage.distance_transform_edt(~mask, return_indices=True)
  return positions[rows, cols], mask


def _similarity_2d(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
  """Least-squares s, R (2x2), t with target ≈ s R source + t."""
  mu_s, mu_t = source.mean(0), target.mean(0)
  a, b = source - mu_s, target - mu_t
  u, singular, vt = np.linalg.svd(b.T @ a)
  d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
  rotation = u @ d @ vt
  scale = np.trace(np.diag(singular) @ d) / np.sum(a * a)
  return scale, rotation, mu_t - scale * rotation @ mu_s


def _polygon_distance(points: np.ndarray, polygon: np.ndarray, closed: bool) -> np.ndarray:
  """Distance from points (N, 2) to a polyline (P, 2)."""
  ring = np.concatenate([polygon, polygon[:1]]) if closed else polygon
  start, delta = ring[:-1], np.diff(ring, axis=0)
  rel = points[:, None, :] - start[None]
  t = np.clip(np.sum(rel * delta, -1) / np.maximum(np.sum(delta * delta, -1), 1e-12), 0, 1)
  return np.min(np.linalg.norm(rel - t[..., None] * delta[None], axis=-1), axis=1)


def _soft_polygon(points: np.ndarray, polygon: np.ndarray, softness: float) -> np.ndarray:
  inside = Path(polygon).contains_points(points)
  signed = _polygon_distance(points, polygon, closed=True) * np.where(inside, 1.0, -1.0)
  return expit(signed / softness)


def _gauss(points: np.ndarray, centre, sigma: float) -> np.ndarray:
  return np.exp(-0.5 * np.sum((points - centre) ** 2, axis=-1) / sigma**2)


def region_maps(
  positions: np.ndarray, landmark_positions: np.ndarray | None
) -> dict[str, np.ndarray]:
  """Soft masks (H, W) of facial regions in UV space.

  Args:
    positions: (H, W, 3) baked 3D positions (y up, +z towards the viewer).
    landmark_positions: (68, 3) landmark positions of the same mesh, or None
      for a mesh without landmarks (only the skin regions are then defined).
  """
  height, width, _ = positions.shape
  flat = positions.reshape(-1, 3)[:, :2]
  if landmark_positions is None or len(landmark_positions) == 0:
    return {"skin": np.ones((height, width))}
  scale, rotation, shift = _similarity_2d(landmark_positions[:, :2], CANONICAL_LANDMARKS)
  points = flat @ (scale * rotation).T + shift  # canonical frontal frame, cm
  marks = landmark_positions[:, :2] @ (scale * rotation).T + shift
  maps: dict[str, np.ndarray] = {}
  maps["lips"] = _soft_polygon(points, marks[IBUG68_GROUPS["outer_lips"]], 0.06)
  maps["mouth_line"] = np.exp(
    -0.5 * (_polygon_distance(points, marks[IBUG68_GROUPS["inner_lips"]], True) / 0.06) ** 2
  )
  eyes, irises, pupils = 0.0, 0.0, 0.0
  for group in ("right_eye", "left_eye"):
    outline = marks[IBUG68_GROUPS[group]]
    centre = outline.mean(axis=0)
    eye_width = np.linalg.norm(outline[0] - outline[3])
    eye = _soft_polygon(points, outline, 0.04)
    eyes = eyes + eye
    radius = 0.21 * eye_width
    irises = irises + eye * expit((radius - np.linalg.norm(points - centre, axis=1)) / 0.03)
    pupils = pupils + eye * expit((0.4 * radius - np.linalg.norm(points - centre, axis=1)) / 0.02)
  maps["eyes"], maps["irises"], maps["pupils"] = eyes, irises, pupils
  brows = 0.0
  for group in ("right_brow", "left_brow"):
    line = marks[IBUG68_GROUPS[group]]
    distance = _polygon_distance(points, line, closed=False)
    brows = brows + expit((0.26 - distance) / 0.06)
  maps["brows"] = brows
  nose_tip, chin = marks[30], marks[8]
  maps["nose_tip"] = _gauss(points, nose_tip, 0.7)
  maps["cheeks"] = sum(
    _gauss(points, marks[k] * np.array([0.55, 1.0]) + np.array([0.0, -1.2]), 1.3) for k in (2, 14)
  )
  maps["under_eyes"] = sum(
    _gauss(points, marks[IBUG68_GROUPS[g]].mean(0) + np.array([0.0, -0.6]), 0.55)
    for g in ("right_eye", "left_eye")
  )
  below_nose = expit((marks[33, 1] - 0.2 - points[:, 1]) / 0.3)
  jaw_width = 0.5 * np.linalg.norm(marks[4] - marks[12])
  beard = below_nose * expit((jaw_width - np.abs(points[:, 0] - chin[0])) / 0.5)
  maps["beard"] = beard * (1.0 - maps["lips"])
  maps = {
    name: np.clip(value, 0.0, 1.0).reshape(height, width).astype(np.float32)
    for name, value in maps.items()
  }
  maps["skin"] = np.ones((height, width), np.float32)
  maps["points"] = points.reshape(height, width, 2).astype(np.float32)
  return maps


def _sample_albedo(rng: np.random.Generator, maps: dict[str, np.ndarray]) -> np.ndarray:
  """One random UV albedo (H, W, 3) over the region maps."""
  # Skin tones on one straight line from light to dark, so that a linear
  # (PCA) model of the samples stays on natural tones.
  melanin = rng.uniform(0.0, 1.0) ** 1.3
  skin = _SKIN_ANCHORS[0] + melanin * (_SKIN_ANCHORS[1] - _SKIN_ANCHORS[0])
  redness = 0.03 * rng.standard_normal()
  skin = skin + redness * np.array([1.0, -0.5, -0.5])
  albedo = np.broadcast_to(skin.astype(np.float32), (*maps["skin"].shape, 3)).copy()
  if "points" in maps:
    points = maps["points"]
    for _ in range(3):  # low-frequency blotches
      centre = rng.uniform([-6, -7], [6, 9])
      albedo *= (
        1.0
        + 0.05 * rng.standard_normal() * _gauss(points, centre, rng.uniform(1.5, 4.0))[..., None]
      )
  if "lips" not in maps:
    return albedo
  m = maps
  albedo *= 1.0 - rng.uniform(0.0, 0.12) * m["under_eyes"][..., None] * np.array([1.0, 1.0, 0.9])
  red = np.array([0.12, -0.04, -0.03])
  albedo += rng.uniform(0.0, 0.6) * m["cheeks"][..., None] * red
  albedo += rng.uniform(0.0, 0.5) * m["nose_tip"][..., None] * red
  if rng.uniform() < 0.5:
    albedo = albedo * (
      1.0 - rng.uniform(0.0, 0.3) * m["beard"][..., None] * np.array([1.0, 0.97, 0.9])
    )
  lip_colour = skin * np.array([0.86, 0.55, 0.55]) * rng.uniform(0.8, 1.05)
  albedo += rng.uniform(0.6, 1.0) * m["lips"][..., None] * (lip_colour - albedo)
  albedo *= 1.0 - 0.55 * m["mouth_line"][..., None]
  hair = rng.uniform(0.05, 0.35) * np.array([1.0, 0.8, 0.62])
  albedo += rng.uniform(0.45, 0.95) * m["brows"][..., None] * (hair - albedo)
  sclera = np.array([0.82, 0.78, 0.74]) * rng.uniform(0.9, 1.05)
  albedo += m["eyes"][..., None] * (sclera - albedo)
  iris_weights = rng.dirichlet(np.full(len(_IRIS_COLOURS), 0.4))
  iris = iris_weights @ _IRIS_COLOURS
  albedo += m["irises"][..., None] * (iris - albedo)
  albedo += m["pupils"][..., None] * (np.array([0.02, 0.02, 0.02]) - albedo)
  return albedo


def procedural_albedo(
  vertices: np.ndarray,
  triangles: np.ndarray,
  uv: np.ndarray,
  triangle_uv: np.ndarray,
  landmarks: np.ndarray | None,
  size: tuple[int, int] = (256, 256),
  num_modes: int = 20,
  num_samples: int = ALBEDO_SAMPLES,
  seed: int = ALBEDO_SEED,
) -> tuple[np.ndarray, np.ndarray]:
  """Mean UV albedo (H, W, 3) and unit-variance modes (K, H, W, 3) for a mesh.

  Args:
    vertices, triangles, uv, triangle_uv: the neutral mesh and its UV chart.
    landmarks: (68,) vertex ids in iBUG order, or None/empty for a mesh
      without landmarks (skin tone variation only).
    size: (H, W) of the albedo texture.
    num_modes: K, at most `num_samples`.
  """
  if num_modes > num_samples:
    raise ValueError(f"num_modes ({num_modes}) must be at most num_samples ({num_samples})")
  positions, _ = bake_positions(vertices, triangles, uv, triangle_uv, size)
  landmark_positions = None
  if landmarks is not None and len(landmarks):
    landmark_positions = np.asarray(vertices, np.float64)[np.asarray(landmarks)]
  maps = region_maps(positions, landmark_positions)
  rng = np.random.default_rng(seed)
  samples = np.stack([_sample_albedo(rng, maps) for _ in range(num_samples)])
  samples = samples.reshape(num_samples, -1)
  mean = samples.mean(axis=0)
  centred = samples - mean
  # PCA through the (N, N) Gram matrix: N is far smaller than H * W * 3.
  gram = centred @ centred.T
  eigenvalues, eigenvectors = np.linalg.eigh(gram)
  order = np.argsort(eigenvalues)[::-1][:num_modes]
  eigenvalues, eigenvectors = np.maximum(eigenvalues[order], 0.0), eigenvectors[:, order]
  components = eigenvectors.T @ centred / np.sqrt(np.maximum(eigenvalues, 1e-20))[:, None]
  signs = np.sign(components[np.arange(num_modes), np.argmax(np.abs(components), axis=1)])
  std = np.sqrt(eigenvalues / (num_samples - 1))
  basis = components * (signs * std)[:, None]
  height, width = size
  return (
    mean.reshape(height, width, 3).astype(np.float32),
    basis.reshape(num_modes, height, width, 3).astype(np.float32),
  )
