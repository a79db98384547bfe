r"""Prints the personalized results over seeds: every variant's errors with intervals, a gap per
claim.

    python -m jaxface.methods.personalized.report runs/pfm_full_s0 runs/pfm_full_s1 \
        runs/pfm_generic_s0 runs/pfm_generic_s1 runs/pfm_no_dynamic_albedo_s0 ...

Each argument is an evaluated personalized workdir (or LABEL=WORKDIR); the
latest evaluation in its metrics.jsonl is used. Runs are grouped by label
(their config's ablation, "full" for none) and paired across groups by
their `config.seed`. Every figure is the mean over a group's runs with its
95% Student-t interval (`jaxface.metrics.spread`); every gap is the paired
interval of per-seed differences, with the verdict "better", "worse" or
"within noise" ("one run only" for a single pair).
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
  paired_difference,
)
from jaxface.training.runs import latest_evaluation, read_config

FULL = "full"
MARKER = "reconstruction/vertex_error_mm"
#: (column title, evaluation key, digits), every one lower-is-better.
COLUMNS = (
  ("vertex (mm)", "reconstruction/vertex_error_mm", 3),
  ("neutral (mm)", "reconstruction/neutral_error_mm", 3),
  ("expression (mm)", "reconstruction/expression_error_mm", 3),
  ("photometric", "reconstruction/photometric", 4),
  ("landmarks (px)", "reconstruction/landmark_error_px", 3),
  ("retarget vertex (mm)", "retargeting/vertex_error_mm", 3),
  ("retarget expression (mm)", "retargeting/expression_error_mm", 3),
  ("weight MAE", "tracking/weight_error", 4),
  ("rotation (deg)", "tracking/rotation_error_deg", 2),
)
#: The claims' gaps: (claim, first label, second label, metric keys).
CLAIMS = (
  ("1: personal model - generic rig", FULL, "generic",
   ("reconstruction/vertex_error_mm", "reconstruction/expression_error_mm",
    "reconstruction/photometric", "reconstruction/landmark_error_px")),
  ("1a: personal blendshapes alone - generic rig", "no_dynamic_albedo", "generic",
   ("reconstruction/expression_error_mm", "reconstruction/photometric")),
  ("2: dynamic albedo - static albedo", FULL, "no_dynamic_albedo",
   ("reconstruction/photometric", "reconstruction/expression_error_mm")),
  ("3: retargeting, personal - generic", FULL, "generic",
   ("retargeting/vertex_error_mm", "retargeting/expression_error_mm")),
)  # fmt: skip


def collect(arguments: list[str]) -> dict[str, SeedGroup]:
  """Groups of evaluated runs from PATH or LABEL=PATH arguments, the full model's first."""
  if not arguments:
    raise ConfigError("give at least one evaluated personalized workdir")
  groups: dict[str, SeedGroup] = {}
  for argument in arguments:
    label, _, path = argument.rpartition("=")
    workdir = pathlib.Path(path)
    config = read_config(workdir)
    if config.get("method") != "personalized":
      raise InputFileError(f"{workdir} is a {config.get('method')!r} run, not personalized")
    if not label:
      label = FULL if config.ablation == "none" else str(config.ablation)
    group = groups.setdefault(label, SeedGroup(label))
    group.add(int(config.seed), latest_evaluation(workdir, MARKER), str(workdir))
  return dict(sorted(groups.items(), key=lambda item: item[0] != FULL))


def error_table(groups: dict[str, SeedGroup]) -> list[str]:
  """Every variant's errors on the held-out users (mean and 95% interval over seeds)."""
  body = []
  for group in groups.values():
    steps = "/".join(str(s) for s in sorted(group.steps))
    cells = [interval_cell(group.values(key), digits) for _, key, digits in COLUMNS]
    body.append([group.label, *cells, str(len(group.by_seed)), steps])
  header = ["variant", *(title for title, _, _ in COLUMNS), "runs", "steps"]
  return ["Errors on held-out users (lower is better):", "", *markdown_table(header, body)]


#: What the networks learnt, not errors (absent from runs evaluated before these metrics existed).
BEHAVIOUR = (
  ("tracked-weight correlation (0: blind to expression)", "tracking/weight_correlation", 3),
  ("added by the corrections (mm)", "model/correction_mm", 3),
  ("share fixed over a user's frames", "model/correction_static_share", 3),
)


def behaviour_table(groups: dict[str, SeedGroup]) -> list[str]:
  """Whether the tracker reads expressions, and the learnt blendshape corrections: their size
  and how much of them is an identity offset."""
  body = []
  for group in groups.values():
    row = [group.label]
    for _, key, digits in BEHAVIOUR:
      have = all(key in e for e in group.by_seed.values())
      row.append(interval_cell(group.values(key), digits) if have else "n/a")
    body.append(row)
  header = ["variant", *(title for title, _, _ in BEHAVIOUR)]
  title = "What the networks learnt (the corrections' size is of sum_k w_k dB_k per frame):"
  return [title, "",
          *markdown_table(header, body)]  # fmt: skip


def data_table(groups: dict[str, SeedGroup]) -> list[str]:
  """What the data leave to personalise (the same for every run on one dataset)."""
  first = next(iter(groups.values()))
  rows = [
    ["identity-specific share of the expression displacement (%)",
     f"{first.values('data/identity_specific_pct')[0]:.2f}"],
    ["mean true expression displacement (mm)",
     f"{first.values('data/expression_displacement_mm')[0]:.3f}"],
    ["best generic-rig expression error (mm): a generic rig's floor",
     f"{first.values('data/generic_floor_mm')[0]:.3f}"],
  ]  # fmt: skip
  return ["The data:", "", *markdown_table(["quantity", "value"], rows)]


def claim_table(groups: dict[str, SeedGroup]) -> list[str]:
  """One paired gap per claim and metric, where both groups have runs of common seeds."""
  titles = {key: title for title, key, _ in COLUMNS}
  digits = {key: d for _, key, d in COLUMNS}
  body = []
  for claim, first_label, second_label, keys in CLAIMS:
    if first_label not in groups or second_label not in groups:
      continue
    first, second = groups[first_label], groups[second_label]
    seeds = sorted(set(first.by_seed) & set(second.by_seed))
    if not seeds:
      continue
    for key in keys:
      gap = paired_difference(first.values(key, seeds), second.values(key, seeds))
      body.append([claim, titles[key], gap.format(digits[key]), str(gap.n), compare(gap)])
  if not body:
    return ["(no pair of variants with common seeds: the claims' gaps need them)", ""]
  title = "Claims: paired gaps, first - second (95% interval of the per-seed difference):"
  return [title, "", *markdown_table(["claim", "metric", "gap", "pairs", "verdict"], body)]


def report(arguments: list[str]) -> str:
  """Markdown for the runs given as PATH or LABEL=PATH."""
  groups = collect(arguments)
  seeds = ", ".join(f"{g.label}: {sorted(g.by_seed)}" for g in groups.values())
  out = [f"Runs by seed: {seeds}.", ""]
  out += error_table(groups) + behaviour_table(groups) + data_table(groups) + claim_table(groups)
  return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
  cli.run_report(report, __doc__)
