r"""Prints the paper's Table 1 and Table 2 from several evaluated workdirs.

    python -m jaxface.methods.decoupled_gan.report runs/gan_cpu runs/gan_cpu_no_mesh_reg \
        runs/gan_cpu_id_class_only runs/gan_cpu_no_feat_loss runs/gan_linear

Each workdir needs a paper_metrics.json (`decoupled_gan.paper_metrics`).
Table 1: decoupling (% "same"), diversity and specificity (mm), with the
training data's diversity from its labels as the first row; Table 2: sparse
reconstruction RMSE (mm) for each regularisation weight. Runs that differ
only in their seed (same name, variant and data) share one row: the mean ±
the standard deviation over the n seeds.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from jaxface import cli
from jaxface.errors import ConfigError, InputFileError, NotFoundError


def load(workdir: str | pathlib.Path) -> dict:
  path = pathlib.Path(workdir) / "paper_metrics.json"
  if not path.exists():
    raise NotFoundError(
      f"{path} not found: run `python -m jaxface.methods.decoupled_gan.paper_metrics "
      f"--workdir={workdir}` first"
    )
  try:
    return json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise InputFileError(f"{path} is not readable JSON ({error})") from None


def _number(value, digits: int = 2) -> str:
  return "—" if value is None else f"{value:.{digits}f}"


def _cell(values: list, digits: int) -> str:
  """One metric over a group's seeds: the value, or the mean ± the sample standard deviation."""
  values = [v for v in values if v is not None]
  if not values:
    return "—"
  if len(values) == 1:
    return _number(values[0], digits)
  return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def group_by_seed(results: list[dict]) -> list[tuple[str, list[dict]]]:
  """The runs that differ only in their seed (same name, variant and data), in the order they
  were given, labelled by name (and data variant, when the results hold more than one)."""
  several_data = len({r.get("data") for r in results}) > 1
  groups: dict[tuple, list[dict]] = {}
  for result in results:
    groups.setdefault((result["name"], result.get("variant"), result.get("data")), []).append(
      result
    )
  labelled = []
  for (name, _, data), members in groups.items():
    seeds = [m.get("seed") for m in members]
    if len(set(seeds)) < len(seeds):
      raise ConfigError(f"{name!r} is given twice with the same seed ({seeds})")
    labelled.append((f"{name} ({data})" if several_data and data else name, members))
  return labelled


def table1(results: list[dict]) -> str:
  columns = ["n", "Dec-Id", "Dec-Exp", "Div", "Div-Id", "Div-Exp", "Sp."]
  keys = [
    "decoupling_identity", "decoupling_expression", "diversity_global",
    "diversity_same_identity", "diversity_same_expression", "specificity",
  ]  # fmt: skip
  lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
  seen_data = []
  for label, members in group_by_seed(results):
    data_variant = members[0].get("data")
    if data_variant not in seen_data:  # the training data's own row, once per data variant
      seen_data.append(data_variant)
      data = members[0]["training_data"]
      name = "training data" + (f" ({data_variant})" if label != members[0]["name"] else "")
      cells = " | ".join(_number(data.get(k)) for k in keys[2:5])
      lines.append(f"| {name} | — | — | — | {cells} | — |")
    cells = [
      _cell([m["metrics"].get(k) for m in members], 1 if k.startswith("decoupling") else 2)
      for k in keys
    ]
    lines.append(f"| {label} | {len(members)} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def table2(results: list[dict]) -> str:
  weights = sorted(
    {key.removeprefix("sparse_rmse_") for r in results for key in r["metrics"]
     if key.startswith("sparse_rmse_")},
    key=float,
  )  # fmt: skip
  lines = [
    "| model | n | " + " | ".join(f"λ = {w}" for w in weights) + " |",
    "|---" * (len(weights) + 2) + "|",
  ]
  for label, members in group_by_seed(results):
    cells = [_cell([m["metrics"].get(f"sparse_rmse_{w}") for m in members], 2) for w in weights]
    lines.append(f"| {label} | {len(members)} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def evaluator_table(evaluators: dict) -> str:
  """Each evaluator's threshold and quality on its validation data, against the paper's."""
  if not evaluators:
    return ""
  percent = lambda v: "—" if v is None else f"{100 * v:.2f}"
  lines = [
    "| factor | validated on | tau | accuracy (%) | FAR (%) | same-label pass rate (%) "
    "| paper: accuracy / FAR (%) | verdict |",
    "|---" * 8 + "|",
  ]
  for factor, v in evaluators.items():
    target = v.get("target")
    paper = "—" if not target else f"{100 * target[0]:.2f} / {100 * target[1]:.2f}"
    problems = v.get("problems", [])
    verdict = "; ".join(problems) if problems else ("meets the paper's" if target else "—")
    cells = [factor, v.get("validated_on", "training identities"), f"{v['threshold']:.3f}",
             percent(v["accuracy"]), percent(v["far"]), percent(v.get("pass_rate")), paper,
             verdict]  # fmt: skip
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def report(workdirs: list[str]) -> str:
  if not workdirs:
    raise ConfigError("give at least one workdir")
  results = [load(w) for w in workdirs]
  for workdir, result in zip(workdirs, results, strict=True):
    result.setdefault("name", pathlib.Path(workdir).name)
  # The evaluators and the data's identity-specific share belong to each data variant.
  first_of_data = {}
  for result in results:
    first_of_data.setdefault(result.get("data"), result)
  data_notes, evaluator_notes = [], []
  for data_variant, result in first_of_data.items():
    heading = f" ({data_variant} data)" if len(first_of_data) > 1 else ""
    share = result["training_data"].get("identity_specific_energy_pct")
    if share is not None:
      data_notes.append(
        f"Training data{heading}: {share:.2f}% of the expression displacement energy is outside "
        "the span of the face model's identity and expression bases (identity-specific)."
      )
    table = evaluator_table(result.get("evaluators", {}))
    if table:
      evaluator_notes.append(f"Decoupling evaluators{heading}\n\n{table}")
  notes = "".join(f"\n\n{note}" for note in data_notes)
  evaluators = "".join(f"\n\n{note}" for note in evaluator_notes)
  return (
    "Table 1: decoupling (%), diversity and specificity (mm); n seeds, mean ± sd\n\n"
    + table1(results) + notes
    + "\n\nTable 2: sparse reconstruction RMSE (mm)\n\n" + table2(results) + evaluators + "\n"
  )  # fmt: skip


if __name__ == "__main__":
  cli.run_report(report, __doc__)
