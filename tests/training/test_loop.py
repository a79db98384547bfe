"""The trainer on a small real method: resume, preemption, sharding, non-finite guard, logs."""

import json
import os
import pathlib
import signal
import struct
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import pytest

from jaxface import training
from tests.training import fitting_method

REPO = pathlib.Path(__file__).resolve().parents[2]
MAIN = [sys.executable, str(REPO / "train" / "main.py")]
CONFIG = str(REPO / "tests" / "training" / "fitting_method.py")


def _losses(workdir) -> dict[int, float]:
  """step -> train/loss from metrics.jsonl, the last write of each step winning."""
  losses = {}
  for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines():
    record = json.loads(line)
    if "train/loss" in record:
      losses[record["step"]] = record["train/loss"]
  return losses


def _run(workdir, *overrides, check=True, **kwargs):
  command = [*MAIN, f"--config={CONFIG}", f"--workdir={workdir}", *overrides]
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
  return subprocess.run(
    command, capture_output=True, text=True, check=check, env=env, cwd=REPO, **kwargs
  )


def test_train_evaluate_and_write_logs(tmp_path):
  config = fitting_method.get_config()
  config.summary_every = 10
  original = fitting_method.train_step
  fitting_method.train_step = chex.assert_max_traces(original, n=1)
  try:
    training.train_and_evaluate(config, tmp_path)
  finally:
    fitting_method.train_step = original
  losses = _losses(tmp_path)
  assert sorted(losses) == [5, 10, 15, 20, 25, 30]
  assert losses[30] < losses[5]
  assert (tmp_path / "config.json").exists() and "jax" in json.loads(
    (tmp_path / "run_info.json").read_text()
  )["versions"]
  assert (tmp_path / "summaries" / "step_00000010" / "inputs.png").exists()
  tags = _event_tags(tmp_path / "tensorboard")
  assert {"train/loss", "eval/coefficient_rmse"} <= tags["scalars"] and "inputs" in tags["images"]
  metrics = training.evaluate(config, tmp_path)
  assert np.isfinite(metrics["eval/coefficient_rmse"])


def _event_tags(folder: pathlib.Path) -> dict[str, set[str]]:
  """Reads TensorBoard event files (TFRecord framing + Event protos) independently of the writer."""
  from tensorboardX.proto import event_pb2

  tags = {"scalars": set(), "images": set()}
  for path in folder.glob("events.out.tfevents.*"):
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
      (length,) = struct.unpack("<Q", data[offset : offset + 8])
      record = data[offset + 12 : offset + 12 + length]
      offset += 12 + length + 4
      event = event_pb2.Event.FromString(record)
      for value in event.summary.value:
        tags["images" if value.HasField("image") else "scalars"].add(value.tag)
  return tags


def test_sigkill_and_restart_continues_bitwise(tmp_path):
  reference = tmp_path / "reference"
  _run(reference, "--config.num_steps=120", "--config.log_every=1", "--config.checkpoint_every=20")
  interrupted = tmp_path / "interrupted"
  command = [*MAIN, f"--config={CONFIG}", f"--workdir={interrupted}", "--config.num_steps=120",
             "--config.log_every=1", "--config.checkpoint_every=20"]  # fmt: skip
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
  process = subprocess.Popen(
    command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
  )
  checkpoint = interrupted / "checkpoints" / "20"
  deadline = time.time() + 120
  while not checkpoint.exists() and time.time() < deadline and process.poll() is None:
    time.sleep(0.02)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert checkpoint.exists(), "the run never wrote its step-20 checkpoint"
  killed_at = max(_losses(interrupted))
  assert killed_at < 120, "the run finished before it could be killed"
  _run(
    interrupted, "--config.num_steps=120", "--config.log_every=1", "--config.checkpoint_every=20"
  )
  expected, resumed = _losses(reference), _losses(interrupted)
  assert sorted(resumed) == list(range(1, 121))
  for step in range(1, 121):
    assert resumed[step] == expected[step], f"step {step}: {resumed[step]!r} != {expected[step]!r}"


def test_sigterm_saves_the_current_step(tmp_path):
  command = [*MAIN, f"--config={CONFIG}", f"--workdir={tmp_path}", "--config.num_steps=100000",
             "--config.log_every=1", "--config.checkpoint_every=1000000"]  # fmt: skip
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
  process = subprocess.Popen(
    command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
  )
  deadline = time.time() + 120
  while time.time() < deadline and not (
    (tmp_path / "metrics.jsonl").exists() and len(_losses(tmp_path)) > 30
  ):
    time.sleep(0.05)
  process.send_signal(signal.SIGTERM)
  output, _ = process.communicate(timeout=120)
  assert process.returncode == 0
  saved = int(output.split("checkpoint saved at step")[1].split()[0])
  assert saved > 30
  assert (tmp_path / "checkpoints" / str(saved)).exists()
  assert max(_losses(tmp_path)) == saved


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  config = fitting_method.get_config("nan_at_step=13")
  with pytest.raises(training.NonFiniteLossError, match="between steps 11 and 15"):
    training.train_and_evaluate(config, tmp_path)
  steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert steps == [10]
  # The step-10 checkpoint restores and is finite.
  config.nan_at_step = -1
  assert np.isfinite(training.evaluate(config, tmp_path)["eval/coefficient_rmse"])


def test_four_devices_match_one(tmp_path):
  assert jax.device_count() >= 4, "tests/conftest.py asks XLA for 4 CPU devices"
  losses = []
  for devices in (1, 4):
    config = fitting_method.get_config()
    config.num_devices = devices
    config.log_every = 1
    config.num_steps = 12
    training.train_and_evaluate(config, tmp_path / str(devices))
    losses.append(_losses(tmp_path / str(devices)))
  assert sorted(losses[0]) == list(range(1, 13))
  for step in range(1, 13):
    np.testing.assert_allclose(losses[1][step], losses[0][step], rtol=1e-5)


def test_init_from_continues_another_runs_whole_state(tmp_path):
  config = fitting_method.get_config()
  config.num_steps = 10
  training.train_and_evaluate(config, tmp_path / "first")
  config.init_from = str(tmp_path / "first" / "checkpoints")
  config.num_steps = 5
  state = training.train_and_evaluate(config, tmp_path / "second")
  assert int(state.step) == 15  # 10 restored + 5 more
  with pytest.raises(FileNotFoundError, match="init_from"):
    config.init_from = str(tmp_path / "missing")
    training.train_and_evaluate(config, tmp_path / "third")
  assert not (tmp_path / "third").exists()  # refused before anything was made


def test_best_checkpoint_and_export(tmp_path):
  config = fitting_method.get_config()
  config.best_metric = "eval/coefficient_rmse"
  config.best_mode = "min"
  config.eval_every = 10
  training.train_and_evaluate(config, tmp_path)
  evaluations = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  rmse = {
    r["step"]: r["eval/coefficient_rmse"] for r in evaluations if "eval/coefficient_rmse" in r
  }
  best_step = min(rmse, key=rmse.get)
  kept = [int(p.name) for p in (tmp_path / "best").iterdir() if p.name.isdigit()]
  assert kept == [best_step]
  folder = training.export_samples(config, tmp_path)
  assert (folder / "inputs.png").exists()


def test_default_workdir():
  sys.path.insert(0, str(REPO / "train"))
  try:
    from main import default_workdir
  finally:
    sys.path.pop(0)
  assert default_workdir("configs/facefill.py") == pathlib.Path("runs/facefill")
  assert default_workdir("configs/facefill.py:smoke,model=ict") == pathlib.Path(
    "runs/facefill_smoke_model-ict"
  )
