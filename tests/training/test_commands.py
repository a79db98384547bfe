"""The training command as a user meets it: a bad value, file or folder is one line on stderr and
exit status 2 (nothing made or touched), a bug keeps its traceback, and the console shows
jaxface's own lines, not the libraries' INFO logging."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from jaxface import cli, training
from jaxface.errors import USER_ERROR_EXIT_CODE, ConfigError, UserError
from tests.helpers import TEST_XLA_FLAGS
from tests.training import fitting_method

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "tests" / "training" / "fitting_method.py")


def _main(*arguments, cwd=REPO) -> subprocess.CompletedProcess:
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu", XLA_FLAGS=TEST_XLA_FLAGS)
  command = [sys.executable, str(REPO / "train" / "main.py"), *arguments]
  return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def _one_line_error(result: subprocess.CompletedProcess, *names: str) -> str:
  assert result.returncode == USER_ERROR_EXIT_CODE, (result.returncode, result.stderr[-2000:])
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
  for name in names:
    assert name in lines[0], (name, lines[0])
  return lines[0]


def test_bad_values_files_and_folders_are_one_line_and_exit_2(tmp_path):
  run = tmp_path / "run"
  _one_line_error(
    _main(f"--config={CONFIG}", f"--workdir={run}", "--config.batch_size=0"), "config.batch_size"
  )
  _one_line_error(
    _main(f"--config={CONFIG}", f"--workdir={run}", "--config.batch_sizee=8"), "batch_sizee"
  )
  _one_line_error(_main(f"--config={CONFIG}:nan_at_stepp=3", f"--workdir={run}"), "nan_at_stepp")
  _one_line_error(
    _main(f"--config={CONFIG}", f"--workdir={run}", "--config.num_devices=99"),
    "config.num_devices=99",
  )
  assert not run.exists()  # nothing was made for a refused command
  afile = tmp_path / "notes.txt"
  afile.write_text("keep me\n")
  _one_line_error(_main(f"--config={CONFIG}", f"--workdir={afile}"), str(afile), "is a file")
  assert afile.read_text() == "keep me\n"
  _one_line_error(
    _main(f"--config={CONFIG}", f"--workdir={tmp_path / 'none'}", "--mode=evaluate"),
    "no checkpoint",
  )
  _one_line_error(_main(f"--config={tmp_path / 'missing.py'}", f"--workdir={run}"), "missing.py")


@pytest.mark.parametrize(
  ("field", "value", "match"),
  [
    ("batch_size", 0, "config.batch_size=0 must be an integer >= 1"),
    ("batch_size", 6, "not divisible by the 4 devices"),
    ("log_every", -1, "config.log_every"),
    ("max_checkpoints_to_keep", 0, "config.max_checkpoints_to_keep"),
    ("seed", -3, "config.seed"),
    ("best_mode", "lowest", "config.best_mode"),
    ("best_metric", "loss", "config.best_metric"),
    ("num_devices", 5, "only 4 devices exist"),
    ("method", "", "config.method is empty"),
    ("method", "no_such_method", "config.method='no_such_method' is unknown"),
  ],
)
def test_loop_fields_are_checked_before_any_work(tmp_path, field, value, match):
  config = fitting_method.get_config()
  config[field] = value
  with pytest.raises(ConfigError, match=match):
    training.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_a_report_command_prints_usage_its_text_or_one_error_line(capsys):
  def report(arguments):
    if arguments == ["bad"]:
      raise ConfigError("run bad has no evaluation")
    return f"| {' | '.join(arguments)} |\n"

  for argv in ([], ["-h"]):
    cli.run_report(report, "usage: report RUN...", argv)
    assert capsys.readouterr().out == "usage: report RUN...\n"
  cli.run_report(report, "usage", ["a", "b"])
  assert capsys.readouterr().out == "| a | b |\n"  # one newline, not two
  with pytest.raises(SystemExit) as stopped:
    cli.run_report(report, "usage", ["bad"])
  assert stopped.value.code == USER_ERROR_EXIT_CODE
  assert capsys.readouterr().err == "error: run bad has no evaluation\n"


def test_a_bug_keeps_its_traceback_and_a_user_error_is_one_line(capsys):
  def bug(argv):
    raise KeyError("not the user's fault")

  def user_error(argv):
    raise UserError("the thing\nthat is wrong")

  with pytest.raises(KeyError):
    cli.exit_on_user_error(bug)([])
  with pytest.raises(SystemExit) as stopped:
    cli.exit_on_user_error(user_error)([])
  assert stopped.value.code == USER_ERROR_EXIT_CODE
  assert capsys.readouterr().err == "error: the thing; that is wrong\n"


def test_the_console_shows_jaxface_lines_not_library_info(tmp_path):
  arguments = [f"--config={CONFIG}", "--config.num_steps=4", "--config.checkpoint_every=2"]
  quiet = _main(*arguments, f"--workdir={tmp_path / 'quiet'}")
  assert quiet.returncode == 0, quiet.stderr[-2000:]
  assert "step 4: train/loss=" in quiet.stderr and "saved checkpoint 4" in quiet.stderr
  assert "eval/coefficient_rmse=" in quiet.stderr
  library = [
    line for line in quiet.stderr.splitlines() if "orbax" in line or "checkpoint_manager" in line
  ]
  assert not library, library[:5]
  verbose = _main(*arguments, "--library_logs", f"--workdir={tmp_path / 'verbose'}")
  assert verbose.returncode == 0, verbose.stderr[-2000:]
  assert "checkpoint_manager.py" in verbose.stderr  # orbax's own INFO lines are back
