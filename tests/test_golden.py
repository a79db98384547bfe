"""The golden-loss check itself: bitwise on a recorded CPU, within tolerance on another, and
only finiteness past a file's "other_cpu" step limit (with a warning)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import golden


def _write_run(workdir, losses):
  workdir.mkdir(exist_ok=True)
  lines = [
    json.dumps({"step": step, "train/loss": losses[step - 1], "train/steps_per_second": 9.0})
    for step in range(1, golden.GOLDEN_STEPS + 1)
  ]
  (workdir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
  return workdir


@pytest.fixture
def setup(tmp_path, monkeypatch):
  monkeypatch.setattr(golden, "GOLDEN_DIR", tmp_path / "golden")
  monkeypatch.delenv("JAXFACE_RECORD_GOLDEN", raising=False)
  recorded = [1.0 + step for step in range(golden.GOLDEN_STEPS)]
  monkeypatch.setattr(golden, "cpu_model", lambda: "cpu A")
  golden.record_golden(golden.GOLDEN_DIR / "toy.json", golden.logged_losses(
    _write_run(tmp_path / "recorded", recorded)), "replace")  # fmt: skip
  return tmp_path, recorded, monkeypatch


def test_on_a_recorded_cpu_one_ulp_fails(setup):
  tmp_path, recorded, _ = setup
  golden.check_golden("toy", _write_run(tmp_path / "same", recorded))
  nudged = list(recorded)
  nudged[4] = float(np.nextafter(nudged[4], 100.0))
  with pytest.raises(AssertionError, match="bitwise"):
    golden.check_golden("toy", _write_run(tmp_path / "nudged", nudged))


def test_on_another_cpu_the_tolerance_and_the_step_limit_apply(setup):
  tmp_path, recorded, monkeypatch = setup
  monkeypatch.setattr(golden, "cpu_model", lambda: "cpu B")
  close = [value * (1 + 1e-4) for value in recorded]
  golden.check_golden("toy", _write_run(tmp_path / "close", close))
  far = list(close)
  far[15] *= 1.5
  with pytest.raises(AssertionError, match="step 16"):
    golden.check_golden("toy", _write_run(tmp_path / "far", far))
  path = golden.GOLDEN_DIR / "toy.json"
  file = json.loads(path.read_text())
  file["other_cpu"] = {"compared_through_step": 10, "why": "a toy reason"}
  path.write_text(json.dumps(file))
  with pytest.warns(UserWarning, match="steps 11..20 were only checked to be finite"):
    golden.check_golden("toy", _write_run(tmp_path / "far", far))
  far[15] = float("nan")
  with pytest.raises(AssertionError, match="step 16"):
    golden.check_golden("toy", _write_run(tmp_path / "nan", far))
  looser = [value * (1 + 5e-3) for value in recorded]
  with pytest.raises(AssertionError, match=r"rtol 0\.001"):
    golden.check_golden("toy", _write_run(tmp_path / "looser", looser))
  file["other_cpu"]["rtol"] = 1e-2
  path.write_text(json.dumps(file))
  with pytest.warns(UserWarning, match="only checked to be finite"):
    golden.check_golden("toy", _write_run(tmp_path / "looser", looser))
  with pytest.raises(AssertionError, match=r"rtol 0\.01 "):
    golden.check_golden("toy", _write_run(tmp_path / "far", [v * 1.05 for v in recorded]))


def test_adding_a_recording_keeps_the_others_and_replacing_drops_them(setup):
  tmp_path, recorded, monkeypatch = setup
  monkeypatch.setattr(golden, "cpu_model", lambda: "cpu B")
  path = golden.GOLDEN_DIR / "toy.json"
  run = golden.logged_losses(_write_run(tmp_path / "b", recorded))
  golden.record_golden(path, run, "add")
  assert sorted(json.loads(path.read_text())["recordings"]) == ["cpu A", "cpu B"]
  golden.record_golden(path, run, "1")
  assert sorted(json.loads(path.read_text())["recordings"]) == ["cpu B"]


def test_another_cpu_may_match_any_recording(setup):
  tmp_path, recorded, monkeypatch = setup
  path = golden.GOLDEN_DIR / "toy.json"
  shifted = [value * 1.2 for value in recorded]  # a CPU whose numbers are 20% away
  monkeypatch.setattr(golden, "cpu_model", lambda: "cpu B")
  golden.record_golden(path, golden.logged_losses(_write_run(tmp_path / "b", shifted)), "add")
  monkeypatch.setattr(golden, "cpu_model", lambda: "cpu C")
  golden.check_golden("toy", _write_run(tmp_path / "like_a", recorded))
  golden.check_golden("toy", _write_run(tmp_path / "like_b", [v * (1 + 1e-4) for v in shifted]))
  with pytest.raises(AssertionError, match="matches none of"):
    golden.check_golden("toy", _write_run(tmp_path / "neither", [v * 1.1 for v in recorded]))
