"""3DFaceFill's method on the smoke config: config, data, each stage's step, the completion
pipeline, ablations, pretrained weights, evaluation, and the smoke command end to end.

Independent references: the synthetic dataset's raw fields, the render layer
called directly with ground-truth factors, a checkpoint written here with orbax.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from scipy.spatial.transform import Rotation

from configs import facefill as facefill_config
from jaxface.methods.facefill import masks, method, render, report
from jaxface.methods.facefill.data import BACKGROUND, FACE, OCCLUSION
from jaxface.methods.facefill.model import Factors
from jaxface.metrics.image import lpips_weights_from_tensors, save_lpips
from jaxface.training.loop import phase_at
from jaxface.training.pipeline import InputPipeline
from tests.golden import check_golden
from tests.helpers import run_python
from tests.metrics.test_image import random_tensors

STAGE_STEPS = 5  # the smoke command's steps per stage: 4 x 5 = the 20 recorded steps
MODULES = ("encoder", "decoder", "inpainter", "discriminator", "segmenter")
TRAINS = {
  "3dmm": {"encoder", "decoder"},
  "3dmm_unsup": {"encoder", "decoder"},
  "inpaint": {"inpainter", "discriminator"},
  "segment": {"segmenter"},
}


@pytest.fixture(scope="module")
def smoke(make_config):
  config = make_config()
  dataset = method.create_dataset(config, "train")
  pipeline = InputPipeline(dataset, config.batch_size, 0, None, 0)
  return config, dataset, pipeline


@pytest.fixture(scope="module")
def state(smoke):
  """An untrained stage=all state (every module "trained", so every metric is reported)."""
  config, dataset, _ = smoke
  return method.init_state(config, jax.random.PRNGKey(0), dataset)


@pytest.fixture(scope="module")
def eval_batch(smoke, state):
  """The evaluation batch size of eval images, as numpy (as `evaluate` passes them)."""
  config, _, _ = smoke
  data = method.create_dataset(config, "eval").read(np.arange(state.settings.eval_batch_size))
  return data


def _truth(batch) -> Factors:
  """Ground-truth factors of a batch (the first Ki / Ke coefficients)."""
  return Factors(
    scale=jnp.asarray(batch["scale"]), translation=jnp.asarray(batch["translation"]),
    rotation=jnp.asarray(batch["rotation"]), illumination=jnp.asarray(batch["sh"]),
    identity=jnp.asarray(batch["identity"]), expression=jnp.asarray(batch["expression"]),
    albedo_features=jnp.zeros((len(batch["scale"]), 0)),
  )  # fmt: skip


def _params_changed(before, after) -> set[str]:
  changed = set()
  for name in MODULES:
    old, new = getattr(before, name)["params"], getattr(after, name)["params"]
    differs = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), old, new)
    if any(jax.tree_util.tree_leaves(differs)):
      changed.add(name)
  return changed


def _finite(metrics) -> dict[str, float]:
  values = {k: float(v) for k, v in metrics.items()}
  assert all(np.isfinite(v) for v in values.values()), values
  return values


# --------------------------------------------------------------------------- config


def test_config_variants_stages_and_errors():
  lines = facefill_config.__doc__.strip().splitlines()
  assert lines[2].strip().startswith("python train/main.py --config=configs/facefill.py:smoke")
  for variant in facefill_config.VARIANTS:
    config = facefill_config.get_config(variant)
    assert config.method == "facefill" and config.facefill.stage == "all"
    steps = [config.facefill[f"steps_{s}"] for s in method.STAGES]
    assert config.num_steps == sum(steps) and min(steps) > 0
  paper = facefill_config.get_config("paper")
  assert paper.data.model == "ict" and paper.data.image_size == 224
  assert (paper.facefill.steps_3dmm, paper.facefill.steps_3dmm_unsup) == (100_000, 30_000)
  assert (paper.facefill.steps_inpaint, paper.facefill.steps_segment) == (30_000, 50_000)
  assert paper.facefill.learning_rate == 1e-4 and paper.facefill.discriminator_learning_rate == 3e-4
  assert paper.facefill.unsup_lr_factor == 0.1 and tuple(paper.facefill.uv_size) == (192, 256)
  # A stage's run length follows its step field, also after an override.
  config = facefill_config.get_config("smoke,stage=inpaint")
  assert config.num_steps == 4
  config.facefill.steps_inpaint = 7
  assert config.num_steps == 7
  config = facefill_config.get_config("smoke")
  config.facefill.steps_3dmm = 10
  assert config.num_steps == 10 + 2 + 4 + 2
  assert facefill_config.get_config("no_sym").ablation == "no_sym"
  for arg, match in [
    ("huge", "unknown variant"), ("smoke,ablation=no_gan", "unknown ablation"),
    ("smoke,stage=gan", "unknown stage"), ("smoke,size=3", "unknown config argument"),
  ]:  # fmt: skip
    with pytest.raises(ValueError, match=match):
      facefill_config.get_config(arg)


@pytest.mark.parametrize(
  ("field", "value", "match"),
  [
    ("facefill.symmetry", "mirror", "config.facefill.symmetry"),
    ("facefill.iterations", 0, "config.facefill.iterations"),
    ("facefill.uv_size", (48, 64), "config.facefill.uv_size"),
    ("facefill.eval.buckets", ((0.1, 0.2), (0.3, 0.4)), "config.facefill.eval.buckets"),
    ("facefill.eval.baselines", ("deepfill",), "config.facefill.eval.baselines"),
    ("facefill.stage", "segment", "config.num_steps"),
    ("facefill.steps_inpaint", -1, "config.facefill.steps_inpaint"),
    ("facefill.texture_loss", "l3", "config.facefill.texture_loss"),
    ("facefill.eval.num_images", 0, "config.facefill.eval.num_images"),
  ],
)
def test_invalid_settings_name_the_field(smoke, make_config, field, value, match):
  _, dataset, _ = smoke
  config = make_config(**{field: value})
  with pytest.raises(ValueError, match=match):
    method.settings_from_config(config, dataset)


def test_stage_schedule_of_stage_all(make_config, smoke):
  _, dataset, _ = smoke
  settings = method.settings_from_config(make_config(), dataset)
  assert settings.schedule == (("3dmm", 4), ("3dmm_unsup", 2), ("inpaint", 4), ("segment", 2))
  assert method.phases(make_config()) == settings.schedule
  indices = [phase_at(settings.schedule, step) for step in range(12)]
  assert indices == [0] * 4 + [1] * 2 + [2] * 4 + [3] * 2
  # A stage with 0 steps is left out of the schedule.
  skipping = make_config(**{"facefill.steps_3dmm_unsup": 0})
  settings = method.settings_from_config(skipping, dataset)
  assert settings.stages == ("3dmm", "inpaint", "segment")
  assert settings.trained == ("3dmm", "inpaint", "segment")
  single = method.settings_from_config(make_config("smoke,stage=segment"), dataset)
  assert single.schedule == (("segment", 2),) and single.trained == ("segment",)


# --------------------------------------------------------------------------- data


def test_dataset_fields_and_targets_reproduce_the_images(smoke):
  _, dataset, _ = smoke
  indices = [0, 1, 2, 3]
  batch = dataset.read(indices)
  raw = [dataset.source[i] for i in indices]
  assert batch["image"].shape == (4, 64, 64, 3) and batch["albedo"].shape == (4, 64, 64, 3)
  assert batch["identity"].shape == (4, 8) and batch["expression"].shape == (4, 8)
  for example, labels, image in zip(raw, batch["segmentation"], batch["image"], strict=True):
    source = np.asarray(example["segmentation"])
    assert (labels[source == 0] == BACKGROUND).all() and (labels[source == 1] == FACE).all()
    assert (labels[source == 2] == OCCLUSION).all()
    np.testing.assert_array_equal(image, np.asarray(example["image"], np.float32) / 255)
  # The pose and albedo targets, with the full coefficients, render the examples' faces.
  full = render.face_model_arrays(dataset.model, (64, 64))
  factors = _truth(batch)._replace(
    identity=jnp.stack([e["identity"] for e in raw]),
    expression=jnp.stack([e["expression"] for e in raw]),
  )
  out = render.render_face(full, factors, batch["albedo"], 64)
  face = (batch["segmentation"] == FACE) & (np.asarray(out.mask) > 0)
  error = np.abs(np.asarray(out.image) - batch["image"]).mean(-1)[face]
  assert error.mean() < 0.03, error.mean()  # weak perspective vs the dataset's perspective
  assert np.mean(np.asarray(out.mask)[batch["segmentation"] == FACE]) > 0.95


# --------------------------------------------------------------------------- training stages


def _expected_loss(stage: str, metrics: dict, settings) -> tuple[float, ...]:
  s = settings
  if stage == "3dmm":
    sup = (
      s.lambda_shape * metrics["3dmm/shape"] + s.lambda_pose * metrics["3dmm/pose"]
      + s.lambda_texture * metrics["3dmm/texture"] + s.lambda_landmark * metrics["3dmm/landmark"]
    )  # fmt: skip
    reg = s.lambda_sym3d * metrics["3dmm/sym3d"] + s.lambda_const * metrics["3dmm/const"]
    return (metrics["3dmm/loss"], sup + metrics["3dmm/rec"] + reg)
  if stage == "3dmm_unsup":
    m = {k.split("/")[1]: v for k, v in metrics.items()}
    return (m["loss"], m["landmark"] + m["rec"] + m["sym3d"] + m["const"])
  if stage == "inpaint":
    m = {k.split("/")[1]: v for k, v in metrics.items()}
    g = m["uv"] + m["symmetry"] + m["image"] + s.lambda_gan * m["gan"]
    d = m["d_hinge"] + s.gradient_penalty * m["d_gradient_penalty"]
    return (m["g_loss"], g, m["d_loss"], d)
  return ()


def test_a_single_stage_state_steps_without_a_phase_and_compiles_once(smoke, make_config):
  """train_step as a user calls it on a one-stage run; the other stages run in the smoke command."""
  _, dataset, pipeline = smoke
  state = method.init_state(make_config("smoke,stage=segment"), jax.random.PRNGKey(0), dataset)
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(state, batch):
    return method.train_step(state, batch)

  before = state
  for index in range(2):
    state, metrics = step(state, pipeline.batch(index))
    metrics = _finite(metrics)
  assert set(metrics) == {f"segment/{name}" for name in method.METRIC_NAMES["segment"]}
  assert int(state.step) == 2 and _params_changed(before, state) == {"segmenter"}
  with pytest.raises(ValueError, match="not a stage of this run"):
    method.train_step(state, pipeline.batch(0), phase="inpaint")
  every_stage = method.init_state(make_config(), jax.random.PRNGKey(0), dataset)
  with pytest.raises(ValueError, match="pass phase"):
    method.train_step(every_stage, pipeline.batch(0))


def test_inpaint_update_trains_the_inpainter_on_a_correct_fit(smoke, make_config):
  _, dataset, pipeline = smoke
  state = method.init_state(make_config("smoke,stage=inpaint"), jax.random.PRNGKey(0), dataset)
  batch = pipeline.batch(0)
  holes = masks.random_rectangle_mask(jax.random.PRNGKey(1), batch["segmentation"] == FACE)
  update = jax.jit(method.inpaint_update)
  new, metrics = update(
    state, batch["image"], batch["segmentation"], holes, _truth(batch), jax.random.PRNGKey(2)
  )
  metrics = _finite(metrics)
  assert metrics["usable"] == 1.0 and metrics["uv"] > 0 and metrics["overflow"] == 0
  assert _params_changed(state, new) == {"inpainter", "discriminator"}


# --------------------------------------------------------------------------- the pipeline


def test_synthesis_with_the_true_fit_and_albedo_fills_the_hole(smoke, state):
  """_unwrap / _synthesise / _blend with the inpainter replaced by the ground truth."""
  _, _, pipeline = smoke
  batch = jax.device_get(pipeline.batch(0))
  images, labels = batch["image"], batch["segmentation"]
  face = labels == FACE
  holes = np.asarray(masks.random_rectangle_mask(jax.random.PRNGKey(3), face, split="test"))
  factors = _truth(batch)
  uv, uv_visible = method._unwrap(state, factors, images, face & ~holes)
  seen = np.asarray(uv_visible) > 0
  assert seen.mean() > 0.1
  assert np.abs(np.asarray(uv) - batch["albedo"])[seen].mean() < 0.05  # shading divided out
  zeros = jnp.zeros(uv.shape[:3])
  rendered, coverage, pixel_log_uncertainty, overflow = method._synthesise(
    state, factors, batch["albedo"], zeros
  )
  blended = np.asarray(method._blend(images, holes, rendered, coverage, face & ~holes))
  np.testing.assert_array_equal(blended[~holes], images[~holes])
  inside = holes & (np.asarray(coverage) > 0)
  assert inside.sum() > 0.9 * holes.sum()
  assert np.abs(blended - images).mean(-1)[inside].mean() < 0.05
  assert int(np.max(overflow)) == 0 and float(np.abs(pixel_log_uncertainty).max()) == 0


def test_complete_keeps_the_input_outside_the_mask(state, eval_batch):
  images, labels = eval_batch["image"], eval_batch["segmentation"]
  holes = np.asarray(
    masks.random_rectangle_mask(jax.random.PRNGKey(0), labels == FACE, split="test")
  )
  out = method._complete(state, images, holes, segmentation=labels)  # evaluate's call
  image = np.asarray(out.image)
  np.testing.assert_array_equal(image[~holes], images[~holes])
  assert np.isfinite(image).all() and np.abs(image - images)[holes].max() > 0
  np.testing.assert_array_equal(np.asarray(out.holes), holes)
  assert (np.asarray(out.uv_input)[np.asarray(out.uv_visible) == 0] == 0).all()
  assert out.uv_completed.shape == (len(images), 64, 64, 3)
  # De-occlusion: no mask, the segmenter's labels; one pass.
  out = method._complete(state, images, None, iterations=1)
  predicted = np.asarray(out.segmentation)
  np.testing.assert_array_equal(predicted, np.asarray(method._segment(state, images)))
  occluded = predicted == OCCLUSION
  np.testing.assert_array_equal(np.asarray(out.holes), occluded)
  np.testing.assert_array_equal(np.asarray(out.image)[~occluded], images[~occluded])
  with pytest.raises(ValueError, match="masks must have shape"):
    method.complete(state, images, holes[:, :32])


def test_novel_views_turn_the_completed_face(state, eval_batch):
  images, labels = eval_batch["image"][:2], eval_batch["segmentation"][:2]
  holes = np.asarray(
    masks.random_rectangle_mask(jax.random.PRNGKey(0), labels == FACE, split="test")
  )
  out = method._complete(state, images, holes, segmentation=labels)
  views = np.asarray(method.novel_views(state, out, yaws_degrees=(0.0, 30.0), background=0.5))
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


# --------------------------------------------------------------------------- ablations


def _conv_count(state, images, holes, labels) -> int:
  jaxpr = jax.make_jaxpr(lambda i, h, seg: method.complete(state, i, h, segmentation=seg))
  return str(jaxpr(images, holes, labels)).count("conv_general_dilated")


def test_ablations_switch_what_they_name(smoke, make_config, state, eval_batch):
  _, dataset, _ = smoke
  default = state.settings
  variants = {
    name: method.init_state(make_config(f"smoke,ablation={name}"), jax.random.PRNGKey(0), dataset)
    for name in ("no_sym", "no_il", "no_ir")
  }
  differences = {
    name: {
      field.name
      for field in dataclasses.fields(default)
      if getattr(default, field.name) != getattr(other.settings, field.name)
    }
    for name, other in variants.items()
  }
  assert differences == {
    "no_sym": {"symmetry", "lambda_symmetry"},
    "no_il": {"remove_shading"},
    "no_ir": {"iterations"},
  }
  # no_sym: a plain gated U-Net (one first-level branch, twice as wide), no symmetry loss.
  no_sym = variants["no_sym"]
  assert no_sym.settings.symmetry == "none" and no_sym.settings.lambda_symmetry == 0
  assert "down0_flipped" in state.inpainter["params"]
  assert "down0_flipped" not in no_sym.inpainter["params"]
  # no_il: the UV input is the shaded texture, and re-rendering does not shade it again.
  no_il = variants["no_il"]
  batch = eval_batch
  factors = _truth(batch)
  visible = batch["segmentation"] == FACE
  texture, _ = method._unwrap(no_il, factors, batch["image"], visible)
  reference, _ = render.unwrap_face(
    no_il.arrays, factors, batch["image"], visible, remove_shading=False
  )
  np.testing.assert_array_equal(np.asarray(texture), np.asarray(reference))
  albedo, _ = method._unwrap(state, factors, batch["image"], visible)
  assert np.abs(np.asarray(albedo) - np.asarray(texture)).max() > 0.05
  zeros = jnp.zeros((len(visible), 64, 64))
  out = render.render_face(state.arrays, factors, batch["albedo"], 64)
  shaded = method._synthesise(state, factors, batch["albedo"], zeros)[0]
  unshaded = method._synthesise(no_il, factors, batch["albedo"], zeros)[0]
  np.testing.assert_allclose(np.asarray(shaded), np.asarray(out.image), atol=1e-6)
  np.testing.assert_allclose(np.asarray(unshaded), np.asarray(out.albedo), atol=1e-6)
  # no_ir: one completion pass where the default makes two (half the convolutions).
  holes = np.zeros(visible.shape, bool)
  labels = batch["segmentation"]
  assert default.iterations == 2 and variants["no_ir"].settings.iterations == 1
  two = _conv_count(state, batch["image"], holes, labels)
  one = _conv_count(variants["no_ir"], batch["image"], holes, labels)
  assert one > 0 and two == 2 * one


# --------------------------------------------------------------------------- pretrained weights


def test_later_stages_load_the_earlier_stages_weights(smoke, make_config, tmp_path):
  _, dataset, _ = smoke
  source = method.init_state(make_config("smoke,stage=3dmm"), jax.random.PRNGKey(7), dataset)
  folder = (tmp_path / "run" / "checkpoints").absolute()
  with contextlib.closing(ocp.CheckpointManager(folder)) as manager:
    manager.save(4, args=ocp.args.StandardSave(source))
    manager.wait_until_finished()
  config = make_config("smoke,stage=inpaint")
  with pytest.raises(ValueError, match="init_3dmm"):
    method.phases(config)  # checked by the trainer before it trains
  config.facefill.init_3dmm = str(tmp_path / "run")
  loaded = method.create_state(config, jax.random.PRNGKey(0), None)
  fresh = method.init_state(config, jax.random.PRNGKey(0), dataset)
  for name in MODULES:
    expected = source if name in ("encoder", "decoder") else fresh
    chex.assert_trees_all_equal(getattr(loaded, name), getattr(expected, name))
  # A source with other widths is refused, naming the field and the module.
  narrow = make_config(
    "smoke,stage=inpaint", **{"facefill.widths.encoder": 1 / 8,
                              "facefill.init_3dmm": str(tmp_path / "run")}
  )  # fmt: skip
  with pytest.raises(ValueError, match=r"init_3dmm.*encoder"):
    method.create_state(narrow, jax.random.PRNGKey(0), None)
  config.facefill.init_segment = str(tmp_path / "missing")
  with pytest.raises(FileNotFoundError, match="init_segment"):
    method.create_state(config, jax.random.PRNGKey(0), None)


# --------------------------------------------------------------------------- evaluation


def test_evaluate_and_summaries(smoke, state, tmp_path):
  config, _, pipeline = smoke
  # LPIPS with (tiny, random) weights of the published layout, as a user's file would hold.
  weights = lpips_weights_from_tensors(random_tensors("alex", np.random.default_rng(0)), "alex")
  config = config.copy_and_resolve_references()
  config.facefill.eval.lpips = str(save_lpips(weights, tmp_path / "lpips_alex"))
  results = method.evaluate(state, method.create_dataset(config, "eval"), config)
  buckets = ("all", "10-20%", "20-30%", "30-40%", "40-50%")
  metrics = [f"{p}{m}" for p in ("", "telea_") for m in ("psnr", "ssim", "lpips")]
  expected = {f"{m}/{b}" for m in metrics for b in buckets}
  expected |= {"3dmm_landmark_px", "3dmm_rec_l1", "segment_accuracy", "segment_miou"}
  assert expected <= set(results)
  assert all(np.isfinite(v) for v in results.values()), results
  assert results["count/all"] == 4 * 8 and results["count/20-30%"] == 8
  assert 0 < results["ssim/all"] <= 1 and results["telea_psnr/all"] > 10
  assert results["lpips_available"] == 1 and results["lpips/all"] > 0
  images = method.summaries(state, pipeline.batch(0))
  assert {"input", "masked", "completion", "uv_partial", "uv_completed"} <= set(images)
  assert images["completion"].shape == (4, 64, 64, 3)
  assert images["uv_completed"].shape == (4, 64, 64, 3)


# --------------------------------------------------------------------------- the smoke command


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, facefill_data_dir):
  """The smoke command with 5 steps per stage, logged at every step (the recorded losses)."""
  workdir = tmp_path_factory.mktemp("facefill_smoke")
  start = time.perf_counter()
  run_python(
    "train/main.py", "--config=configs/facefill.py:smoke",
    f"--workdir={workdir}", f"--config.data.data_dir={facefill_data_dir}",
    *(f"--config.facefill.steps_{stage}={STAGE_STEPS}" for stage in method.STAGES),
    "--config.progress_bar=false", "--config.log_every=1",
    f"--config.checkpoint_every={STAGE_STEPS}", "--config.max_checkpoints_to_keep=10",
  )  # fmt: skip
  return workdir, time.perf_counter() - start


def _restore(workdir: pathlib.Path, step: int, like) -> method.State:
  with contextlib.closing(ocp.CheckpointManager((workdir / "checkpoints").absolute())) as manager:
    return manager.restore(step, args=ocp.args.StandardRestore(like))


def test_smoke_losses_are_the_recorded_ones(smoke_run):
  check_golden("facefill_smoke", smoke_run[0])


def test_smoke_command_trains_every_stage_then_evaluates(smoke_run, make_config, smoke):
  workdir, seconds = smoke_run
  assert seconds < 420, seconds  # ~3 min on the contended 2-core machine
  lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  trained = {line["step"]: line for line in lines if "train/phase" in line}
  # The schedule, 5 steps per stage, every step logged.
  assert {step: line["train/phase"] for step, line in trained.items()} == {
    step: (step - 1) // STAGE_STEPS for step in range(1, 4 * STAGE_STEPS + 1)
  }
  settings = method.settings_from_config(make_config(), smoke[1])
  for step, line in trained.items():
    stage = method.STAGES[int(line["train/phase"])]
    metrics = {k[len("train/") :]: v for k, v in line.items() if k.startswith(f"train/{stage}/")}
    assert set(metrics) == {f"{stage}/{name}" for name in method.METRIC_NAMES[stage]}, step
    assert all(np.isfinite(v) for v in metrics.values()), (step, metrics)
    # Each logged loss is linear in its logged parts.
    expected = _expected_loss(stage, metrics, settings)
    np.testing.assert_allclose(expected[0::2], expected[1::2], rtol=1e-4, err_msg=stage)
  assert trained[15]["train/inpaint/d_loss"] > 0 and trained[20]["train/segment/loss"] > 0

  # Each stage changes only its own modules and steps only its own optimiser.
  like = method.init_state(make_config(), jax.random.PRNGKey(0), smoke[1])
  states = {step: _restore(workdir, step, like) for step in (5, 10, 15, 20)}
  states[0] = like  # the run's initial state: the same config and seed
  assert _params_changed(states[0], states[5]) == TRAINS["3dmm"]
  assert _params_changed(states[5], states[10]) == TRAINS["3dmm_unsup"]
  changed = _params_changed(states[10], states[15])
  # The barely trained 3DMM may show no texel: then only the discriminator learns.
  usable = any(trained[step]["train/inpaint/usable"] for step in range(11, 16))
  assert changed == (TRAINS["inpaint"] if usable else {"discriminator"})
  assert _params_changed(states[15], states[20]) == TRAINS["segment"]
  counts = {
    field: int(jax.tree_util.tree_leaves(getattr(states[20], field))[0])
    for field in ("opt_3dmm", "opt_3dmm_unsup", "opt_segmenter")
  }
  assert counts == {"opt_3dmm": 5, "opt_3dmm_unsup": 5, "opt_segmenter": 5}
  assert int(states[20].step) == 20

  final = [line for line in lines if "eval/psnr/all" in line][-1]
  assert final["step"] == 20 and np.isfinite(final["eval/psnr/all"])
  assert np.isfinite(final["eval/telea_psnr/30-40%"]) and "eval/segment_miou" in final
  if not os.environ.get("JAXFACE_LPIPS"):  # no weights: reported unavailable, never estimated
    assert final["eval/lpips_available"] == 0 and "eval/lpips/all" not in final
  table = report.report([str(workdir)])  # the report command on a real run
  assert "| 3DFaceFill |" in table and "| Telea (OpenCV) |" in table
  names = {path.name for path in (workdir / "summaries" / "step_00000020").iterdir()}
  assert {
    "input.png",
    "masked.png",
    "completion.png",
    "uv_completed.png",
    "novel_views.png",
  } <= names
