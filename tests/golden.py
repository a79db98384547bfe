"""Recorded training losses: a refactor of a method must reproduce its first 20 logged steps.

`tests/golden/<name>.json` holds every `train/*` scalar (but the timing) of
the first `GOLDEN_STEPS` steps of a smoke run logged at every step, as
written by the code before a refactor, once per CPU it was recorded on
(model name and a digest of the feature flags). XLA:CPU's generated code
depends on the instruction set, so the comparison is bitwise on a recorded
CPU and, on any other, within `OTHER_CPU_RTOL` of one of the recordings
(far below what a changed loss or update moves). A method whose losses are
chaotic across CPUs (a discrete mask that a 1e-4 difference in an earlier
fit moves by a texel, or data generated with another SIMD width) says so in
its file's "other_cpu" entry: how many steps stay within tolerance, the
tolerance ("rtol", default `OTHER_CPU_RTOL`) and why; on another CPU the
later steps are then only checked to log the same finite scalars, with a
warning.

To record, run the method's end-to-end test with JAXFACE_RECORD_GOLDEN set
(the test then fails with "recorded", so a recording is never mistaken for
a pass) and commit the file with the reason:
  JAXFACE_RECORD_GOLDEN=1    after a change meant to change the numbers:
                             this CPU's recording replaces all others.
  JAXFACE_RECORD_GOLDEN=add  adds this CPU's recording beside the others;
                             only on a checkout of the code that made them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib
import platform
import warnings

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


def record_golden(path: pathlib.Path, logged: dict, mode: str) -> None:
  """Writes `logged` as this CPU's recording in `path`: beside the others when `mode` is "add",
  else instead of them (an "other_cpu" entry is kept either way)."""
  golden = json.loads(path.read_text()) if path.exists() else {}
  recordings = golden.get("recordings", {}) if mode == "add" else {}
  recordings[cpu_model()] = logged
  golden["recordings"] = recordings
  GOLDEN_DIR.mkdir(exist_ok=True)
  path.write_text(json.dumps(golden, indent=1) + "\n")


def check_golden(name: str, workdir: pathlib.Path) -> None:
  """Asserts that `workdir`'s first steps log exactly the recorded scalars of `name`."""
  path = GOLDEN_DIR / f"{name}.json"
  logged = logged_losses(workdir)
  assert sorted(logged, key=int) == [str(s) for s in range(1, GOLDEN_STEPS + 1)], (
    f"the run must log each of its first {GOLDEN_STEPS} steps (log_every=1), got {sorted(logged)}"
  )
  if mode := os.environ.get("JAXFACE_RECORD_GOLDEN"):
    record_golden(path, logged, mode)
    raise AssertionError(f"recorded {path} (JAXFACE_RECORD_GOLDEN={mode}); commit it and rerun")
  golden = json.loads(path.read_text())
  recordings, here = golden["recordings"], cpu_model()
  if here in recordings:
    _compare(logged, recordings[here], here, GOLDEN_STEPS, None)
    return
  other_cpu = golden.get("other_cpu", {})
  compared_through = other_cpu.get("compared_through_step", GOLDEN_STEPS)
  rtol = other_cpu.get("rtol", OTHER_CPU_RTOL)
  failures = []
  for recorded_on, recording in recordings.items():  # the closest CPU's numbers will do
    try:
      _compare(logged, recording, recorded_on, compared_through, rtol)
      break
    except AssertionError as failure:
      failures.append(f"{failure}".strip())
  else:
    raise AssertionError(
      f"{name}: {here!r} has no recording and matches none of {sorted(recordings)} "
      f"within rtol {rtol} through step {compared_through}:\n" + "\n".join(failures)
    )
  if compared_through < GOLDEN_STEPS:
    warnings.warn(
      f"{name}: {here!r} has no recording; steps {compared_through + 1}..{GOLDEN_STEPS} were "
      f"only checked to be finite ({golden['other_cpu']['why']})",
      stacklevel=2,
    )


def _compare(logged: dict, recording: dict, recorded_on: str, compared_through: int, rtol):
  """Asserts `logged` equals `recording`: bitwise when `rtol` is None, else within `rtol`
  through `compared_through` and finite after it."""
  for step, expected in recording.items():
    assert set(logged[step]) == set(expected), (step, sorted(logged[step]), sorted(expected))
    for key, value in expected.items():
      if rtol is None:
        assert logged[step][key] == value, (
          f"step {step} {key}: {logged[step][key]!r} != recorded {value!r} (bitwise, same CPU)"
        )
      elif int(step) > compared_through:
        assert math.isfinite(logged[step][key]), f"step {step} {key}: {logged[step][key]!r}"
      else:
        np.testing.assert_allclose(
          logged[step][key], value, rtol=rtol, atol=OTHER_CPU_ATOL,
          err_msg=f"step {step} {key} against {recorded_on!r} within rtol {rtol} (not bitwise)",
        )  # fmt: skip
