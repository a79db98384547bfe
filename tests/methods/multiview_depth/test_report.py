"""The multi-view depth report: grouping by ablation and seed, intervals and paired verdicts."""

from __future__ import annotations

import json

import pytest
from scipy import stats

from jaxface.methods.multiview_depth import report

EXPRESSIONS = ("NE", "AN", "DI", "FE", "HA", "SA", "SU", "CO")


def _evaluation(depthnet: float, three_dmm: float, auc: float = 0.8) -> dict:
  out = {"suitability/specular_auc": auc, "occlusion/iou": 0.9, "occlusion/precision": 0.9,
         "occlusion/recall": 0.95, "pose/rotation_error_deg": 6.0,
         "pose/distance_error_pct": 3.5}  # fmt: skip
  for method, value in (("depthnet", depthnet), ("3dmm_only", three_dmm), ("best_fit_3dmm", 1.5)):
    for statistic, offset in (("mean", 0.0), ("median", -1.0), ("p90", 5.0)):
      out[f"bu3dfe/{method}/{statistic}"] = value + offset
    out.update({f"bu3dfe/{method}/{e}": value for e in EXPRESSIONS})
    out[f"florence/{method}/nme"] = value / 100
  return out


def _write_run(
  workdir, ablation: str, seed: int, evaluation: dict, method="multiview_depth",
  three_dmm="runs/mvd_3dmm", stage="depth", step=1000,
):  # fmt: skip
  workdir.mkdir(parents=True)
  config = {"method": method, "ablation": ablation, "seed": seed,
            "multiview": {"stage": stage, "steps_depth": 1000},
            "warm_start": {"three_dmm": {"workdir": three_dmm}}}  # fmt: skip
  (workdir / "config.json").write_text(json.dumps(config))
  records = [{"step": 500, **{f"eval/{k}": 99.0 for k in evaluation}}]  # an older evaluation
  records.append({"step": step, **{f"eval/{k}": v for k, v in evaluation.items()}})
  (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  return str(workdir)


def test_figures_are_seed_means_with_t_intervals_and_gaps_are_paired(tmp_path):
  runs = [
    _write_run(tmp_path / f"full{seed}", "none", seed, _evaluation(value, 8.0 + seed))
    for seed, value in enumerate((10.0, 11.0, 12.0))
  ]
  runs += [
    _write_run(tmp_path / f"syn{seed}", "no_multiview", seed, _evaluation(value, 8.0, auc=0.6))
    for seed, value in enumerate((11.0, 12.5, 13.0))
  ]
  # evaluated at an earlier checkpoint than its config's last step: the table says which
  runs.append(_write_run(tmp_path / "occ0", "no_occlusion", 0, _evaluation(10.5, 8.0), step=600))
  lines = report.report(runs[3:] + runs[:3]).splitlines()  # the full model is listed first anyway

  half = stats.t.ppf(0.975, 2) * 1.0 / 3**0.5  # the full runs: 10, 11, 12
  assert lines[0].startswith("Runs by seed: full: [0, 1, 2], no_multiview: [0, 1, 2]")
  assert f"| DepthNet (full) | 11.00 ± {half:.2f} | 10.00 ± {half:.2f} | 16.00 ± {half:.2f}" \
    f" | 0.1100 ± {half / 100:.4f} | 3 | 1000 |" in lines  # fmt: skip
  assert "| DepthNet (no_occlusion) | 10.50 | 9.50 | 15.50 | 0.1050 | 1 | 600 |" in lines
  # every full run has its own 3DMMNet figure here (8, 9, 10), but one 3DMMNet path: the first
  assert "| 3DMMNet only | 8.00 | 7.00 | 13.00 | 0.0800 | 1 3DMMNet | - |" in lines
  assert "| best 3DMM fit (the 3DMM's floor) | 1.50 |  |  |  | - | - |" in lines
  assert "| 3DMMNet only | 8.00 | 8.00 | 8.00 | 8.00 | 8.00 | 8.00 | 8.00 | 8.00 |" in lines

  # claim 1 within each full run: 10-8, 11-9, 12-10 = 2 exactly, zero spread: "worse"
  assert "| 1: DepthNet - its 3DMMNet | BU-3DFE mean | 2.00 ± 0.00 | 3 | worse |" in lines
  # claim 2 by seed: -1, -1.5, -1
  gap = stats.ttest_rel([10.0, 11.0, 12.0], [11.0, 12.5, 13.0]).confidence_interval()
  assert gap.high < 0
  row = f"| 2: full - synthetic only | BU-3DFE mean | -1.17 ± {(gap.high - gap.low) / 2:.2f} | 3"
  assert f"{row} | better |" in lines
  assert "| 2: full - synthetic only | suitability AUC | 0.2000 ± 0.0000 | 3 | better |" in lines
  assert "| 3: full - no occlusion | BU-3DFE mean | -0.50 | 1 | one run only |" in lines
  assert not any("no suitability" in line for line in lines)  # no such runs given


def test_runs_with_their_own_3dmmnets_give_the_3dmm_row_a_spread(tmp_path):
  runs = [
    _write_run(
      tmp_path / f"full{seed}", "none", seed, _evaluation(10.0, 8.0 + seed), three_dmm=f"g{seed}"
    )
    for seed in range(2)
  ]
  lines = report.report(runs).splitlines()
  half = stats.t.ppf(0.975, 1) * (0.5**0.5) / 2**0.5  # 8 and 9: sample std sqrt(0.5), n = 2
  assert any(line.startswith(f"| 3DMMNet only | 8.50 ± {half:.2f} |") and "| 2 3DMMNets |" in line
             for line in lines)  # fmt: skip


def test_bad_runs_are_named(tmp_path):
  with pytest.raises(ValueError, match="at least one"):
    report.report([])
  gan = _write_run(tmp_path / "gan", "none", 0, _evaluation(1.0, 1.0), method="decoupled_gan")
  with pytest.raises(ValueError, match="decoupled_gan"):
    report.report([gan])
  three_dmm_stage = _write_run(tmp_path / "g", "none", 0, _evaluation(1.0, 1.0), stage="3dmm")
  with pytest.raises(ValueError, match="trained no depth stage"):
    report.report([three_dmm_stage])
  first = _write_run(tmp_path / "a", "none", 0, _evaluation(1.0, 1.0))
  second = _write_run(tmp_path / "b", "none", 0, _evaluation(2.0, 1.0))
  with pytest.raises(ValueError, match="second 'full' run with seed 0"):
    report.report([first, second])
  (tmp_path / "untrained").mkdir()
  config = {"method": "multiview_depth", "ablation": "none", "seed": 0,
            "multiview": {"stage": "all", "steps_depth": 10},
            "warm_start": {"three_dmm": {"workdir": ""}}}  # fmt: skip
  (tmp_path / "untrained" / "config.json").write_text(json.dumps(config))
  (tmp_path / "untrained" / "metrics.jsonl").write_text(json.dumps({"step": 1}) + "\n")
  with pytest.raises(ValueError, match="--mode=evaluate"):
    report.report([str(tmp_path / "untrained")])
