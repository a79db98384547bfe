"""3DFaceFill's completion pipeline on the smoke config: synthesis with the true fit, completion
outside/inside the holes, novel views, and the ablations switching what they name.

Independent references: the render layer called directly with ground-truth
factors and albedo, scipy's rotation algebra, the jaxpr's convolution count.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import traverse_util
from scipy.spatial.transform import Rotation

from configs import facefill as facefill_config
from jaxface.methods import facefill
from jaxface.methods.facefill import masks, pipeline, render
from jaxface.methods.facefill.data import FACE, OCCLUSION
from tests.methods.facefill.common import truth_factors


def test_synthesis_with_the_true_fit_and_albedo_fills_the_hole(smoke, state):
  """unwrap / synthesise / blend with the inpainter replaced by the ground truth."""
  config, _, data = smoke
  batch = jax.device_get(data.batch(0))
  images, labels = batch["image"], batch["segmentation"]
  face = labels == FACE
  holes = np.asarray(masks.random_rectangle_mask(jax.random.PRNGKey(3), face, split="test"))
  factors = truth_factors(batch)
  uv, uv_visible = pipeline.unwrap(state, factors, images, face & ~holes, config)
  seen = np.asarray(uv_visible) > 0
  assert seen.mean() > 0.1
  assert np.abs(np.asarray(uv) - batch["albedo"])[seen].mean() < 0.05  # shading divided out
  zeros = jnp.zeros(uv.shape[:3])
  rendered, coverage, pixel_log_uncertainty, overflow = pipeline.synthesise(
    state, factors, batch["albedo"], zeros, config
  )
  blended = np.asarray(pipeline.blend(images, holes, rendered, coverage, face & ~holes))
  np.testing.assert_array_equal(blended[~holes], images[~holes])
  inside = holes & (np.asarray(coverage) > 0)
  assert inside.sum() > 0.9 * holes.sum()
  assert np.abs(blended - images).mean(-1)[inside].mean() < 0.05
  assert int(np.max(overflow)) == 0 and float(np.abs(pixel_log_uncertainty).max()) == 0


def test_complete_keeps_the_input_outside_the_mask(smoke, state, eval_batch):
  config, _, _ = smoke
  images, labels = eval_batch["image"], eval_batch["segmentation"]
  holes = np.asarray(
    masks.random_rectangle_mask(jax.random.PRNGKey(0), labels == FACE, split="test")
  )
  out = pipeline.complete_jit(state, images, holes, config=config, segmentation=labels)
  image = np.asarray(out.image)
  np.testing.assert_array_equal(image[~holes], images[~holes])
  assert np.isfinite(image).all() and np.abs(image - images)[holes].max() > 0
  np.testing.assert_array_equal(np.asarray(out.holes), holes)
  assert (np.asarray(out.uv_input)[np.asarray(out.uv_visible) == 0] == 0).all()
  assert out.uv_completed.shape == (len(images), 64, 64, 3)
  # De-occlusion: no mask, the segmenter's labels; one pass.
  out = pipeline.complete_jit(state, images, None, config=config, iterations=1)
  predicted = np.asarray(out.segmentation)
  np.testing.assert_array_equal(predicted, np.asarray(pipeline.segment_jit(state, images, config)))
  occluded = predicted == OCCLUSION
  np.testing.assert_array_equal(np.asarray(out.holes), occluded)
  np.testing.assert_array_equal(np.asarray(out.image)[~occluded], images[~occluded])
  with pytest.raises(ValueError, match="masks must have shape"):
    pipeline.complete(state, images, holes[:, :32], config=config)


def test_novel_views_turn_the_completed_face(smoke, state, eval_batch):
  config, _, _ = smoke
  images, labels = eval_batch["image"][:2], eval_batch["segmentation"][:2]
  holes = np.asarray(
    masks.random_rectangle_mask(jax.random.PRNGKey(0), labels == FACE, split="test")
  )
  out = pipeline.complete_jit(state, images, holes, config=config, segmentation=labels)
  views = np.asarray(
    pipeline.novel_views(state, out, config=config, yaws_degrees=(0.0, 30.0), background=0.5)
  )
  assert views.shape == (2, 2, 64, 64, 3)
  # Yaw 0 is the completion's own re-render.
  covered = np.asarray(out.coverage) > 0
  np.testing.assert_allclose(views[:, 0][covered], np.asarray(out.rendered)[covered], atol=1e-5)
  assert (views[:, 0][~covered] == 0.5).all()
  # Yaw 30: the estimated rotation turned about the camera's y axis (scipy's rotation algebra).
  w, x, y, z = np.moveaxis(np.asarray(out.factors.rotation, np.float64), -1, 0)
  estimated = Rotation.from_quat(np.stack([x, y, z, w], -1))
  turned = (Rotation.from_euler("y", 30, degrees=True) * estimated).as_quat()  # (B, 4) xyzw
  factors = out.factors._replace(rotation=jnp.asarray(np.roll(turned, 1, -1), jnp.float32))
  reference = render.render_face(state.arrays, factors, out.uv_completed, 64, background=0.5)
  np.testing.assert_allclose(views[:, 1], np.asarray(reference.image), atol=1e-4)
  assert np.abs(views[:, 1] - views[:, 0]).max() > 0.1


def _conv_count(state, images, holes, labels, config) -> int:
  jaxpr = jax.make_jaxpr(
    lambda i, h, seg: pipeline.complete(state, i, h, config=config, segmentation=seg)
  )
  return str(jaxpr(images, holes, labels)).count("conv_general_dilated")


def test_ablations_switch_what_they_name(smoke, make_config, state, eval_batch):
  default, dataset, _ = smoke
  configs = {
    name: ml_collections.FrozenConfigDict(make_config(f"smoke,ablation={name}"))
    for name in ("no_sym", "no_il", "no_ir")
  }
  flat = lambda c: traverse_util.flatten_dict(c.to_dict()["facefill"], sep=".")
  differences = {
    name: {key for key, value in flat(config).items() if flat(default)[key] != value}
    for name, config in configs.items()
  }
  assert differences == {
    "no_sym": {"symmetry", "lambda_symmetry"},
    "no_il": {"remove_shading"},
    "no_ir": {"iterations"},
  }
  assert ("none", *configs) == facefill_config.ABLATIONS
  # no_sym: a plain gated U-Net (one first-level branch, twice as wide), no symmetry loss.
  no_sym = facefill.create_state(configs["no_sym"], jax.random.PRNGKey(0), dataset)
  assert configs["no_sym"].facefill.lambda_symmetry == 0
  assert "down0_flipped" in state.inpainter["params"]
  assert "down0_flipped" not in no_sym.inpainter["params"]
  # no_il: the UV input is the shaded texture, and re-rendering does not shade it again.
  no_il = configs["no_il"]
  batch = eval_batch
  factors = truth_factors(batch)
  visible = batch["segmentation"] == FACE
  texture, _ = pipeline.unwrap(state, factors, batch["image"], visible, no_il)
  reference, _ = render.unwrap_face(
    state.arrays, factors, batch["image"], visible, remove_shading=False
  )
  np.testing.assert_array_equal(np.asarray(texture), np.asarray(reference))
  albedo, _ = pipeline.unwrap(state, factors, batch["image"], visible, default)
  assert np.abs(np.asarray(albedo) - np.asarray(texture)).max() > 0.05
  zeros = jnp.zeros((len(visible), 64, 64))
  out = render.render_face(state.arrays, factors, batch["albedo"], 64)
  shaded = pipeline.synthesise(state, factors, batch["albedo"], zeros, default)[0]
  unshaded = pipeline.synthesise(state, factors, batch["albedo"], zeros, no_il)[0]
  np.testing.assert_allclose(np.asarray(shaded), np.asarray(out.image), atol=1e-6)
  np.testing.assert_allclose(np.asarray(unshaded), np.asarray(out.albedo), atol=1e-6)
  # no_ir: one completion pass where the default makes two (half the convolutions).
  holes = np.zeros(visible.shape, bool)
  labels = batch["segmentation"]
  assert default.facefill.iterations == 2 and configs["no_ir"].facefill.iterations == 1
  two = _conv_count(state, batch["image"], holes, labels, default)
  one = _conv_count(state, batch["image"], holes, labels, configs["no_ir"])
  assert one > 0 and two == 2 * one
