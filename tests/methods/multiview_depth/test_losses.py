"""Eqs. 3-16 on hand-made and rendered cases: photo-consistency with true depth and poses is
near 0 on a Lambertian pair and large with a wrong pose; the 3DMM regulariser trains DepthNet
only; the suitability weighting and its regulariser trade off as documented."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxface.data import multiview
from jaxface.methods.multiview_depth import geometry, losses, steps
from jaxface.methods.multiview_depth.networks import Fit
from jaxface.render.warp import covisibility, warp

SIZE = 64


_EXAMPLES: dict[str, dict] = {}


def _example(procedural, kind: str) -> dict:
  if kind not in _EXAMPLES:
    _EXAMPLES[kind] = multiview.face_views_example(
      procedural, 5, seed=3, face_kind=kind, image_size=SIZE, fit_identity=10, fit_expression=20
    )
  return _EXAMPLES[kind]


def _camera(example, view):
  rotation = jnp.asarray(example["rotation"][view])
  return geometry.cameras(rotation[None], jnp.asarray(example["translation"][view])[None],
                          example["focal"], SIZE)  # fmt: skip


def _photo_error(example, first, second, pose_of=None):
  """Mean L1 of view `second` warped into view `first` by the true depth, on co-visible pixels;
  with `pose_of`, view 2's image is warped as if seen from that view (a wrong pose)."""
  image = example["image"].astype(np.float32) / 255.0
  depth, mask = example["depth"], example["mask"] > 0
  camera_1 = _camera(example, first)
  camera_2 = _camera(example, second if pose_of is None else pose_of)
  one = lambda c: jax.tree.map(lambda x: x[0], c)
  seen = covisibility(depth[first], depth[second], one(_camera(example, first)),
                      one(_camera(example, second)), 0.6, mask[first], mask[second])  # fmt: skip
  warped, valid = warp(jnp.asarray(image[second]), jnp.asarray(depth[first]), one(camera_1),
                       one(camera_2), jnp.asarray(mask[first]))  # fmt: skip
  error = losses.photometric_error(jnp.asarray(image[first])[None], warped[None], "l1", 0.85)[0]
  region = np.asarray(valid & seen)
  assert region.sum() > 200
  return float(np.asarray(error)[region].mean())


@pytest.mark.parametrize("views", [(0, 1), (2, 5)])
def test_photo_loss_is_near_zero_with_true_depth_and_poses_and_large_with_a_wrong_pose(
  procedural, views
):
  example = _example(procedural, "synthetic")  # Lambertian, light fixed to the face
  right = _photo_error(example, *views)
  wrong = _photo_error(example, *views, pose_of=views[1] + 1)  # the pose of another view
  assert right < 0.02, right  # quantisation and bilinear resampling only
  assert wrong > 4 * right, (right, wrong)


def test_real_like_pairs_break_photo_consistency_where_lambertian_ones_do_not(procedural):
  # Highlights and per-camera colour responses: what the suitability map is for.
  lambertian = _photo_error(_example(procedural, "synthetic"), 0, 1)
  real = _photo_error(_example(procedural, "real"), 3, 4)
  assert real > 2 * lambertian, (lambertian, real)


def test_l1_ssim_is_zero_on_identical_images_and_mixes_both_terms():
  rng = np.random.default_rng(0)
  image = jnp.asarray(rng.uniform(size=(1, 12, 12, 3)), jnp.float32)
  np.testing.assert_allclose(
    losses.photometric_error(image, image, "l1_ssim", 0.85), 0.0, atol=1e-5
  )
  shifted = image * 0.8 + 0.1
  l1 = losses.photometric_error(image, shifted, "l1", 0.85)
  mixed = losses.photometric_error(image, shifted, "l1_ssim", 0.0)
  np.testing.assert_allclose(mixed, l1, rtol=1e-6)  # weight 0: L1 alone
  assert losses.photometric_error(image, shifted, "l1_ssim", 1.0).shape == (1, 12, 12)


def test_three_dmm_regularizer_sends_no_gradient_to_its_target():
  predicted = jnp.linspace(0.0, 1.0, 12).reshape(1, 3, 4)
  fit_depth = jnp.full((1, 3, 4), 0.5)
  grad_target = jax.grad(lambda t: losses.three_dmm_regularizer(predicted, t, 0.02))(fit_depth)
  assert not np.asarray(grad_target).any()
  grad_predicted = jax.grad(lambda p: losses.three_dmm_regularizer(p, fit_depth, 0.02))(predicted)
  np.testing.assert_allclose(grad_predicted, 0.02 * 2 * (predicted - 0.5) / 12, rtol=1e-6)


def test_depth_stage_gradient_reaches_depthnet_and_suitability_but_not_3dmmnet(smoke, state):
  config, _, pipeline = smoke
  batch = jax.tree.map(jnp.asarray, pipeline.local_batch(0))

  def objective(three_dmm, depth, suitability):
    moved = state.replace(three_dmm={"params": three_dmm})
    params = {"depth": depth, "suitability": suitability}
    return steps.depth_objective(params, moved, batch, config)[0]

  grads = jax.grad(objective, argnums=(0, 1, 2))(
    state.three_dmm["params"], state.depth["params"], state.suitability["params"]
  )
  norms = [sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(tree)) for tree in grads]
  assert norms[0] == 0.0  # 3DMMNet is frozen in the depth stage (its fit is stop_gradient)
  assert norms[1] > 0.0 and norms[2] > 0.0


def test_suitability_lowers_exactly_where_the_photo_error_exceeds_its_weight():
  error = jnp.asarray([[[0.05, 0.3]]])  # (1, 1, 2): one consistent pixel, one highlight
  region = jnp.ones((1, 1, 2), bool)

  def total(suitability):
    return losses.view_synthesis_loss(error, suitability, region, region) + (
      losses.suitability_regularizer(suitability, region, 0.1)
    )

  gradient = np.asarray(jax.grad(total)(jnp.full((1, 1, 2), 0.5)))
  # d/dC = (e - 0.1) / 2 per pixel: raise C where e < 0.1, lower it where e > 0.1.
  np.testing.assert_allclose(gradient[0, 0], [(0.05 - 0.1) / 2, (0.3 - 0.1) / 2], rtol=1e-6)


def test_coefficient_loss_without_expression_labels_ignores_expressions():
  fit = Fit(
    jnp.ones((2, 3)), jnp.full((2, 4), 5.0), jnp.tile(jnp.eye(3), (2, 1, 1)), jnp.zeros((2, 3))
  )
  np.testing.assert_allclose(losses.coefficient_loss(fit, jnp.zeros((2, 3)), None, 1.0, 1.0), 1.0)
  np.testing.assert_allclose(
    losses.coefficient_loss(fit, jnp.zeros((2, 3)), jnp.zeros((2, 4)), 1.0, 1.0), 6.0
  )


def test_landmark_loss_is_in_percent_of_the_image_side():
  target = jnp.zeros((1, 68, 2))
  projected = target.at[..., 0].set(3.2)  # every landmark 3.2 px off on a 64 px image
  np.testing.assert_allclose(losses.landmark_loss(projected, target, 64), 5.0, rtol=1e-5)


def test_occlusion_ablation_compares_the_whole_render(make_config):
  config = ml_collections.FrozenConfigDict(make_config("smoke,ablation=no_occlusion"))
  mask = jnp.ones((1, 4, 4), bool).at[0, 0, 0].set(False)
  fit = Fit(
    jnp.zeros((1, 6)), jnp.zeros((1, 10)), jnp.eye(3)[None], jnp.asarray([[0.0, 0.0, -90.0]])
  )
  out = steps.occlusion_mask(config, fit, fit, jnp.ones((1, 4, 4)), jnp.ones((1, 4, 4)), mask, mask)
  np.testing.assert_array_equal(out, mask)
