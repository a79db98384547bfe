"""Recorded training losses: a refactor of a method must reproduce its first 20 logged steps.

`tests/golden/<name>.json` holds every `train/*` scalar (but the timing) of
the first `GOLDEN_STEPS` steps of a smoke run logged at every step, as
written by the code before a refactor, with the CPU it was recorded on. On
that CPU (model name and feature flags) the comparison is bitwise; XLA:CPU's
generated code depends on the instruction set, and rounding differences grow
over 20 training steps, so on another CPU it is within `OTHER_CPU_RTOL`
(far below what a changed loss or update moves) and the failure message says
which applied.

To record anew, after a change that is meant to change the numbers, run the
method's end-to-end test with JAXFACE_RECORD_GOLDEN=1 (the test then fails
with "recorded", so a recording is never mistaken for a pass) and commit the
file with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import platform

import numpy as np

GOLDEN_STEPS = 20
GOLDEN_DIR = pathlib.Path(__file__).resolve().parent / "golden"
OTHER_CPU_RTOL, OTHER_CPU_ATOL = 1e-3, 1e-6
_IGNORED = ("train/steps_per_second",)


def cpu_model() -> str:
  """The CPU's model name and a digest of its feature flags (/proc/cpuinfo), else the platform's
  processor string: virtual machines often report a generic model name."""
  cpuinfo = pathlib.Path("/proc/cpuinfo")
  if not cpuinfo.exists():
    return platform.processor() or platform.machine()
  fields = {}
  for line in cpuinfo.read_text().splitlines():
    key, _, value = line.partition(":")
    fields.setdefault(key.strip(), value.strip())  # the first processor's
  flags = " ".join(sorted(fields.get("flags", "").split()))
  digest = hashlib.sha1(flags.encode()).hexdigest()[:10]
  return f"{fields.get('model name', platform.machine())} (flags {digest})"


def logged_losses(workdir: pathlib.Path, steps: int = GOLDEN_STEPS) -> dict[str, dict[str, float]]:
  """{step: {name: value}} of the train scalars of steps 1..`steps` in a run's metrics.jsonl."""
  found: dict[str, dict[str, float]] = {}
  for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines():
    record = json.loads(line)
    train = {k: v for k, v in record.items() if k.startswith("train/") and k not in _IGNORED}
    if train and record["step"] <= steps:
      found[str(record["step"])] = train
  return found


def check_golden(name: str, workdir: pathlib.Path) -> None:
  """Asserts that `workdir`'s first steps log exactly the recorded scalars of `name`."""
  path = GOLDEN_DIR / f"{name}.json"
  logged = logged_losses(workdir)
  assert sorted(logged, key=int) == [str(s) for s in range(1, GOLDEN_STEPS + 1)], (
    f"the run must log each of its first {GOLDEN_STEPS} steps (log_every=1), got {sorted(logged)}"
  )
  if os.environ.get("JAXFACE_RECORD_GOLDEN"):
    GOLDEN_DIR.mkdir(exist_ok=True)
    path.write_text(json.dumps({"cpu": cpu_model(), "steps": logged}, indent=1) + "\n")
    raise AssertionError(f"recorded {path} (JAXFACE_RECORD_GOLDEN is set); commit it and rerun")
  golden = json.loads(path.read_text())
  same_cpu = golden["cpu"] == cpu_model()
  for step, expected in golden["steps"].items():
    assert set(logged[step]) == set(expected), (step, sorted(logged[step]), sorted(expected))
    for key, value in expected.items():
      if same_cpu:
        assert logged[step][key] == value, (
          f"step {step} {key}: {logged[step][key]!r} != recorded {value!r} (bitwise, same CPU)"
        )
      else:
        np.testing.assert_allclose(
          logged[step][key], value, rtol=OTHER_CPU_RTOL, atol=OTHER_CPU_ATOL,
          err_msg=f"step {step} {key} (recorded on {golden['cpu']!r}, running on "
          f"{cpu_model()!r}: compared within rtol {OTHER_CPU_RTOL}, not bitwise)",
        )  # fmt: skip
