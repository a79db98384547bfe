"""The smoke command as a user types it: both stages train their own modules, every logged loss
is the sum of its logged parts, evaluation reports every protocol, summaries are written; then a
standalone depth-stage ablation warm-started from it."""

from __future__ import annotations

import json

import jax
import numpy as np
import PIL.Image
import pytest
import skimage.data

from jaxface import training
from jaxface.errors import NotFoundError, OutputExistsError
from jaxface.io.mesh import load_mesh
from jaxface.methods.multiview_depth import predict
from tests.helpers import run_training

STAGE_STEPS = 3  # the smoke command's steps per stage
DIAGNOSTICS = ("covisible", "mean_suitability")  # logged, not part of the loss


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, multiview_data_dir):
  workdir = tmp_path_factory.mktemp("multiview_smoke")
  run_training(
    "configs/multiview_depth.py:smoke", workdir, multiview_data_dir, "--config.log_every=1",
    f"--config.checkpoint_every={STAGE_STEPS}", "--config.max_checkpoints_to_keep=5",
  )  # fmt: skip
  return workdir


def _lines(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _params_changed(before, after) -> set[str]:
  changed = set()
  for name in ("three_dmm", "depth", "suitability"):
    leaves = zip(jax.tree.leaves(getattr(before, name)), jax.tree.leaves(getattr(after, name)),
                 strict=True)  # fmt: skip
    if any(not np.array_equal(a, b) for a, b in leaves):
      changed.add(name)
  return changed


def test_smoke_command_trains_both_stages_then_evaluates(smoke_run):
  lines = _lines(smoke_run)
  trained = {line["step"]: line for line in lines if "train/phase" in line}
  assert {step: line["train/phase"] for step, line in trained.items()} == {
    step: (step - 1) // STAGE_STEPS for step in range(1, 2 * STAGE_STEPS + 1)
  }
  for step, line in trained.items():
    stage = ("3dmm", "depth")[int(line["train/phase"])]
    prefix = f"train/{stage}/"
    metrics = {k[len(prefix) :]: v for k, v in line.items() if k.startswith(prefix)}
    assert all(np.isfinite(v) for v in metrics.values()), (step, metrics)
    parts = [v for k, v in metrics.items() if k != "loss" and not k.endswith(DIAGNOSTICS)]
    np.testing.assert_allclose(metrics["loss"], sum(parts), rtol=1e-4, err_msg=str(step))
    expected = (
      {"syn_coefficients", "syn_pair", "syn_landmarks", "real_coefficients", "real_pair",
       "real_landmarks"}
      if stage == "3dmm"
      else {"syn_depth", "syn_normals", "syn_3dmm", "syn_multiview", "syn_suitability_reg",
            "real_3dmm", "real_multiview", "real_suitability_reg"}
    )  # fmt: skip
    assert set(metrics) - {"loss"} - {k for k in metrics if k.endswith(DIAGNOSTICS)} == expected

  # The 3DMM stage trains 3DMMNet alone; the depth stage DepthNet and h with 3DMMNet frozen.
  states = {step: training.load_run(smoke_run, step).state for step in (3, 6)}
  assert _params_changed(states[3], states[6]) == {"depth", "suitability"}

  final = [line for line in lines if "eval/bu3dfe/depthnet/mean" in line][-1]
  assert final["step"] == 6
  for source in ("depthnet", "3dmm_only", "best_fit_3dmm"):
    for stat in ("mean", "std", "median", "p90"):
      assert np.isfinite(final[f"eval/bu3dfe/{source}/{stat}"]), (source, stat)
  for key in ("florence/depthnet/nme", "florence/3dmm_only/nme", "occlusion/iou",
              "occlusion/precision", "occlusion/recall", "suitability/specular_auc",
              "pose/rotation_error_deg"):  # fmt: skip
    assert np.isfinite(final[f"eval/{key}"]), key
  # 8 test faces, emotion = index % 8: every BU-3DFE expression appears.
  assert all(f"eval/bu3dfe/depthnet/{code}" in final for code in ("AN", "DI", "FE", "HA", "NE",
                                                                   "SA", "SU"))  # fmt: skip
  names = {p.name for p in (smoke_run / "summaries" / "step_00000006").iterdir()}
  assert {"input.png", "depth.png", "depth_3dmm.png", "suitability.png"} <= names


def test_a_standalone_ablation_depth_stage_warm_starts_3dmmnet(smoke_run, tmp_path,
                                                                multiview_data_dir):  # fmt: skip
  workdir = tmp_path / "no_suitability"
  run_training(
    "configs/multiview_depth.py:smoke,stage=depth,ablation=no_suitability", workdir,
    multiview_data_dir, f"--config.warm_start.three_dmm.workdir={smoke_run}",
    "--config.multiview.steps_depth=2", "--config.eval_every=-1", "--config.summary_every=-1",
  )  # fmt: skip
  lines = [line for line in _lines(workdir) if "train/depth/loss" in line]
  assert lines and not any("suitability" in key for line in lines for key in line)
  ablation = training.load_run(workdir).state
  source = training.load_run(smoke_run, 3).state  # the 3DMM stage's end
  assert _params_changed(source, ablation) >= {"depth"}
  assert "three_dmm" not in _params_changed(source, ablation)  # taken, and kept frozen


def test_the_photo_command_on_the_astronaut(smoke_run, tmp_path):
  photo = tmp_path / "astronaut.png"
  PIL.Image.fromarray(skimage.data.astronaut()).save(photo)
  output = tmp_path / "out"
  result = predict.predict_photo(photo, smoke_run, output)
  assert {p.name for p in output.iterdir()} == set(predict.OUTPUT_FILES)
  vertices, triangles = load_mesh(output / "face.ply")
  assert 0 < len(vertices) == result["vertices"] <= result["face_pixels"]
  assert len(triangles) == result["triangles"]
  overview = np.asarray(PIL.Image.open(output / "overview.png"))
  assert overview.shape[1] == 5 * overview.shape[0]  # crop, depth, normals, two mesh views
  with pytest.raises(OutputExistsError, match="overwrite"):
    predict.predict_photo(photo, smoke_run, output)
  with pytest.raises(NotFoundError, match=r"missing\.png"):
    predict.predict_photo(tmp_path / "missing.png", smoke_run, tmp_path / "other")
  assert not (tmp_path / "other").exists()


def test_depth_mesh_triangulates_face_squares_without_silhouette_jumps():
  face = np.zeros((4, 4), bool)
  face[:3, :2] = True  # a 3 x 2 block: two pixel squares
  depth = np.full((4, 4), 10.0)
  points = np.stack([*np.meshgrid(np.arange(4.0), np.arange(4.0), indexing="xy"), depth], -1)
  vertices, triangles, used = predict.depth_mesh(points, face, depth, height=20.0)
  assert vertices.shape == (6, 3) and triangles.shape == (4, 3) and (used == face).all()
  depth[2, 0] = 15.0  # a jump of 5 > 0.05 * 20: the lower square is a silhouette
  vertices, triangles, used = predict.depth_mesh(points, face, depth, height=20.0)
  assert triangles.shape == (2, 3) and vertices.shape == (4, 3)  # the lower row is dropped
  assert used.sum() == 4 and not used[2].any() and triangles.max() == 3
