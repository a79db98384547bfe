"""The smoke run as a user types it, then the paper's metrics and the report on it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxface.methods.decoupled_gan import learning_curve, paper_metrics, report
from tests.golden import GOLDEN_STEPS, check_golden
from tests.helpers import run_python, run_training


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, gan_data_dir):
  workdir = tmp_path_factory.mktemp("gan_smoke")
  run_training(
    "configs/decoupled_gan.py:smoke", workdir, gan_data_dir,
    f"--config.evaluation.embedder_dir={gan_data_dir / 'embedders'}",
    f"--config.num_steps={GOLDEN_STEPS}", "--config.log_every=1",
  )  # fmt: skip
  return workdir


def test_smoke_losses_are_the_recorded_ones(smoke_run):
  check_golden("decoupled_gan_smoke", smoke_run)


def test_smoke_command_trains_evaluates_and_writes_samples(smoke_run):
  lines = [json.loads(line) for line in (smoke_run / "metrics.jsonl").read_text().splitlines()]
  scalars = {key for line in lines for key in line}
  assert {"train/d_loss", "train/g_loss", "train/g_laplacian"} <= scalars
  assert {"eval/diversity_global_mm", "eval/specificity_mm"} <= scalars
  final = [line for line in lines if "eval/specificity_mm" in line][-1]
  assert np.isfinite(final["eval/specificity_mm"]) and final["eval/specificity_mm"] > 0
  summaries = sorted((smoke_run / "summaries").glob("step_*"))[-1]
  names = {path.name for path in summaries.iterdir()}
  assert {"samples_random.png", "samples_same_identity.png", "sample_0.obj"} <= names
  assert (smoke_run / "checkpoints").exists()


def test_paper_metrics_and_report(smoke_run, make_config, gan_data_dir, tmp_path):
  config = make_config("smoke")
  result = paper_metrics.run(config, smoke_run)
  metrics = result["metrics"]
  expected = {
    "diversity_global", "diversity_same_identity", "diversity_same_expression", "specificity",
    "decoupling_identity", "decoupling_expression", "sparse_rmse_0", "sparse_rmse_0.01",
    "sparse_rmse_10",
  }  # fmt: skip
  assert expected <= set(metrics)
  assert all(np.isfinite(v) for v in metrics.values())
  assert 0 <= metrics["decoupling_expression"] <= 100
  for factor in ("identity", "expression"):  # each evaluator's quality on unseen identities
    quality = result["evaluators"][factor]
    assert quality["validated_on"] == "unseen identities" and 0 <= quality["pass_rate"] <= 1
    target = config.evaluation.targets[factor]
    below = quality["accuracy"] < target[0] or quality["far"] > target[1] or quality["collapsed"]
    assert bool(quality["problems"]) == below
  figures = {path.name for path in (smoke_run / "paper_figures").iterdir()}
  assert {"samples_same_expression.png", "manipulation.png", "manipulation_added.obj"} <= figures

  # The baseline through the command line, with --config overrides as a user types them.
  run_python(
    "-m", "jaxface.methods.decoupled_gan.paper_metrics", "--baseline=linear",
    "--config=configs/decoupled_gan.py:smoke", f"--config.data.data_dir={gan_data_dir}",
    f"--config.evaluation.embedder_dir={gan_data_dir / 'embedders'}",
    f"--workdir={tmp_path / 'linear'}",
  )  # fmt: skip
  baseline = json.loads((tmp_path / "linear" / "paper_metrics.json").read_text())
  assert baseline["name"] == "linear baseline"
  # The linear model's same-identity pairs differ only by expression: less than random pairs.
  assert baseline["metrics"]["diversity_same_identity"] < baseline["metrics"]["diversity_global"]

  text = report.report([str(smoke_run), str(tmp_path / "linear")])
  assert "| training data |" in text and "| linear baseline |" in text and "λ = 0.01" in text
  assert "| identity | unseen identities |" in text and "| 98.66 / 1.21 |" in text
  with pytest.raises(FileNotFoundError, match="paper_metrics"):
    report.report([str(tmp_path)])


def test_learning_curve_scores_every_kept_checkpoint(smoke_run, make_config, tmp_path):
  config = make_config("smoke")
  result = learning_curve.learning_curve(config, smoke_run, progress=False)
  steps = learning_curve.checkpoint_steps(smoke_run)
  assert len(steps) >= 2 and [row["step"] for row in result["steps"]] == steps
  assert (smoke_run / "learning_curve.png").stat().st_size > 0
  written = json.loads((smoke_run / "learning_curve.json").read_text())
  assert written["steps"] == result["steps"]
  # The last point is the paper table's Table 1 for the same checkpoint: same evaluators, seeds.
  table = paper_metrics.run(config, smoke_run, step=steps[-1])["metrics"]
  last = result["steps"][-1]
  for key in ("decoupling_identity", "decoupling_expression", "diversity_same_identity"):
    np.testing.assert_allclose(last[key], table[key], rtol=1e-5, err_msg=key)
  np.testing.assert_allclose(last["specificity"], table["specificity"], rtol=1e-5)
  with pytest.raises(FileNotFoundError, match="no checkpoint in"):
    learning_curve.learning_curve(config, tmp_path)


def test_learning_curve_scores_only_new_checkpoints(smoke_run, make_config, monkeypatch):
  config = make_config("smoke")
  first = learning_curve.learning_curve(config, smoke_run, progress=False)
  # Drop the last row, as if that checkpoint had been written after the first call.
  partial = dict(first, steps=first["steps"][:-1])
  (smoke_run / "learning_curve.json").write_text(json.dumps(partial))
  scored = []
  original = learning_curve.table1_metrics

  def counting(generator, *args):
    scored.append(generator)
    return original(generator, *args)

  monkeypatch.setattr(learning_curve, "table1_metrics", counting)
  again = learning_curve.learning_curve(config, smoke_run, progress=False)
  assert len(scored) == 1 and again["steps"] == first["steps"]
  # Another config (here other evaluation samples) scores every checkpoint again.
  config.evaluation.num_pairs += 1
  learning_curve.learning_curve(config, smoke_run, progress=False)
  assert len(scored) == 1 + len(first["steps"])


def test_importing_the_metrics_command_defines_no_flags():
  # train/main.py defines --config and --workdir in the same absl registry; a module imported
  # beside it (by a notebook, or a test in the same worker) must not define them again.
  from absl import flags

  assert "baseline" not in flags.FLAGS
