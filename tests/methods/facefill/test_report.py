"""The completion report: tables from hand-written metrics.jsonl files."""

from __future__ import annotations

import json

import pytest

from jaxface.methods.facefill import report


def _write_run(workdir, evaluation: dict, ablation: str | None = "none"):
  workdir.mkdir(parents=True)
  if ablation is not None:
    (workdir / "config.json").write_text(json.dumps({"method": "facefill", "ablation": ablation}))
  lines = [{"step": 5, "train/inpaint/g_loss": 1.0}, {"step": 10, "eval/psnr/all": 1.0}]
  lines.append({"step": 20, **{f"eval/{k}": v for k, v in evaluation.items()}})
  (workdir / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def _evaluation(psnr: float, telea: float | None = None, counts=(8, 4, 4)) -> dict:
  buckets = ("all", "10-30%", "30-50%")
  out = {}
  for bucket, count, offset in zip(buckets, counts, (0.0, 1.0, -1.0), strict=True):
    out[f"count/{bucket}"] = count
    out[f"psnr/{bucket}"] = psnr + offset
    out[f"ssim/{bucket}"] = 0.5 + offset / 10
    out[f"hole_psnr/{bucket}"] = psnr - 10 + offset
    out[f"hole_psnr_ci_low/{bucket}"] = psnr - 10.5 + offset
    out[f"hole_psnr_ci_high/{bucket}"] = psnr - 9.7 + offset
    if telea is not None:
      out[f"telea_psnr/{bucket}"] = telea + offset
      out[f"telea_ssim/{bucket}"] = 0.25
  return out


def test_tables_label_runs_share_baselines_and_use_the_latest_evaluation(tmp_path):
  _write_run(tmp_path / "full", _evaluation(30.0, telea=27.0))
  _write_run(tmp_path / "sym", _evaluation(28.0), ablation="no_sym")
  _write_run(tmp_path / "other", _evaluation(26.5), ablation=None)
  text = report.report(
    [str(tmp_path / "full"), str(tmp_path / "sym"), f"no_ir={tmp_path / 'other'}"]
  )
  lines = text.splitlines()
  assert lines[0] == "Completions per bucket: all: 8, 10-30%: 4, 30-50%: 4."
  assert "| method | all | 10-30% | 30-50% |" in lines
  assert "| 3DFaceFill | 30.00 | 31.00 | 29.00 |" in lines  # the step-20 record, not step 10
  assert "| 3DFaceFill no_sym | 28.00 | 29.00 | 27.00 |" in lines
  assert "| no_ir | 26.50 | 27.50 | 25.50 |" in lines
  assert "| Telea (OpenCV) | 27.00 | 28.00 | 26.00 |" in lines
  assert "| Telea (OpenCV) | 0.2500 | 0.2500 | 0.2500 |" in lines
  assert "| 3DFaceFill | 0.5000 | 0.6000 | 0.4000 |" in lines
  assert not any(line.startswith("| Navier") for line in lines)
  holes = lines.index("PSNR inside the holes (dB, higher is better):")
  assert lines[holes + 4] == "| 3DFaceFill | 20.00 ± 0.40 | 21.00 ± 0.40 | 19.00 ± 0.40 |"
  assert lines[holes + 7] == "| Telea (OpenCV) | — | — | — |"  # not in this evaluation
  assert "SSIM of the windows" not in text  # evaluations made before it skip the table
  assert "LPIPS (lower is better): unavailable" in text


def test_errors_name_the_run(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"metrics\.jsonl"):
    report.report([str(tmp_path / "missing")])
  (tmp_path / "untested").mkdir()
  (tmp_path / "untested" / "metrics.jsonl").write_text(json.dumps({"step": 1}) + "\n")
  with pytest.raises(ValueError, match="--mode=evaluate"):
    report.report([str(tmp_path / "untested")])
  _write_run(tmp_path / "a", _evaluation(30.0))
  _write_run(tmp_path / "b", _evaluation(30.0, counts=(6, 3, 3)), ablation="no_il")
  with pytest.raises(ValueError, match="3DFaceFill no_il was evaluated on other"):
    report.report([str(tmp_path / "a"), str(tmp_path / "b")])
  with pytest.raises(ValueError, match="at least one"):
    report.report([])
