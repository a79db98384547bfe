"""The smoke command as a user types it: every stage trains its own modules and optimiser, the
logged losses are the recorded ones, then evaluation, summaries and the report on the run, and
a standalone stage warm-started from it."""

from __future__ import annotations

import json
import os
import shutil

import chex
import jax
import ml_collections
import numpy as np
import pytest

from jaxface import training
from jaxface.errors import NotFoundError
from jaxface.methods import facefill
from jaxface.methods.facefill import method, report
from tests.golden import check_golden
from tests.helpers import run_training
from tests.methods.facefill.common import params_changed

STAGE_STEPS = 5  # the smoke command's steps per stage: 4 x 5 = the 20 recorded steps


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, facefill_data_dir):
  """The smoke command with 5 steps per stage, logged at every step (the recorded losses)."""
  workdir = tmp_path_factory.mktemp("facefill_smoke")
  run_training(
    "configs/facefill.py:smoke", workdir, facefill_data_dir,
    *(f"--config.facefill.steps_{stage}={STAGE_STEPS}" for stage in method.STAGES),
    "--config.progress_bar=false", "--config.log_every=1",
    f"--config.checkpoint_every={STAGE_STEPS}", "--config.max_checkpoints_to_keep=10",
  )  # fmt: skip
  return workdir


def test_smoke_losses_are_the_recorded_ones(smoke_run):
  check_golden("facefill_smoke", smoke_run)


def _expected_loss(stage: str, metrics: dict, config) -> tuple[float, ...]:
  """(logged total, the same total from its logged parts) pairs of a stage's losses."""
  ff = config.facefill
  m = {k.split("/")[1]: v for k, v in metrics.items()}
  if stage == "3dmm":
    lambda_shape = 1.0 / (ff.num_identity + ff.num_expression)  # the smoke model's 8 + 8
    sup = (
      lambda_shape * m["shape"] + ff.lambda_pose * m["pose"]
      + ff.lambda_texture * m["texture"] + ff.lambda_landmark * m["landmark"]
    )  # fmt: skip
    reg = ff.lambda_sym3d * m["sym3d"] + ff.lambda_const * m["const"]
    return (m["loss"], sup + m["rec"] + reg)
  if stage == "3dmm_unsup":
    return (m["loss"], m["landmark"] + m["rec"] + m["sym3d"] + m["const"])
  if stage == "inpaint":
    g = m["uv"] + m["symmetry"] + m["image"] + ff.lambda_gan * m["gan"]
    d = m["d_hinge"] + ff.gradient_penalty * m["d_gradient_penalty"]
    return (m["g_loss"], g, m["d_loss"], d)
  return ()


STAGE_METRICS = {
  "3dmm": {
    "loss", "rec", "landmark", "landmark_px", "shape", "pose", "texture", "sym3d", "const",
    "overflow",
  },
  "3dmm_unsup": {"loss", "rec", "landmark", "landmark_px", "sym3d", "const", "overflow"},
  "inpaint": {
    "g_loss", "uv", "symmetry", "image", "gan", "d_loss", "d_hinge", "d_gradient_penalty",
    "overflow", "usable",
  },
  "segment": {"loss", "accuracy"},
}  # fmt: skip


def test_smoke_command_trains_every_stage_then_evaluates(smoke_run, smoke):
  workdir = smoke_run
  lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  trained = {line["step"]: line for line in lines if "train/phase" in line}
  # The schedule, 5 steps per stage, every step logged.
  assert {step: line["train/phase"] for step, line in trained.items()} == {
    step: (step - 1) // STAGE_STEPS for step in range(1, 4 * STAGE_STEPS + 1)
  }
  config = training.read_config(workdir)
  stages = facefill.stages(config)
  for step, line in trained.items():
    stage = method.STAGES[int(line["train/phase"])]
    metrics = {k[len("train/") :]: v for k, v in line.items() if k.startswith(f"train/{stage}/")}
    assert set(metrics) == {f"{stage}/{name}" for name in STAGE_METRICS[stage]}, step
    assert all(np.isfinite(v) for v in metrics.values()), (step, metrics)
    # Each logged loss is linear in its logged parts.
    expected = _expected_loss(stage, metrics, config)
    np.testing.assert_allclose(expected[0::2], expected[1::2], rtol=1e-4, err_msg=stage)
  assert trained[15]["train/inpaint/d_loss"] > 0 and trained[20]["train/segment/loss"] > 0

  # Each stage changes only the modules its record names and steps only its own optimiser.
  states = {step: training.load_run(workdir, step).state for step in (5, 10, 15, 20)}
  frozen = ml_collections.FrozenConfigDict(config)
  states[0] = facefill.create_state(frozen, jax.random.PRNGKey(config.seed), smoke[1])  # initial
  for index, (stage, start) in enumerate(zip(stages, (0, 5, 10, 15), strict=True)):
    changed = params_changed(states[start], states[start + 5])
    if stage.name == "inpaint" and not any(
      trained[s]["train/inpaint/usable"] for s in range(11, 16)
    ):
      assert changed == {"discriminator"}  # a barely trained 3DMM may show the inpainter nothing
    else:
      assert changed == set(stage.modules), (index, stage.name, changed)
  counts = {
    name: int(jax.tree_util.tree_leaves(states[20].opt_state[name])[0])
    for name in ("3dmm", "3dmm_unsup", "segment")
  }
  assert counts == {"3dmm": 5, "3dmm_unsup": 5, "segment": 5}
  assert int(states[20].step) == 20

  final = [line for line in lines if "eval/psnr/all" in line][-1]
  assert final["step"] == 20 and np.isfinite(final["eval/psnr/all"])
  assert np.isfinite(final["eval/telea_psnr/30-40%"]) and "eval/segment_miou" in final
  if not os.environ.get("JAXFACE_LPIPS"):  # no weights: reported unavailable, never estimated
    assert final["eval/lpips_available"] == 0 and "eval/lpips/all" not in final
  table = report.report([str(workdir)])  # the report command on a real run
  assert "| 3DFaceFill |" in table and "| Telea (OpenCV) |" in table
  names = {path.name for path in (workdir / "summaries" / "step_00000020").iterdir()}
  assert {"input.png", "masked.png", "completion.png", "uv_completed.png", "novel_views.png"} <= (
    names
  )


def test_a_standalone_inpaint_run_resumes_after_its_source_run_is_deleted(
  smoke_run, make_config, tmp_path
):
  """stage=inpaint takes the 3DMM module of the smoke run through the trainer's warm start; once
  it has a checkpoint of its own it never reads that run again."""
  source = tmp_path / "source"
  shutil.copytree(smoke_run, source)  # the smoke run's own files stay for the other tests
  overrides = {
    "warm_start.three_dmm.workdir": str(source), "facefill.steps_inpaint": 1,
    "checkpoint_every": 1, "eval_every": -1, "summary_every": -1,
    "num_devices": 1,  # the smoke command's program, so the XLA cache compiles it once
  }  # fmt: skip
  config = make_config("smoke,stage=inpaint", **overrides)
  run = tmp_path / "inpaint"
  first = training.train_and_evaluate(config, run)
  trained = training.load_run(source).state
  for name in ("encoder", "decoder"):  # taken from the source, not trained by this stage
    chex.assert_trees_all_equal(jax.device_get(getattr(first, name)), getattr(trained, name))
  assert int(first.step) == 1 and set(first.opt_state) == {"inpaint"}

  shutil.rmtree(source)
  config.facefill.steps_inpaint = 2
  resumed = training.train_and_evaluate(config, run)
  assert int(resumed.step) == 2
  chex.assert_trees_all_equal(jax.device_get(resumed.encoder), jax.device_get(trained.encoder))
  assert params_changed(first, resumed) <= {"inpainter", "discriminator"}
  # A fresh run naming the deleted source is refused, naming the field, before anything is made.
  with pytest.raises(NotFoundError, match=r"config\.warm_start\.three_dmm\.workdir"):
    training.train_and_evaluate(config, tmp_path / "another")
  assert not (tmp_path / "another").exists()
