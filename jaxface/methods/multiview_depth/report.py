r"""Prints the multi-view depth results over seeds: Tables I-III with intervals, a gap per claim.

    python -m jaxface.methods.multiview_depth.report runs/mvd_full_s0 runs/mvd_full_s1 \
        runs/mvd_no_multiview_s0 runs/mvd_no_multiview_s1 ...

Each argument is an evaluated depth-stage workdir (or LABEL=WORKDIR); the
latest evaluation in its metrics.jsonl is used. Runs are grouped by label
(their config's ablation, "full" for none) and paired across groups by
their `config.seed`. Every figure is the mean over a group's runs with its
95% Student-t interval (`jaxface.metrics.spread`); every gap is the paired
interval of per-seed differences (of per-run differences where both figures
come from one run, as DepthNet against its own frozen 3DMMNet), with the
verdict "better", "worse" or "within noise".
"""

from __future__ import annotations

import pathlib

from jaxface import cli
from jaxface.errors import ConfigError, InputFileError
from jaxface.metrics.spread import (
  SeedGroup,
  compare,
  interval_cell,
  markdown_table,
  mean_interval,
  paired_difference,
)
from jaxface.training.runs import latest_evaluation, read_config

EXPRESSIONS = ("NE", "AN", "DI", "FE", "HA", "SA", "SU", "CO")
FULL = "full"
MARKER = "bu3dfe/depthnet/mean"


class Group(SeedGroup):
  """The evaluations of one label by seed, and the 3DMM stages their depth stages started from."""

  def __init__(self, label: str):
    super().__init__(label)
    self.three_dmm_runs: set[str] = set()


def collect(arguments: list[str]) -> dict[str, Group]:
  """Groups of evaluated runs from PATH or LABEL=PATH arguments, the full model's first."""
  if not arguments:
    raise ConfigError("give at least one evaluated multiview_depth workdir")
  groups: dict[str, Group] = {}
  for argument in arguments:
    label, _, path = argument.rpartition("=")
    workdir = pathlib.Path(path)
    config = read_config(workdir)
    if config.get("method") != "multiview_depth":
      raise InputFileError(f"{workdir} is a {config.get('method')!r} run, not multiview_depth")
    if config.multiview.stage == "3dmm" or not config.multiview.steps_depth:
      raise InputFileError(
        f"{workdir} trained no depth stage (multiview.stage={config.multiview.stage!r}, "
        f"steps_depth={config.multiview.steps_depth}): give depth-stage runs"
      )
    if not label:
      label = FULL if config.ablation == "none" else str(config.ablation)
    group = groups.setdefault(label, Group(label))
    group.add(int(config.seed), latest_evaluation(workdir, MARKER), str(workdir))
    group.three_dmm_runs.add(str(config.warm_start.three_dmm.workdir) or str(workdir))
  return dict(sorted(groups.items(), key=lambda item: item[0] != FULL))


def depth_tables(groups: dict[str, Group]) -> list[str]:
  """Tables I (BU-3DFE), II (by expression) and III (Florence) for DepthNet and the 3DMM rows."""
  first = next(iter(groups.values()))
  rows = []  # (name, group, method, seeds, runs column, steps column)
  for group in groups.values():
    steps = "/".join(str(s) for s in sorted(group.steps))
    seeds = sorted(group.by_seed)
    rows.append((f"DepthNet ({group.label})", group, "depthnet", seeds, str(len(seeds)), steps))
  if len(first.three_dmm_runs) == 1:  # one 3DMMNet scored by every run: one figure, no spread
    rows.append(("3DMMNet only", first, "3dmm_only", sorted(first.by_seed)[:1], "1 3DMMNet", "-"))
  else:
    rows.append(("3DMMNet only", first, "3dmm_only", sorted(first.by_seed),
                 f"{len(first.three_dmm_runs)} 3DMMNets", "-"))  # fmt: skip
  out = ["BU-3DFE protocol, error in % of the depth range (lower is better); Florence NME:", ""]
  body = []
  for name, group, method, seeds, runs, steps in rows:
    cells = [
      interval_cell(group.values(f"bu3dfe/{method}/{statistic}", seeds))
      for statistic in ("mean", "median", "p90")
    ]
    florence = interval_cell(group.values(f"florence/{method}/nme", seeds), 4)
    body.append([name, *cells, florence, runs, steps])
  best = first.values("bu3dfe/best_fit_3dmm/mean")[0]
  body.append(["best 3DMM fit (the 3DMM's floor)", f"{best:.2f}", "", "", "", "-", "-"])
  out += markdown_table(["method", "mean", "median", "p90", "Florence NME", "runs", "steps"], body)
  out += ["By expression (mean over seeds, % of the depth range):", ""]
  body = [
    [name, *(f"{mean_interval(group.values(f'bu3dfe/{method}/{e}', seeds)).mean:.2f}"
             for e in EXPRESSIONS)]
    for name, group, method, seeds, _, _ in rows
  ]  # fmt: skip
  out += markdown_table(["method", *EXPRESSIONS], body)
  return out


def instrumentmarkdown_table(groups: dict[str, Group]) -> list[str]:
  """The instruments: suitability vs specularity, occlusion vs true co-visibility, the pose."""
  columns = [
    ("suitability AUC", "suitability/specular_auc", 3),
    ("occlusion IoU", "occlusion/iou", 3),
    ("precision", "occlusion/precision", 3),
    ("recall", "occlusion/recall", 3),
    ("rotation error (deg)", "pose/rotation_error_deg", 2),
    ("distance error (%)", "pose/distance_error_pct", 2),
  ]
  body = []
  for group in groups.values():
    row = [group.label]
    for _, key, digits in columns:
      have = all(key in e for e in group.by_seed.values())
      row.append(interval_cell(group.values(key), digits) if have else "n/a")
    body.append(row)
  header = ["runs", *(title for title, _, _ in columns)]
  title = "Instruments (suitability and occlusion masks, 3DMMNet's pose):"
  return [title, "", *markdown_table(header, body)]


def _gap_row(claim: str, metric: str, first: list[float], second: list[float], lower_better=True):
  gap = paired_difference(first, second)
  digits = 4 if "NME" in metric or "AUC" in metric else 2
  return [claim, metric, gap.format(digits), str(gap.n), compare(gap, lower_better)]


def claimmarkdown_table(groups: dict[str, Group]) -> list[str]:
  """One paired gap per claim of the paper, the full model first in every difference."""
  if FULL not in groups:
    return ["(no full-model runs: the claims' gaps need them)", ""]
  full = groups[FULL]
  body = []
  seeds = sorted(full.by_seed)
  for metric, key in (("BU-3DFE mean", "bu3dfe/{}/mean"), ("Florence NME", "florence/{}/nme")):
    body.append(_gap_row(
      "1: DepthNet - its 3DMMNet", metric,
      full.values(key.format("depthnet"), seeds), full.values(key.format("3dmm_only"), seeds),
    ))  # fmt: skip
  claims = {"no_multiview": "2: full - synthetic only", "no_occlusion": "3: full - no occlusion",
            "no_suitability": "3: full - no suitability"}  # fmt: skip
  for label, claim in claims.items():
    if label not in groups:
      continue
    shared = sorted(set(seeds) & set(groups[label].by_seed))
    if not shared:
      continue
    other = groups[label]
    for metric, key in (("BU-3DFE mean", "bu3dfe/{}/mean"), ("Florence NME", "florence/{}/nme")):
      key = key.format("depthnet")
      body.append(_gap_row(claim, metric, full.values(key, shared), other.values(key, shared)))
    if label == "no_multiview":
      key = "suitability/specular_auc"
      body.append(_gap_row(
        claim, "suitability AUC", full.values(key, shared), other.values(key, shared), False
      ))  # fmt: skip
  header = ["claim", "metric", "gap", "pairs", "verdict"]
  title = "Claims: paired gaps (95% interval of the per-seed difference):"
  return [title, "", *markdown_table(header, body)]


def report(arguments: list[str]) -> str:
  """Markdown for the runs given as PATH or LABEL=PATH."""
  groups = collect(arguments)
  three_dmm = set().union(*(g.three_dmm_runs for g in groups.values()))
  seeds = ", ".join(f"{g.label}: {sorted(g.by_seed)}" for g in groups.values())
  out = [
    f"Runs by seed: {seeds}. Frozen 3DMMNets: {len(three_dmm)}.",
    "",
  ]
  out += depth_tables(groups) + instrumentmarkdown_table(groups) + claimmarkdown_table(groups)
  return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
  cli.run_report(report, __doc__)
