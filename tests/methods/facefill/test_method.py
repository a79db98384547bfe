"""3DFaceFill as the trainer's method on the smoke config: config checks, stage records, data,
stage steps, and a warm-start source that does not fit (a standalone stage warm-started from
a real run, resumed after that run is deleted: test_end_to_end).

Independent references: the synthetic dataset's raw fields, the render layer
called directly with ground-truth factors, a checkpoint written here with orbax.
"""

from __future__ import annotations

import contextlib
import functools

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import facefill as facefill_config
from jaxface import training
from jaxface.errors import ConfigError
from jaxface.methods import facefill
from jaxface.methods.facefill import masks, method, render, steps
from jaxface.methods.facefill.data import BACKGROUND, FACE, OCCLUSION
from tests.methods.facefill.common import params_changed, truth_factors


def _finite(metrics) -> dict[str, float]:
  values = {k: float(v) for k, v in metrics.items()}
  assert all(np.isfinite(v) for v in values.values()), values
  return values


def _stage(config, name: str):
  (stage,) = [stage for stage in facefill.stages(config) if stage.name == name]
  return stage


# --------------------------------------------------------------------------- config and stages


def test_config_variants_and_their_stages():
  lines = facefill_config.__doc__.strip().splitlines()
  assert lines[2].strip().startswith("python train/main.py --config=configs/facefill.py:smoke")
  for variant in facefill_config.VARIANTS:
    config = facefill_config.get_config(variant)
    assert config.method == "facefill" and config.facefill.stage == "all"
    stages = facefill.stages(config)
    assert [stage.name for stage in stages] == list(method.STAGES)
    assert [stage.steps for stage in stages] == [
      config.facefill[f"steps_{name}"] for name in method.STAGES
    ]
  paper = facefill_config.get_config("paper")
  assert paper.data.model == "ict" and paper.data.image_size == 224
  assert (paper.facefill.steps_3dmm, paper.facefill.steps_3dmm_unsup) == (100_000, 30_000)
  assert (paper.facefill.steps_inpaint, paper.facefill.steps_segment) == (30_000, 50_000)
  assert paper.facefill.learning_rate == 1e-4 and paper.facefill.discriminator_learning_rate == 3e-4
  assert paper.facefill.unsup_lr_factor == 0.1 and tuple(paper.facefill.uv_size) == (192, 256)
  assert "num_steps" not in paper  # the run's length is the stages' total, set by steps_<stage>
  assert facefill_config.get_config("no_sym").ablation == "no_sym"
  for arg, match in [
    ("huge", "unknown variant"), ("smoke,ablation=no_gan", "unknown ablation"),
    ("smoke,stage=gan", "unknown stage"), ("smoke,size=3", "unknown config argument"),
  ]:  # fmt: skip
    with pytest.raises(ConfigError, match=match):
      facefill_config.get_config(arg)


@pytest.mark.parametrize(
  ("field", "value", "match"),
  [
    ("facefill.symmetry", "mirror", "config.facefill.symmetry"),
    ("facefill.iterations", 0, "config.facefill.iterations"),
    ("facefill.uv_size", (48, 64), "config.facefill.uv_size"),
    ("facefill.eval.buckets", ((0.1, 0.2), (0.3, 0.4)), "config.facefill.eval.buckets"),
    ("facefill.eval.baselines", ("deepfill",), "config.facefill.eval.baselines"),
    ("facefill.steps_inpaint", -1, "config.facefill.steps_inpaint"),
    ("facefill.texture_loss", "l3", "config.facefill.texture_loss"),
    ("facefill.image_loss_region", "image", "config.facefill.image_loss_region"),
    ("facefill.factorise_input", "both", "config.facefill.factorise_input"),
    ("facefill.eval.num_images", 0, "config.facefill.eval.num_images"),
    ("data.image_size", 48, "config.data.image_size=48"),
    ("facefill.stage", "inpaint", "config.warm_start.three_dmm.workdir"),
    ("facefill.stage", "3dmm_unsup", "config.warm_start.three_dmm.workdir"),
  ],
)
def test_invalid_settings_name_the_field(make_config, field, value, match):
  with pytest.raises(ConfigError, match=match):
    facefill.stages(make_config(**{field: value}))


def test_stage_records_and_the_modules_a_run_trains(make_config):
  stages = facefill.stages(make_config())
  assert [(s.name, s.steps, s.modules) for s in stages] == [
    ("3dmm", 4, ("encoder", "decoder")), ("3dmm_unsup", 2, ("encoder", "decoder")),
    ("inpaint", 4, ("inpainter", "discriminator")), ("segment", 2, ("segmenter",)),
  ]  # fmt: skip
  assert set(stages[2].optimizer) == {"inpainter", "discriminator"}  # one optimiser each
  # A stage with 0 steps is left out of stage=all.
  skipping = make_config(**{"facefill.steps_3dmm_unsup": 0})
  assert [s.name for s in facefill.stages(skipping)] == ["3dmm", "inpaint", "segment"]
  single = make_config("smoke,stage=segment")
  assert [(s.name, s.steps) for s in facefill.stages(single)] == [("segment", 2)]
  assert method.trained_modules(single) == {"segmenter"}
  # Warm-started modules count as this run's: its evaluation reports on them.
  inpaint = make_config("smoke,stage=inpaint", **{"warm_start.three_dmm.workdir": "runs/x"})
  assert method.trained_modules(inpaint) == {"encoder", "decoder", "inpainter", "discriminator"}
  with pytest.raises(ConfigError, match="all 0"):
    facefill.stages(make_config(**{f"facefill.steps_{name}": 0 for name in method.STAGES}))


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
  factors = truth_factors(batch)._replace(
    identity=jnp.stack([e["identity"] for e in raw]),
    expression=jnp.stack([e["expression"] for e in raw]),
  )
  out = render.render_face(full, factors, batch["albedo"], 64)
  face = (batch["segmentation"] == FACE) & (np.asarray(out.mask) > 0)
  error = np.abs(np.asarray(out.image) - batch["image"]).mean(-1)[face]
  assert error.mean() < 0.03, error.mean()  # weak perspective vs the dataset's perspective
  assert np.mean(np.asarray(out.mask)[batch["segmentation"] == FACE]) > 0.95


def test_the_state_holds_an_optimiser_per_scheduled_stage(smoke, make_config, state):
  config, dataset, _ = smoke
  assert set(state.opt_state) == set(method.STAGES)
  single = ml_collections.FrozenConfigDict(make_config("smoke,stage=segment"))
  assert set(facefill.create_state(single, jax.random.PRNGKey(0), dataset).opt_state) == {"segment"}
  wrong = ml_collections.FrozenConfigDict(make_config(**{"data.image_size": 96}))
  with pytest.raises(ConfigError, match=r"config\.data\.image_size=96 but the dataset's images"):
    facefill.create_state(wrong, jax.random.PRNGKey(0), dataset)
  del config


# --------------------------------------------------------------------------- stage steps


def test_a_stage_step_compiles_once_and_trains_only_its_modules(smoke, state):
  config, _, pipeline = smoke
  stage = _stage(config, "segment")
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(state, batch):
    return stage.step(state, batch, config=config, stage=stage)

  after = state
  for index in range(2):
    after, metrics = step(after, pipeline.batch(index))
    metrics = _finite(metrics)
  assert set(metrics) == {"segment/loss", "segment/accuracy"}
  assert int(after.step) == 2 and params_changed(state, after) == set(stage.modules)
  assert int(jax.tree_util.tree_leaves(after.opt_state["segment"])[0]) == 2  # its Adam count
  chex.assert_trees_all_equal(after.opt_state["3dmm"], state.opt_state["3dmm"])


def test_inpaint_update_trains_the_inpainter_on_a_correct_fit(smoke, state):
  config, _, pipeline = smoke
  batch = pipeline.batch(0)
  holes = masks.random_rectangle_mask(jax.random.PRNGKey(1), batch["segmentation"] == FACE)
  update = jax.jit(
    functools.partial(steps.inpaint_update, config=config, stage=_stage(config, "inpaint"))
  )
  new, metrics = update(
    state, batch["image"], batch["segmentation"], holes, truth_factors(batch),
    jax.random.PRNGKey(2),
  )  # fmt: skip
  metrics = _finite(metrics)
  assert metrics["usable"] == 1.0 and metrics["uv"] > 0 and metrics["overflow"] == 0
  assert params_changed(state, new) == {"inpainter", "discriminator"}


def test_the_public_codes_image_loss_compares_the_rendering_over_the_whole_face(
  smoke, state, make_config
):
  _, _, pipeline = smoke
  batch = pipeline.batch(0)
  no_holes = jnp.zeros(batch["segmentation"].shape, bool)
  results = {}
  for region in ("holes", "face"):
    chosen = make_config(**{"facefill.image_loss_region": region})
    update = functools.partial(steps.inpaint_update, config=chosen, stage=_stage(chosen, "inpaint"))
    for name, holes in (("none", no_holes), ("random", masks.random_rectangle_mask(
        jax.random.PRNGKey(1), batch["segmentation"] == FACE))):  # fmt: skip
      _, metrics = jax.jit(update)(
        state, batch["image"], batch["segmentation"], holes, truth_factors(batch),
        jax.random.PRNGKey(2),
      )  # fmt: skip
      results[region, name] = _finite(metrics)
  # Nothing hidden: the completion is the input, so the hole-only L1 is 0; the public code's
  # compares the re-rendered face with the image over the whole face and is not.
  assert results["holes", "none"]["image"] == 0.0 and results["face", "none"]["image"] > 0.01
  assert results["face", "random"]["image"] != results["holes", "random"]["image"]
  # Only the image term changes.
  assert results["face", "random"]["uv"] == results["holes", "random"]["uv"]


def test_the_public_codes_factorisation_sees_the_full_image(smoke, state, make_config, monkeypatch):
  _, _, pipeline = smoke
  batch = pipeline.batch(0)
  occluded = int(np.sum(np.asarray(batch["segmentation"]) == OCCLUSION))
  hidden = []
  original = steps.factorise

  def recording(state, images, hidden_pixels, config):
    hidden.append(np.asarray(hidden_pixels))
    return original(state, images, hidden_pixels, config)

  monkeypatch.setattr(steps, "factorise", recording)
  for choice in ("masked", "unmasked"):
    chosen = make_config(**{"facefill.factorise_input": choice})
    steps.train_inpaint(state, batch, config=chosen, stage=_stage(chosen, "inpaint"))
  masked, unmasked = hidden
  # Same step, so the same flips and holes: "masked" hides the holes and the occluders,
  # "unmasked" the occluders only (a flip keeps their count).
  assert unmasked.sum() == occluded and masked.sum() > unmasked.sum()
  assert (unmasked <= masked).all()


# --------------------------------------------------------------------------- warm starts


def test_a_warm_start_source_of_other_widths_is_refused_naming_the_module(
  make_config, smoke, tmp_path
):
  _, dataset, _ = smoke
  narrow = ml_collections.FrozenConfigDict(
    make_config("smoke,stage=3dmm", **{"facefill.widths.encoder": 1 / 8})
  )
  source = facefill.create_state(narrow, jax.random.PRNGKey(7), dataset)
  with contextlib.closing(ocp.CheckpointManager((tmp_path / "checkpoints").absolute())) as m:
    m.save(1, args=ocp.args.StandardSave(source))
    m.wait_until_finished()
  config = make_config("smoke,stage=inpaint", **{"warm_start.three_dmm.workdir": str(tmp_path)})
  with pytest.raises(ConfigError, match=r"warm_start\.three_dmm: the encoder .* does not match"):
    training.train_and_evaluate(config, tmp_path / "run")
