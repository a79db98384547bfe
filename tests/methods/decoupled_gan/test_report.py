"""The report's tables from hand-written paper_metrics.json files: seeds averaged, data variants
kept apart."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxface.errors import ConfigError
from jaxface.methods.decoupled_gan import report

KEYS = (
  "decoupling_identity", "decoupling_expression", "diversity_global",
  "diversity_same_identity", "diversity_same_expression", "specificity",
  "sparse_rmse_0", "sparse_rmse_10",
)  # fmt: skip


def write_result(folder, name, data, seed, rng):
  metrics = {key: float(rng.uniform(1, 90)) for key in KEYS}
  training = {"diversity_global": 5.0, "diversity_same_identity": 2.0 + (data == "personal"),
              "diversity_same_expression": 4.0}  # fmt: skip
  result = {"name": name, "variant": "cpu_long", "data": data, "seed": seed,
            "metrics": metrics, "training_data": training, "evaluators": {}}  # fmt: skip
  folder.mkdir()
  (folder / "paper_metrics.json").write_text(json.dumps(result))
  return metrics


def row(text, label):
  lines = [line for line in text.splitlines() if line.startswith(f"| {label} |")]
  assert len(lines) == 2, (label, text)  # one row in Table 1, one in Table 2
  return [line.split(" | ")[1:] for line in lines]


def test_runs_differing_only_in_seed_share_a_row_with_mean_and_sd(tmp_path):
  rng = np.random.default_rng(0)
  seeds = [
    write_result(tmp_path / f"full_s{s}", "full model", "personal", s, rng) for s in (0, 1, 2)
  ]
  linear = write_result(tmp_path / "linear", "linear baseline", "personal", 0, rng)
  text = report.report(
    [str(tmp_path / f"full_s{s}") for s in (0, 1, 2)] + [str(tmp_path / "linear")]
  )

  table1, table2 = row(text, "full model")
  assert table1[0] == "3" and table2[0] == "3"
  values = [m["decoupling_identity"] for m in seeds]
  assert table1[1] == f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f}"
  values = [m["sparse_rmse_10"] for m in seeds]
  assert table2[2].rstrip(" |") == f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"
  table1, _ = row(text, "linear baseline")
  assert table1[0] == "1" and table1[1] == f"{linear['decoupling_identity']:.1f}"
  assert text.count("| training data |") == 1


def test_data_variants_are_separate_rows_each_with_its_training_data(tmp_path):
  rng = np.random.default_rng(1)
  write_result(tmp_path / "personal", "full model", "personal", 0, rng)
  write_result(tmp_path / "separable", "full model", "separable", 0, rng)
  text = report.report([str(tmp_path / "personal"), str(tmp_path / "separable")])
  assert row(text, "full model (personal)")[0][0] == "1"
  assert row(text, "full model (separable)")[0][0] == "1"
  assert "| training data (personal) | — | — | — | 5.00 | 3.00 |" in text
  assert "| training data (separable) | — | — | — | 5.00 | 2.00 |" in text


def test_the_same_run_given_twice_is_an_error(tmp_path):
  write_result(tmp_path / "a", "full model", "personal", 0, np.random.default_rng(2))
  with pytest.raises(ConfigError, match="same seed"):
    report.report([str(tmp_path / "a"), str(tmp_path / "a")])
