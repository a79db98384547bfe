r"""Prints 3DFaceFill's completion tables (PSNR / SSIM / LPIPS by mask ratio) from evaluated runs.

    python -m jaxface.methods.facefill.report runs/ff_cpu runs/ff_cpu_no_sym \
        runs/ff_cpu_no_il no_ir=runs/ff_cpu_no_ir

Each argument is a workdir (or LABEL=WORKDIR) whose metrics.jsonl holds an
evaluation (`eval/psnr/all`, ...), written at the end of training or by
`train/main.py --mode=evaluate`; the latest evaluation is used. A run is
labelled by its config's ablation ("3DFaceFill" for none) unless a label is
given. The classical baselines (Telea, Navier-Stokes, biharmonic) come
from the first run that evaluated them: every run is scored on the same
fixed evaluation masks, so their rows are shared. One table per metric,
rows = methods, columns = mask-to-face ratio buckets, whole image then
inside the holes; each cell is the mean ± half its 95% bootstrap interval
over the evaluation faces (evaluations older than the intervals show the
mean alone). LPIPS is listed as unavailable when the runs had no LPIPS
weights.
"""

from __future__ import annotations

import math
import pathlib

from jaxface import cli
from jaxface.errors import ConfigError, InputFileError
from jaxface.training.runs import CONFIG_FILE, latest_evaluation, read_config

#: Classical baselines, in table order, with their display names.
BASELINES = {"telea": "Telea (OpenCV)", "navier_stokes": "Navier-Stokes (OpenCV)",
             "biharmonic": "biharmonic (scikit-image)"}  # fmt: skip
METRICS = {
  "psnr": ("PSNR (dB, higher is better)", 2),
  "ssim": ("SSIM (higher is better)", 4),
  "lpips": ("LPIPS (lower is better)", 4),
  "hole_psnr": ("PSNR inside the holes (dB, higher is better)", 2),
  "hole_ssim": ("SSIM of the windows centred in the holes (higher is better)", 4),
}


def run_label(workdir: pathlib.Path) -> str:
  """ "3DFaceFill [ablation]" from the run's saved config, else the folder's name."""
  if not (workdir / CONFIG_FILE).exists():
    return workdir.name
  ablation = read_config(workdir).get("ablation", "none")
  return "3DFaceFill" if ablation == "none" else f"3DFaceFill {ablation}"


def _buckets(evaluation: dict[str, float]) -> list[str]:
  return [k.removeprefix("count/") for k in evaluation if k.startswith("count/")]


def _cell(evaluation: dict[str, float], key: str, bucket: str, digits: int) -> str:
  """The mean ± half its bootstrap interval over faces; the mean alone for evaluations made
  before the intervals were logged; "—" before the metric existed."""
  if f"{key}/{bucket}" not in evaluation:
    return "—"
  mean = evaluation[f"{key}/{bucket}"]
  low = evaluation.get(f"{key}_ci_low/{bucket}", math.nan)
  high = evaluation.get(f"{key}_ci_high/{bucket}", math.nan)
  if not math.isfinite(high - low):
    return f"{mean:.{digits}f}"
  return f"{mean:.{digits}f} ± {(high - low) / 2:.{digits}f}"


def report(arguments: list[str]) -> str:
  """Markdown tables for workdirs given as PATH or LABEL=PATH."""
  if not arguments:
    raise ConfigError("give at least one workdir")
  rows: list[tuple[str, dict[str, float]]] = []
  for argument in arguments:
    label, _, path = argument.rpartition("=")
    workdir = pathlib.Path(path)
    rows.append((label or run_label(workdir), latest_evaluation(workdir, "psnr/all")))
  buckets = _buckets(rows[0][1])
  for label, evaluation in rows[1:]:
    if _buckets(evaluation) != buckets or any(
      evaluation[f"count/{b}"] != rows[0][1][f"count/{b}"] for b in buckets
    ):
      raise InputFileError(
        f"{label} was evaluated on other buckets or image counts than {rows[0][0]}"
      )
  shared = rows[0][1]
  baselines = [(name, title) for name, title in BASELINES.items() if f"{name}_psnr/all" in shared]
  counts = ", ".join(f"{b}: {int(shared[f'count/{b}'])}" for b in buckets)
  out = [f"Completions per bucket: {counts}.", ""]
  for metric, (title, digits) in METRICS.items():
    if f"{metric}/all" not in shared:
      if metric == "lpips":
        out += [f"{title}: unavailable (no LPIPS v0.1 weights; see jaxface.metrics.image).", ""]
      continue
    out += [f"{title}:", "", "| method | " + " | ".join(buckets) + " |"]
    out.append("|---" + "|---:" * len(buckets) + "|")
    table = [(label, evaluation, metric) for label, evaluation in rows]
    table += [(name_title, shared, f"{name}_{metric}") for name, name_title in baselines]
    for label, evaluation, key in table:
      cells = [_cell(evaluation, key, b, digits) for b in buckets]
      out.append(f"| {label} | " + " | ".join(cells) + " |")
    out.append("")
  return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
  cli.run_report(report, __doc__)
