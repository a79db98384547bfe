"""The procedural face model: size, determinism, symmetry, anatomy, albedo."""

import hashlib
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxface.morphable import IBUG68_GROUPS, IBUG68_MIRROR
from jaxface.morphable.model import ARRAY_FIELDS

_HASH_SCRIPT = """
import hashlib, numpy as np
from jaxface.morphable import load
model = load("procedural")
digest = hashlib.sha256()
for field in {fields!r}:
    digest.update(np.ascontiguousarray(getattr(model, field)).tobytes())
print(digest.hexdigest())
"""


def _digest(model) -> str:
  digest = hashlib.sha256()
  for field in ARRAY_FIELDS:
    digest.update(np.ascontiguousarray(getattr(model, field)).tobytes())
  return digest.hexdigest()


def test_sizes_and_names(procedural):
  m = procedural
  assert m.num_vertices >= 5000
  assert m.num_identity >= 40 and m.num_expression >= 20 and m.num_albedo >= 10
  for name in (
    "jawOpen",
    "mouthSmile_L",
    "mouthSmile_R",
    "eyeBlink_L",
    "eyeBlink_R",
    "browInnerUp",
    "mouthPucker",
  ):
    assert name in m.expression_names
  assert m.landmarks.shape == (68,) and len(set(m.landmarks.tolist())) == 68
  assert m.albedo_mean.shape[-1] == 3 and m.albedo_basis.shape[1:] == m.albedo_mean.shape
  np.testing.assert_array_equal(m.triangle_uv, m.triangles)  # a grid: no seams


def test_identical_in_two_processes(procedural):
  script = _HASH_SCRIPT.format(fields=ARRAY_FIELDS)
  result = subprocess.run(
    [sys.executable, "-c", script], capture_output=True, text=True, check=True
  )
  assert result.stdout.strip() == _digest(procedural)


def test_mean_face_is_bilaterally_symmetric(procedural):
  vertices = np.asarray(procedural.vertices)
  reflected = vertices[procedural.mirror] * np.array([-1.0, 1.0, 1.0])
  np.testing.assert_allclose(reflected, vertices, atol=1e-5)


def test_identity_modes_are_orthogonal_pca_modes_with_decreasing_variance(procedural):
  flat = np.asarray(procedural.identity_basis, np.float64).reshape(procedural.num_identity, -1)
  gram = flat @ flat.T
  off_diagonal = gram - np.diag(np.diag(gram))
  assert np.abs(off_diagonal).max() < 1e-4 * np.diag(gram).max()
  assert np.all(np.diff(np.diag(gram)) <= 1e-9)
  # The 40th mode still moves the face by a visible amount (not numerical noise).
  rms_40 = np.sqrt(np.diag(gram)[39] / procedural.num_vertices)
  assert rms_40 > 1e-3  # cm


def test_landmarks_sit_at_their_anatomical_places(procedural):
  points = np.asarray(procedural.vertices)[procedural.landmarks]
  np.testing.assert_array_equal(
    procedural.mirror[procedural.landmarks], procedural.landmarks[IBUG68_MIRROR]
  )
  centre = {name: points[ids].mean(axis=0) for name, ids in IBUG68_GROUPS.items()}
  # Top to bottom: brows, eyes, nose tip, lips, chin.
  assert (
    centre["right_brow"][1]
    > centre["right_eye"][1]
    > points[30, 1]
    > centre["outer_lips"][1]
    > points[8, 1]
  )
  assert points[30, 2] == points[:, 2].max()  # the nose tip is the most forward landmark
  assert points[0, 0] < 0 < points[16, 0]  # index 0 is on the face's right (-x)
  assert points[36, 0] < points[39, 0] < 0 < points[42, 0] < points[45, 0]  # eye corners
  assert points[48, 0] < points[54, 0] and points[51, 1] > points[57, 1]  # mouth corners, lips
  assert points[8, 1] == points[:17, 1].min()  # the chin is the lowest jaw point


def _displacement(model, name):
  return np.asarray(model.expression_basis[model.expression_index(name)])


def test_expressions_move_the_right_places(procedural):
  vertices = np.asarray(procedural.vertices)
  marks = procedural.landmarks
  blink = _displacement(procedural, "eyeBlink_L")
  moved = np.linalg.norm(blink, axis=1) > 0.5 * np.linalg.norm(blink, axis=1).max()
  assert vertices[moved, 0].min() > 0  # the face's left eye only
  assert blink[marks[43], 1] < 0 and abs(blink[marks[38], 1]) < 1e-3  # upper lid down
  smile = _displacement(procedural, "mouthSmile_L")
  assert smile[marks[54], 1] > 0.2 and abs(smile[marks[48]]).max() < 0.05
  jaw = _displacement(procedural, "jawOpen")
  assert jaw[marks[8], 1] < -1.0 and abs(jaw[marks[27]]).max() < 1e-3
  brows = _displacement(procedural, "browInnerUp")
  assert brows[marks[21], 1] > 0.2 and brows[marks[22], 1] > 0.2
  # _R modes are the mirror images of _L modes.
  for left in [n for n in procedural.expression_names if n.endswith("_L")]:
    right = _displacement(procedural, left[:-2] + "_R")
    expected = _displacement(procedural, left)[procedural.mirror] * np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(right, expected, atol=1e-6)


def _texel(model, vertex_ids):
  uv = np.asarray(model.vertex_uv)[vertex_ids]
  height, width = model.albedo_mean.shape[:2]
  rows = ((1 - uv[:, 1]) * height).astype(int).clip(0, height - 1)
  cols = (uv[:, 0] * width).astype(int).clip(0, width - 1)
  return np.asarray(model.albedo_mean)[rows, cols]


def test_albedo_has_skin_lips_brows_and_eyes(procedural):
  m = procedural
  albedo = np.asarray(m.albedo_mean)
  assert albedo.min() >= 0.0 and albedo.max() <= 1.0
  skin = _texel(m, m.landmarks[[1, 15, 29]]).mean(axis=0)
  lips = _texel(m, m.landmarks[[61, 63, 65, 67]]).mean(axis=0)  # inside the lip outline
  brows = _texel(m, m.landmarks[[19, 24]]).mean(axis=0)
  assert lips[0] / lips[1] > 1.15 * skin[0] / skin[1]  # redder
  assert brows.sum() < 0.7 * skin.sum()  # darker
  # Skin tone is the dominant albedo mode: mode 0 changes all channels the same way.
  mode0 = np.asarray(m.albedo_basis[0]).reshape(-1, 3).mean(axis=0)
  assert np.all(mode0 > 0) or np.all(mode0 < 0)


def test_shape_and_albedo_batch_and_jit(procedural):
  m = procedural
  identity = jnp.ones((2, m.num_identity)) * 0.1
  expression = jnp.zeros((m.num_expression,)).at[m.expression_index("jawOpen")].set(1.0)
  shapes = jax.jit(lambda model, i, e: model.shape(i, e))(m, identity, expression)
  chex.assert_shape(shapes, (2, m.num_vertices, 3))
  expected = (
    np.asarray(m.vertices) + 0.1 * np.asarray(m.identity_basis).sum(0) + _displacement(m, "jawOpen")
  )
  np.testing.assert_allclose(shapes[1], expected, atol=1e-4)
  albedo = m.albedo(jnp.zeros((3, m.num_albedo)))
  chex.assert_shape(albedo, (3, *m.albedo_mean.shape))
  with pytest.raises(ValueError, match="identity coefficients"):
    m.shape(jnp.zeros(3))
  with pytest.raises(KeyError, match="noSuchShape"):
    m.expression_vector(noSuchShape=1.0)


def test_truncated_keeps_leading_modes(procedural):
  small = procedural.truncated(num_identity=10, num_expression=5, num_albedo=4)
  assert (small.num_identity, small.num_expression, small.num_albedo) == (10, 5, 4)
  assert small.expression_names == procedural.expression_names[:5]
  small.validate()
