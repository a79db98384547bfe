"""The smoke command as a user types it: both stages train what they should, every logged loss is
the weighted sum of its logged terms, evaluation and summaries are written; a standalone finetune
stage warm-started from it; and the video command's three applications on its output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import imageio.v3 as iio
import jax
import numpy as np
import PIL.Image
import pytest

from jaxface import training
from jaxface.errors import InputFileError, NotFoundError, OutputExistsError
from jaxface.io.mesh import load_mesh
from jaxface.methods import personalized
from jaxface.methods.personalized import losses, video
from tests.helpers import REPO, TEST_XLA_FLAGS, run_training

STEPS = {"joint": 3, "finetune": 2}  # the smoke command's steps per stage
DIAGNOSTICS = ("face_coverage", "mean_weight")  # logged, not part of the loss


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, personalized_data_dir):
  workdir = tmp_path_factory.mktemp("personalized_smoke")
  run_training(
    "configs/personalized.py:smoke", workdir, personalized_data_dir, "--config.log_every=1",
    "--config.checkpoint_every=3", "--config.max_checkpoints_to_keep=5",
  )  # fmt: skip
  return workdir


def _lines(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _changed(before, after) -> set[str]:
  changed = set()
  for name in ("modeling", "tracking"):
    leaves = zip(jax.tree.leaves(getattr(before, name)["params"]),
                 jax.tree.leaves(getattr(after, name)["params"]), strict=True)  # fmt: skip
    if any(not np.array_equal(a, b) for a, b in leaves):
      changed.add(name)
  return changed


def test_smoke_command_trains_both_stages_then_evaluates(smoke_run):
  lines = _lines(smoke_run)
  trained = {line["step"]: line for line in lines if "train/phase" in line}
  assert {step: line["train/phase"] for step, line in trained.items()} == {
    1: 0,
    2: 0,
    3: 0,
    4: 1,
    5: 1,
  }
  for step, line in trained.items():
    stage = ("joint", "finetune")[int(line["train/phase"])]
    prefix = f"train/{stage}/"
    metrics = {k[len(prefix) :]: v for k, v in line.items() if k.startswith(prefix)}
    assert set(metrics) == {"loss", *losses.WEIGHTS, *DIAGNOSTICS}, step
    weighted = sum(losses.WEIGHTS[name] * metrics[name] for name in losses.WEIGHTS)
    np.testing.assert_allclose(metrics["loss"], weighted, rtol=1e-4, err_msg=str(step))
  states = {step: training.load_run(smoke_run, step).state for step in (3, 5)}
  assert _changed(states[3], states[5]) == {"modeling"}  # the finetune stage freezes tracking
  final = [line for line in lines if "eval/reconstruction/vertex_error_mm" in line][-1]
  assert final["step"] == 5
  expected = {f"reconstruction/{n}" for n in ("vertex_error_mm", "neutral_error_mm",
              "expression_error_mm", "photometric", "landmark_error_px")} | {
    "retargeting/vertex_error_mm", "retargeting/expression_error_mm", "tracking/weight_error",
    "tracking/weight_correlation", "tracking/rotation_error_deg", "data/identity_specific_pct",
    "data/generic_floor_mm", "data/expression_displacement_mm", "model/correction_mm",
    "model/correction_static_share"}  # fmt: skip
  assert {k[len("eval/") :] for k in final if k.startswith("eval/")} == expected
  assert all(np.isfinite(v) for k, v in final.items() if k.startswith("eval/"))
  names = {p.name for p in (smoke_run / "summaries" / "step_00000005").iterdir()}
  assert {"input.png", "reconstruction.png", "overlay.png", "blendshapes.png",
          "reconstruction_mesh_0.obj"} <= names  # fmt: skip


def test_a_standalone_finetune_stage_warm_starts_both_networks(smoke_run, tmp_path,
                                                               personalized_data_dir):  # fmt: skip
  workdir = tmp_path / "finetune"
  run_training(
    "configs/personalized.py:smoke,stage=finetune", workdir, personalized_data_dir,
    f"--config.warm_start.joint.workdir={smoke_run}", "--config.warm_start.joint.step=3",
    "--config.eval_every=-1", "--config.summary_every=-1",
  )  # fmt: skip
  assert [line["step"] for line in _lines(workdir) if "train/finetune/loss" in line] == [1, 2]
  source = training.load_run(smoke_run, 3).state
  assert _changed(source, training.load_run(workdir).state) == {"modeling"}


def _write_frames(folder, frames):
  folder.mkdir()
  for index, frame in enumerate(frames):
    PIL.Image.fromarray(frame).save(folder / f"{index:03d}.png")


@pytest.fixture(scope="module")
def sequences(smoke_run):
  config = training.load_run(smoke_run).config
  held_out = personalized.create_dataset(config, "eval")
  return [np.asarray(held_out[i]["image"]) for i in range(2)]


def test_the_video_command_reconstructs_retargets_and_drives_a_puppet(smoke_run, sequences,
                                                                      tmp_path):  # fmt: skip
  frames = tmp_path / "user"
  _write_frames(frames, sequences[0])
  output = tmp_path / "out"
  # Retargeting the user to themself: their model driven by their own track is the tracked mesh.
  result = video.run_video(
    frames, smoke_run, output, retarget_to=frames, puppet="procedural", box="full", smooth=1.0,
    model_frames=2,
  )  # fmt: skip
  count = len(sequences[0])
  assert result["frames"] == count
  for index in range(count):
    tracked, _ = load_mesh(output / "meshes" / f"frame_{index:05d}.obj")
    retargeted, _ = load_mesh(output / "retarget" / f"frame_{index:05d}.obj")
    np.testing.assert_allclose(retargeted, tracked, atol=1e-5)
  assert len(list((output / "puppet").glob("frame_*.obj"))) == count
  # A procedural puppet driven by a procedural rig matches every blendshape by name.
  assert result["puppet"]["matched"] == result["puppet"]["blendshapes"]
  assert result["puppet"]["unmatched_puppet"] == []
  written = iio.imread(output / "video.mp4")
  size = sequences[0].shape[1]
  assert written.shape == (count, size, 5 * size, 3)  # crop | recon | overlay | retarget | puppet
  tracks = json.loads((output / "tracking.json").read_text())
  assert len(tracks) == count and tracks[0]["box"] == {"x": 0, "y": 0, "size": size}
  assert all(t["box"]["size"] > 0 for t in tracks) and len(tracks[0]["weights"]) == 40
  grid = np.asarray(PIL.Image.open(output / "grid.png"))
  assert grid.shape == (min(video.GRID_FRAMES, count) * size, 5 * size, 3)


def test_videos_and_frame_folders_are_read_alike(sequences, tmp_path):
  iio.imwrite(tmp_path / "user.mp4", sequences[1], fps=10, macro_block_size=1)
  _write_frames(tmp_path / "user", sequences[1])
  from_video, fps = video.read_frames(tmp_path / "user.mp4")
  from_folder, _ = video.read_frames(tmp_path / "user", max_frames=2)
  assert fps == pytest.approx(10.0) and len(from_video) == len(sequences[1])
  assert len(from_folder) == 2
  np.testing.assert_array_equal(from_folder[1], sequences[1][1])
  # lossy video: close to the frames, not equal
  assert np.abs(from_video[1].astype(float) - sequences[1][1]).mean() < 12


def test_the_video_command_refuses_bad_input_before_writing(smoke_run, tmp_path):
  output = tmp_path / "never"
  with pytest.raises(NotFoundError, match=r"missing\.mp4"):
    video.run_video(tmp_path / "missing.mp4", smoke_run, output)
  broken = tmp_path / "broken.mp4"
  broken.write_bytes(b"not a video")
  with pytest.raises(InputFileError, match=r"broken\.mp4"):
    video.run_video(broken, smoke_run, output)
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(InputFileError, match="no frames"):
    video.run_video(empty, smoke_run, output)
  with pytest.raises(InputFileError, match="--box"):
    video.run_video(empty, smoke_run, output, box="1,2")
  assert not output.exists()
  existing = tmp_path / "existing"
  (existing / "grid.png").parent.mkdir()
  (existing / "grid.png").write_bytes(b"")
  with pytest.raises(OutputExistsError, match="overwrite"):
    video.run_video(empty, smoke_run, existing)


def test_the_command_line_reports_a_missing_video_in_one_line(smoke_run, tmp_path):
  missing = tmp_path / "talk.mp4"
  result = subprocess.run(
    [sys.executable, "-m", "jaxface.methods.personalized.video", f"--input={missing}",
     f"--workdir={smoke_run}", f"--output={tmp_path / 'out'}"],
    cwd=REPO, env=dict(os.environ, XLA_FLAGS=TEST_XLA_FLAGS), capture_output=True, text=True,
    timeout=300,
  )  # fmt: skip
  assert result.returncode == 2, result.stderr[-2000:]
  assert result.stderr.strip().splitlines() == [f"error: video {missing} not found"]
  assert not (tmp_path / "out").exists()
