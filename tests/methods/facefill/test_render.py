"""3DFaceFill's render layer against the synthetic face-image dataset and by hand.

Independent references: the dataset's own images, landmarks and per-pixel
UVs (drawn by `jaxface.data.synthetic` through `jaxface.render.render` with a
`PerspectiveCamera`), projections done here with that camera class, numpy
albedo and block means, finite differences.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxface.data import synthetic
from jaxface.geometry.camera import PerspectiveCamera
from jaxface.geometry.transforms import euler_to_matrix, quaternion_to_matrix
from jaxface.geometry.uv import texel_centres
from jaxface.methods.facefill import render, targets
from jaxface.methods.facefill.model import Factors
from jaxface.render.texture import bilinear

SIZE = 64  # image size
UV = (128, 128)  # UV size of the unwrapped maps
INDICES = (0, 3)  # yaw -30 and +32 degrees: both cheeks self-occlude somewhere
QUANTUM = 0.5 / 255  # the dataset stores uint8 images


@pytest.fixture(scope="module")
def arrays(procedural):
  return render.face_model_arrays(procedural, UV)


@pytest.fixture(scope="module")
def batch(procedural):
  examples = [synthetic.face_image_example(procedural, i, seed=0, image_size=SIZE) for i in INDICES]
  return {key: np.stack([e[key] for e in examples]) for key in examples[0]}


@pytest.fixture(scope="module")
def truth(procedural, arrays, batch):
  """Ground-truth factors, focal, native-resolution albedo and the exact render."""
  factors = targets.example_factors(arrays, batch)
  focal = targets.pose_targets(arrays, batch).focal
  albedo = targets.ground_truth_albedo(procedural, batch["albedo_coefficients"])
  out = render.render_face(arrays, factors, albedo, SIZE, focal=focal)
  return factors, focal, albedo, out


def _texel_pixels(procedural, arrays, batch, b):
  """Pixel position (Hu, Wu, 2) of every texel's surface point, by the dataset's own camera."""
  vertices = np.asarray(procedural.shape(batch["identity"][b], batch["expression"][b]))
  vertices = vertices - np.asarray(procedural.vertices).mean(0)  # as the dataset centres them
  corners = vertices[np.asarray(procedural.triangles)[np.maximum(arrays.texel_triangle, 0)]]
  points = np.einsum("uvk,uvkd->uvd", np.asarray(arrays.texel_barycentric), corners)
  focal = float(batch["focal"][b])
  camera = PerspectiveCamera(
    jnp.array([focal, focal]),
    jnp.full((2,), SIZE / 2.0),
    euler_to_matrix(jnp.asarray(batch["pose"][b])),
    jnp.asarray(batch["translation"][b]),
  )
  pixels, _ = camera.project(jnp.asarray(points.reshape(-1, 3)))
  return np.asarray(pixels).reshape(*points.shape[:2], 2)


# --------------------------------------------------------------------------- model arrays


def test_model_arrays_reproduce_the_model_shape(procedural, arrays, batch):
  """Model units are cm / unit about the neutral vertex mean, unit = half the face height."""
  vertices = np.asarray(procedural.vertices)
  assert float(arrays.unit) == pytest.approx(0.5 * np.ptp(vertices[:, 1]), rel=1e-6)
  identity, expression = batch["identity"][0], batch["expression"][0]
  shape_cm = np.asarray(procedural.shape(identity, expression)) - vertices.mean(0)
  shape = arrays.mean_shape + np.einsum("k,kvd->vd", identity, arrays.identity_basis)
  shape = shape + np.einsum("k,kvd->vd", expression, arrays.expression_basis)
  np.testing.assert_allclose(shape * float(arrays.unit), shape_cm, atol=1e-4)
  assert arrays.uv_size == UV
  assert 0.5 < float(np.mean(arrays.chart_mask)) <= 1.0


# --------------------------------------------------------------------------- poses and landmarks


def test_pose_targets_match_the_dataset_camera(arrays, batch):
  """s, t, q, f from (pose, translation, focal) and the landmarks' depth, by hand."""
  pose = targets.pose_targets(arrays, batch)
  focal = 2 * batch["focal"] / SIZE
  distance = -batch["translation"][:, 2]
  unit = float(arrays.unit)
  rotation = np.asarray(euler_to_matrix(batch["pose"]))
  landmarks = np.asarray(batch["landmarks_3d"]) / unit  # (B, L, 3) centred model units
  z0 = np.einsum("bj,blj->bl", rotation[:, 2], landmarks).mean(-1)
  k = distance / (distance - unit * z0)
  np.testing.assert_allclose(pose.focal, focal, rtol=1e-6)
  np.testing.assert_allclose(pose.scale, k * focal * unit / distance, rtol=1e-5)
  np.testing.assert_allclose(
    pose.translation, (k * focal / distance)[:, None] * batch["translation"][:, :2], rtol=1e-5
  )
  np.testing.assert_allclose(quaternion_to_matrix(pose.rotation), rotation, atol=1e-6)
  assert np.all(np.asarray(pose.rotation)[:, 0] >= 0)
  # The documented working range of the scale: the face about fills the image.
  assert np.all((pose.scale > 0.6) & (pose.scale < 1.1))
  one = targets.pose_targets(arrays, {key: value[1] for key, value in batch.items()})
  np.testing.assert_allclose(one.scale, pose.scale[1], rtol=1e-6)


def test_landmarks_match_the_dataset(arrays, batch, truth):
  factors, focal, _, out = truth
  # Perspective with the example's focal: the dataset's projection, exactly.
  np.testing.assert_allclose(out.landmarks, batch["landmarks"], atol=1e-3)
  np.testing.assert_allclose(
    render.project_landmarks(arrays, factors, SIZE, focal=focal), out.landmarks, atol=1e-4
  )

  def weak_error(factors):
    weak = np.asarray(render.project_landmarks(arrays, factors, SIZE))
    return np.linalg.norm(weak - batch["landmarks"], axis=-1)

  # Weak perspective (the paper's camera) with the converted pose: exact at the landmarks'
  # mean depth; the face's own depth moves the jaw and nose landmarks by up to ~2% of
  # their distance from the face centre (measured: mean 0.25 px, max 1.06 px at 64 px).
  error = weak_error(factors)
  assert error.mean() < 0.006 * SIZE
  assert error.max() < 0.02 * SIZE
  assert error.max() > 1e-2  # really a different camera
  # Poses off by 5% in scale are clearly worse: the converted scale is the right one.
  for factor in (0.95, 1.05):
    assert weak_error(factors._replace(scale=factors.scale * factor)).mean() > 1.5 * error.mean()


# --------------------------------------------------------------------------- rendering


def test_ground_truth_render_reproduces_the_dataset_images(batch, truth):
  """Exact on visible face pixels up to the uint8 rounding (no antialiasing on either side)."""
  _, _, _, out = truth
  assert np.all(np.asarray(out.fragments.overflow) == 0)
  np.testing.assert_array_equal(np.asarray(out.mask), batch["face_mask"])
  visible = batch["segmentation"] == 1  # occluders cover part of the face in the dataset
  assert visible.sum() > 0.15 * visible.size
  error = np.abs(np.asarray(out.image) - batch["image"] / 255.0)[visible]
  assert error.max() <= QUANTUM + 1e-4
  np.testing.assert_allclose(out.image, np.asarray(out.albedo) * np.asarray(out.shading), atol=1e-6)
  assert np.all(np.asarray(out.image)[~batch["face_mask"].astype(bool)] == 0.0)


def test_weak_perspective_render_is_close_to_the_dataset(arrays, batch, truth):
  """The paper's camera on the converted pose: same face, sub-pixel shifts at the edges."""
  factors, _, albedo, _ = truth
  out = render.render_face(arrays, factors, albedo, SIZE, background=jnp.array([0.0, 1.0, 0.0]))
  mask, face = np.asarray(out.mask) > 0, batch["face_mask"] > 0
  iou = (mask & face).sum() / (mask | face).sum()
  assert iou > 0.92  # measured 0.953: a ~0.5 px band along a ~40 px face's outline
  both = mask & face & (batch["segmentation"] == 1)
  error = np.abs(np.asarray(out.image) - batch["image"] / 255.0).max(-1)[both]
  assert error.mean() < 0.02
  np.testing.assert_array_equal(np.asarray(out.image)[~mask], [[0.0, 1.0, 0.0]] * (~mask).sum())


def test_antialiasing_changes_only_silhouette_pixels(arrays, truth):
  factors, focal, albedo, out = truth
  smooth = render.render_face(arrays, factors, albedo, SIZE, focal=focal, antialias=True)
  changed = np.any(np.abs(np.asarray(smooth.image) - np.asarray(out.image)) > 1e-6, axis=-1)
  mask = np.asarray(out.mask) > 0
  # A silhouette pixel has a 4-neighbour on the other side of the mask edge.
  edge = np.zeros_like(mask)
  for axis in (1, 2):
    for shift in (1, -1):
      edge |= mask != np.roll(mask, shift, axis=axis)
  assert changed.any()
  assert np.all(edge[changed])


# --------------------------------------------------------------------------- unwrapping


def test_unwrap_samples_where_the_dataset_camera_projects(procedural, arrays, batch, truth):
  """Texture mode on a colour ramp: bilinear sampling of an affine image is exact, so every
  visible texel must hold the ramp's value at its surface point's projection, computed here
  with the dataset's camera; and a visible texel must be what the dataset shows there."""
  factors, focal, _, _ = truth
  centres = (np.arange(SIZE) + 0.5) / SIZE
  ramp = np.stack(np.broadcast_arrays(centres[None, :], centres[:, None], 0.5), axis=-1)
  image = np.broadcast_to(ramp, (len(INDICES), SIZE, SIZE, 3)).astype(np.float32)
  texture, visible = render.unwrap_face(
    arrays, factors, image, batch["face_mask"], UV, remove_shading=False, focal=focal
  )
  chart = np.asarray(arrays.chart_mask)
  texel_uv = texel_centres(UV)  # (Hu, Wu, 2)
  seen = np.zeros(UV, bool)
  for b in range(len(INDICES)):
    vis = np.asarray(visible[b]) > 0
    assert 0.5 < vis.sum() / chart.sum() < 0.9
    seen |= vis
    pixels = _texel_pixels(procedural, arrays, batch, b)  # (Hu, Wu, 2)
    np.testing.assert_allclose(np.asarray(texture[b])[vis][:, :2], pixels[vis] / SIZE, atol=2e-4)
    assert np.all(np.asarray(texture[b])[~vis] == 0.0)
    # Self-occlusion: at a visible texel's pixel position the dataset's renderer shows
    # (nearly) the texel's own UV; at a hidden one that lands on the face, another part.
    scene = synthetic.sample_scene(procedural, INDICES[b], 0, SIZE)
    shown = synthetic.render_scene(procedural, scene, SIZE)[0]
    x, y = jnp.asarray(pixels[..., 0]), jnp.asarray(pixels[..., 1])
    shown_uv = np.asarray(bilinear(shown.uv, x, y))  # (Hu, Wu, 2)
    on_face = np.asarray(bilinear(shown.mask[..., None], x, y))[..., 0] > 0.999
    distance = np.linalg.norm(shown_uv - texel_uv, axis=-1)
    assert np.percentile(distance[vis], 99) < 0.04  # measured 0.023 and 0.012
    hidden = chart & ~vis & on_face
    assert hidden.sum() > 100
    assert np.median(distance[hidden]) > 0.1  # measured 0.20 and 0.26
  # Together the two yaws see both cheeks.
  assert seen.sum() > 0.8 * chart.sum()


def test_unwrap_removes_the_shading(arrays, batch, truth):
  """A flat grey albedo, rendered and unwrapped with its own light, comes back flat."""
  factors, focal, _, _ = truth
  grey = jnp.full((8, 8, 3), 0.5)
  out = render.render_face(arrays, factors, grey, SIZE, focal=focal)
  albedo, visible = render.unwrap_face(arrays, factors, out.image, out.mask, focal=focal)
  vis = np.asarray(visible) > 0
  error = np.abs(np.asarray(albedo) - 0.5).max(-1)[vis]
  # Residual: the image's shading is sampled bilinearly between pixel centres, the
  # divisor at the texel's own normal; they differ where the normal turns fast within
  # a pixel, near silhouettes (measured: mean 0.004, 95th percentile 0.016).
  assert error.mean() < 0.01
  assert np.percentile(error, 95) < 0.03
  # Without dividing, the texture keeps the shading, which varies a lot over the face.
  texture, _ = render.unwrap_face(
    arrays, factors, out.image, out.mask, remove_shading=False, focal=focal
  )
  assert np.std(np.asarray(texture)[vis]) > 5 * np.std(np.asarray(albedo)[vis])


@pytest.mark.slow
def test_unwrap_then_render_round_trip(arrays, batch, truth):
  """Dataset image -> partial UV albedo -> re-rendered image, on the visible face pixels."""
  factors, focal, _, _ = truth
  image = batch["image"] / 255.0
  valid = batch["segmentation"] == 1
  albedo, visible = render.unwrap_face(arrays, factors, image, valid, focal=focal)
  again = render.render_face(arrays, factors, albedo, SIZE, focal=focal)
  # Pixels whose four UV taps are all visible texels.
  coverage = render.render_face(
    arrays, factors, jnp.repeat(visible[..., None], 3, -1), SIZE, focal=focal
  ).albedo[..., 0]
  inside = (np.asarray(coverage) > 1 - 1e-4) & valid
  assert inside.sum() > 0.8 * valid.sum()
  error = np.abs(np.asarray(again.image) - image).max(-1)[inside]
  # Residual: image -> UV -> image is two bilinear resamplings (texels land up to a
  # third of a pixel off the pixel centres), which blurs the eyes, brows and lips.
  assert error.mean() < 0.006
  assert np.percentile(error, 90) < 0.015
  # The same with a pose off by one pixel is clearly worse: the check can fail.
  shifted = factors._replace(translation=factors.translation + 2.0 / SIZE)
  albedo_off, _ = render.unwrap_face(arrays, shifted, image, valid, focal=focal)
  off = render.render_face(arrays, factors, albedo_off, SIZE, focal=focal)
  assert np.abs(np.asarray(off.image) - image).max(-1)[inside].mean() > 2 * error.mean()


def test_unwrapped_albedo_matches_the_ground_truth(procedural, arrays, batch):
  """Where the face is seen frontally enough, the partial albedo is the dataset's albedo."""
  factors = targets.example_factors(arrays, batch)
  focal = targets.pose_targets(arrays, batch).focal
  albedo, visible = render.unwrap_face(
    arrays, factors, batch["image"] / 255.0, batch["segmentation"] == 1, focal=focal
  )
  target = np.asarray(targets.ground_truth_albedo(procedural, batch["albedo_coefficients"], UV))
  vis = np.asarray(visible) > 0
  error = np.abs(np.asarray(albedo) - target).max(-1)[vis]
  # A 64 px image holds less detail than a 128 px UV map (the face covers ~40 px), so
  # sharp albedo features come back blurred; smooth skin comes back nearly exactly.
  assert np.median(error) < 0.005
  assert error.mean() < 0.015


# --------------------------------------------------------------------------- ground-truth albedo


def test_ground_truth_albedo(procedural, batch):
  coefficients = batch["albedo_coefficients"]  # (B, Ka)
  native = np.asarray(targets.ground_truth_albedo(procedural, coefficients))
  reference = np.clip(
    np.asarray(procedural.albedo_mean)
    + np.einsum("bk,khwc->bhwc", coefficients, np.asarray(procedural.albedo_basis)),
    0.0,
    1.0,
  )
  np.testing.assert_allclose(native, reference, atol=1e-5)
  half = np.asarray(targets.ground_truth_albedo(procedural, coefficients, (128, 128)))
  assert half.shape == (len(INDICES), 128, 128, 3)
  assert half.min() >= 0.0 and half.max() <= 1.0
  blocks = reference.reshape(len(INDICES), 128, 2, 128, 2, 3).mean(axis=(2, 4))
  assert np.abs(half - blocks).mean() < 0.005
  one = targets.ground_truth_albedo(procedural, coefficients[0], (128, 128))
  np.testing.assert_allclose(one, half[0], atol=1e-6)


# --------------------------------------------------------------------------- autodiff and jit


@pytest.mark.slow
def test_gradients_are_finite_and_reach_every_factor(arrays, batch, truth):
  factors, _, albedo, _ = truth
  image = jnp.asarray(batch["image"] / 255.0)
  valid = jnp.asarray(batch["segmentation"] == 1)
  small_albedo = jax.image.resize(albedo, (len(INDICES), 32, 32, 3), "linear")
  # Perturb so the losses are not at their minimum.
  start = factors._replace(
    scale=factors.scale * 1.03,
    translation=factors.translation + 0.02,
    illumination=factors.illumination * 1.1,
  )

  def loss(factors, uv_albedo):
    out = render.render_face(arrays, factors, uv_albedo, SIZE, antialias=True)
    reconstruction = jnp.mean(jnp.abs(out.image - image) * valid[..., None])
    landmarks = jnp.mean((out.landmarks - batch["landmarks"]) ** 2)
    partial, visible = render.unwrap_face(arrays, factors, image, valid)
    unwrapped = jnp.mean(jnp.abs(partial - uv_albedo_at_uv(uv_albedo)) * visible[..., None])
    return reconstruction + 1e-3 * landmarks + unwrapped

  def uv_albedo_at_uv(uv_albedo):
    return jax.image.resize(uv_albedo, (len(INDICES), *UV, 3), "linear")

  grads = jax.grad(loss, argnums=(0, 1))(start, small_albedo)
  for name in ("scale", "translation", "rotation", "illumination", "identity", "expression"):
    g = np.asarray(getattr(grads[0], name))
    assert np.all(np.isfinite(g)), name
    assert np.abs(g).max() > 0, name
  assert np.all(np.isfinite(grads[1])) and np.abs(grads[1]).max() > 0


def test_landmark_gradients_match_finite_differences(arrays, truth):
  factors, focal, _, _ = truth
  rng = np.random.default_rng(0)
  weights = jnp.asarray(rng.normal(size=(len(INDICES), arrays.landmarks.shape[0], 2)))
  f = lambda x: jnp.sum(weights * render.project_landmarks(arrays, x, SIZE, focal=focal))
  grads = jax.grad(f)(factors)
  direction = jax.tree_util.tree_map(
    lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32) * 1e-2, factors
  )
  step = 1e-2
  plus = jax.tree_util.tree_map(lambda x, d: x + step * d, factors, direction)
  minus = jax.tree_util.tree_map(lambda x, d: x - step * d, factors, direction)
  numeric = (f(plus) - f(minus)) / (2 * step)
  analytic = sum(
    jnp.sum(g * d)
    for g, d in zip(
      jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(direction), strict=True
    )
  )
  assert float(numeric) == pytest.approx(float(analytic), rel=2e-2)


@pytest.mark.slow
def test_jit_traces_once(arrays, truth):
  factors, focal, albedo, out = truth

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(arrays, factors, albedo, focal):
    return render.render_face(arrays, factors, albedo, SIZE, focal=focal).image

  first = step(arrays, factors, albedo, focal)
  np.testing.assert_allclose(first, out.image, atol=1e-5)
  np.testing.assert_allclose(
    render.render_face(arrays, factors, albedo, SIZE, focal=focal, batch_mode="vmap").image,
    out.image,
    atol=1e-5,
  )
  moved = factors._replace(translation=factors.translation + 0.05)
  second = step(arrays, moved, albedo * 0.9, focal)
  assert not np.allclose(first, second)


# --------------------------------------------------------------------------- errors


def test_invalid_inputs_raise(procedural, arrays, truth, batch):
  factors, _, albedo, _ = truth
  with pytest.raises(ValueError, match="translation"):
    render.face_geometry(arrays, factors._replace(translation=jnp.zeros((2, 3))))
  with pytest.raises(ValueError, match="identity"):
    render.face_geometry(arrays, factors._replace(identity=jnp.zeros((2, 7))))
  with pytest.raises(ValueError, match="scale"):
    render.face_geometry(arrays, factors._replace(scale=jnp.zeros(())))
  with pytest.raises(ValueError, match="focal"):
    render.face_geometry(arrays, factors, focal=jnp.ones(3))
  with pytest.raises(ValueError, match="uv_albedo"):
    render.render_face(arrays, factors, albedo[..., :2], SIZE)
  with pytest.raises(ValueError, match="image_size"):
    render.render_face(arrays, factors, albedo, (SIZE, 0))
  with pytest.raises(ValueError, match="uv_size"):
    render.unwrap_face(arrays, factors, jnp.zeros((2, SIZE, SIZE, 3)), jnp.ones((2, SIZE, SIZE)),
                       (64, 64))  # fmt: skip
  with pytest.raises(ValueError, match="visibility_mask"):
    render.unwrap_face(arrays, factors, jnp.zeros((2, SIZE, SIZE, 3)), jnp.ones((2, SIZE)))
  with pytest.raises(ValueError, match="focal"):
    targets.pose_targets(arrays, {"pose": batch["pose"], "translation": batch["translation"]})
  with pytest.raises(ValueError, match="uv_size"):
    render.face_model_arrays(procedural, (0, 8))
  assert isinstance(factors, Factors)
