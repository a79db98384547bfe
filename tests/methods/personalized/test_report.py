"""The personalized report: grouping by ablation and seed, intervals and paired verdicts."""

from __future__ import annotations

import json

import pytest
from scipy import stats

from jaxface.errors import InputFileError
from jaxface.methods.personalized import report


def _evaluation(vertex: float, photometric: float = 0.1) -> dict:
  out = {key: 1.0 for _, key, _ in report.COLUMNS}
  out.update({
    "reconstruction/vertex_error_mm": vertex, "reconstruction/expression_error_mm": vertex / 10,
    "reconstruction/photometric": photometric, "retargeting/vertex_error_mm": vertex + 1,
    "retargeting/expression_error_mm": vertex / 10 + 0.1, "data/identity_specific_pct": 12.5,
    "data/expression_displacement_mm": 0.5, "data/generic_floor_mm": 0.08,
  })  # fmt: skip
  return out


def _write_run(workdir, ablation: str, seed: int, evaluation: dict, method="personalized"):
  workdir.mkdir(parents=True)
  (workdir / "config.json").write_text(json.dumps({"method": method, "ablation": ablation,
                                                   "seed": seed}))  # fmt: skip
  records = [{"step": 1000, **{f"eval/{k}": 99.0 for k in evaluation}}]  # an older evaluation
  records.append({"step": 2000, **{f"eval/{k}": v for k, v in evaluation.items()}})
  (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  return str(workdir)


def test_figures_are_seed_means_with_t_intervals_and_gaps_are_paired(tmp_path):
  runs = [_write_run(tmp_path / f"g{s}", "generic", s, _evaluation(v)) for s, v in
          enumerate((3.0, 3.5, 4.0))]  # fmt: skip
  runs += [_write_run(tmp_path / f"f{s}", "none", s, _evaluation(v, 0.08)) for s, v in
           enumerate((2.0, 2.4, 3.1))]  # fmt: skip
  runs.append(_write_run(tmp_path / "nd0", "no_dynamic_albedo", 0, _evaluation(2.2, 0.09)))
  lines = report.report(runs).splitlines()
  assert lines[0] == "Runs by seed: full: [0, 1, 2], generic: [0, 1, 2], no_dynamic_albedo: [0]."
  half = stats.t.ppf(0.975, 2) * 0.5 / 3**0.5  # generic: 3, 3.5, 4 (std 0.5)
  generic = next(line for line in lines if line.startswith("| generic |"))
  assert f"| 3.500 ± {half:.3f} |" in generic and generic.endswith("| 3 | 2000 |")
  # full - generic per seed: -1.0, -1.1, -0.9 -> mean -1.0, std 0.1
  gap_half = stats.t.ppf(0.975, 2) * 0.1 / 3**0.5
  claim = next(line for line in lines if line.startswith("| 1: personal model - generic rig |"))
  assert f"| vertex (mm) | -1.000 ± {gap_half:.3f} | 3 | better |" in claim
  single = [line for line in lines if line.startswith("| 2: dynamic albedo")]
  assert single and all("| 1 | one run only |" in line for line in single)
  assert "| identity-specific share of the expression displacement (%) | 12.50 |" in lines
  assert "| full | n/a | n/a | n/a |" in lines  # runs evaluated before the behaviour metrics


def test_bad_runs_are_refused_with_the_path(tmp_path):
  other = _write_run(tmp_path / "other", "none", 0, _evaluation(1.0), method="facefill")
  with pytest.raises(InputFileError, match="not personalized"):
    report.report([other])
  first = _write_run(tmp_path / "a", "none", 0, _evaluation(1.0))
  second = _write_run(tmp_path / "b", "none", 0, _evaluation(1.0))
  with pytest.raises(InputFileError, match="seed 0"):
    report.report([first, second])
