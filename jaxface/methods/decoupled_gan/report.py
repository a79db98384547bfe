r"""Prints the paper's Table 1 and Table 2 from several evaluated workdirs.

    python -m jaxface.methods.decoupled_gan.report runs/gan_cpu runs/gan_cpu_no_mesh_reg \
        runs/gan_cpu_id_class_only runs/gan_cpu_no_feat_loss runs/gan_linear

Each workdir needs a paper_metrics.json (`decoupled_gan.paper_metrics`).
Table 1: decoupling (% "same"), diversity and specificity (mm), with the
training data's diversity from its labels as the first row; Table 2: sparse
reconstruction RMSE (mm) for each regularisation weight.
"""

from __future__ import annotations

import json
import pathlib

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


def table1(results: list[dict]) -> str:
  columns = ["Dec-Id", "Dec-Exp", "Div", "Div-Id", "Div-Exp", "Sp."]
  keys = [
    "decoupling_identity", "decoupling_expression", "diversity_global",
    "diversity_same_identity", "diversity_same_expression", "specificity",
  ]  # fmt: skip
  lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
  data = results[0]["training_data"]
  lines.append("| training data | — | — | " + " | ".join(
    _number(data.get(k)) for k in keys[2:5]
  ) + " | — |")  # fmt: skip
  for result in results:
    metrics = result["metrics"]
    cells = [_number(metrics.get(k), 1 if k.startswith("decoupling") else 2) for k in keys]
    lines.append(f"| {result['name']} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def table2(results: list[dict]) -> str:
  weights = sorted(
    {key.removeprefix("sparse_rmse_") for r in results for key in r["metrics"]
     if key.startswith("sparse_rmse_")},
    key=float,
  )  # fmt: skip
  lines = [
    "| model | " + " | ".join(f"λ = {w}" for w in weights) + " |",
    "|---" * (len(weights) + 1) + "|",
  ]
  for result in results:
    cells = [_number(result["metrics"].get(f"sparse_rmse_{w}")) for w in weights]
    lines.append(f"| {result['name']} | " + " | ".join(cells) + " |")
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
  evaluators = evaluator_table(results[0].get("evaluators", {}))
  share = results[0]["training_data"].get("identity_specific_energy_pct")
  data = "" if share is None else (
    f"\n\nTraining data: {share:.2f}% of the expression displacement energy is outside the "
    "span of the face model's identity and expression bases (identity-specific)."
  )  # fmt: skip
  return (
    "Table 1: decoupling (%), diversity and specificity (mm)\n\n" + table1(results) + data
    + "\n\nTable 2: sparse reconstruction RMSE (mm)\n\n" + table2(results)
    + (f"\n\nDecoupling evaluators\n\n{evaluators}\n" if evaluators else "\n")
  )  # fmt: skip


if __name__ == "__main__":
  cli.run_report(report, __doc__)
