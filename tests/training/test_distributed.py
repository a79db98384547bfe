"""Multi-process training on one machine: 2 processes x 2 CPU devices, jax.distributed over
localhost, give the losses of 1 process x 4 devices; only process 0 writes logs; both resume
from the same checkpoint after a restart."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np

from jaxface import training
from tests.helpers import TEST_XLA_FLAGS
from tests.training import fitting_method

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "tests" / "training" / "fitting_method.py")
STEPS = ("--config.log_every=1", "--config.checkpoint_every=6", "--config.eval_every=0")


def _free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("localhost", 0))
    return probe.getsockname()[1]


def _two_processes(workdir: pathlib.Path, num_steps: int) -> list[str]:
  """Runs train/main.py as processes 0 and 1 of one job; returns their stderr."""
  env = dict(
    os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
    XLA_FLAGS=f"{TEST_XLA_FLAGS} --xla_force_host_platform_device_count=2",
  )  # fmt: skip
  port = _free_port()
  main = [sys.executable, str(REPO / "train" / "main.py"), f"--config={CONFIG}"]
  common = [f"--workdir={workdir}", f"--config.num_steps={num_steps}", *STEPS, "--distributed"]
  coordinator = [f"--coordinator_address=localhost:{port}", "--num_processes=2"]
  processes = [
    subprocess.Popen(
      [*main, *common, *coordinator, f"--process_id={index}"],
      env=env,
      cwd=REPO,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for index in range(2)
  ]
  outputs = []
  for process in processes:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    outputs.append(stderr)
  return outputs


def _losses(workdir) -> list[tuple[int, float]]:
  lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
  return [(r["step"], r["train/loss"]) for r in map(json.loads, lines) if "train/loss" in r]


def test_two_processes_match_one_and_resume_together(tmp_path):
  config = fitting_method.get_config()
  config.update(num_steps=18, log_every=1, checkpoint_every=6, eval_every=0)
  training.train_and_evaluate(config, tmp_path / "reference")  # 1 process, 4 devices
  reference = dict(_losses(tmp_path / "reference"))

  workdir = tmp_path / "two"
  _two_processes(workdir, num_steps=12)
  first = _losses(workdir)
  assert [step for step, _ in first] == list(range(1, 13))  # each step logged once: process 0
  assert len(list((workdir / "tensorboard").glob("events.out.tfevents.*"))) == 1
  assert json.loads((workdir / "run_info.json").read_text())["process_count"] == 2

  outputs = _two_processes(workdir, num_steps=18)  # the restart
  for output in outputs:
    assert "at step 12" in output and "resuming from" in output, output[-2000:]
  logged = _losses(workdir)
  assert [step for step, _ in logged] == list(range(1, 19))
  for step, loss in logged:
    np.testing.assert_allclose(loss, reference[step], rtol=1e-5, err_msg=f"step {step}")
