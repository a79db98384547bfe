r"""The decoupled GAN's learning curve: Table 1's metrics at every checkpoint a run kept.

    python -m jaxface.methods.decoupled_gan.learning_curve --workdir=runs/gan_long

Scores each checkpoint of the run (oldest first) with the same evaluators,
samples and seeds as `paper_metrics` — identity and expression decoupling
(Dec-Id, Dec-Exp), diversity of samples sharing each factor (Div-Id is
`diversity_same_identity`) and specificity; not the sparse fitting, which
`paper_metrics` runs on the final model — so the reader sees whether and
when decoupling appears. Writes <workdir>/learning_curve.json (one row per
step, plus the training data's diversity and the evaluators' validation) and
<workdir>/learning_curve.png. `--config` works as for `paper_metrics`.
Run it again while the run trains: the checkpoints it scored under the same
config are kept (also once the run has deleted them) and only new ones are
scored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import pathlib

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or assumed

import matplotlib.pyplot as plt
import numpy as np
import tqdm
from absl import flags
from ml_collections import config_flags

from jaxface import cli
from jaxface.errors import NotFoundError
from jaxface.methods.decoupled_gan.data import create_dataset
from jaxface.methods.decoupled_gan.method import shape_generator
from jaxface.methods.decoupled_gan.paper_metrics import (
  decoupling_evaluators,
  run_identity,
  table1_metrics,
  training_data_metrics,
)
from jaxface.training import checkpoints, load_run, read_config

log = logging.getLogger(__name__)

#: The curves drawn, as (metric key, axis label); decoupling in %, the others in mm.
PANELS = (
  (("decoupling_identity", "Dec-Id"), ("decoupling_expression", "Dec-Exp")),
  (
    ("diversity_same_identity", "Div-Id"),
    ("diversity_same_expression", "Div-Exp"),
    ("specificity", "Spec"),
  ),
)


def checkpoint_steps(workdir: pathlib.Path) -> list[int]:
  """The steps of the checkpoints the run kept, oldest first; NotFoundError when there are none."""
  folder = pathlib.Path(workdir) / "checkpoints"
  if not checkpoints.has_checkpoints(folder):
    raise NotFoundError(f"no checkpoint in {folder}")
  with contextlib.closing(checkpoints.manager(folder, read_only=True)) as series:
    return sorted(int(step) for step in series.all_steps())


def learning_curve(config, workdir: pathlib.Path, progress: bool = True) -> dict:
  """Computes and writes <workdir>/learning_curve.{json,png}; returns the JSON's content."""
  workdir = pathlib.Path(workdir)
  steps = checkpoint_steps(workdir)
  fingerprint = config_fingerprint(config)
  scored = _scored_rows(workdir / "learning_curve.json", fingerprint)
  train = create_dataset(config, "train")
  evaluators = decoupling_evaluators(config, train, create_dataset(config, "unseen"))
  rows = list(scored.values())
  todo = [step for step in steps if step not in scored]
  if scored:
    log.info("reusing %d scored checkpoints; scoring %d", len(scored), len(todo))
  for step in tqdm.tqdm(todo, desc="checkpoints", disable=not progress):
    trained = load_run(workdir, step, config=config, method="decoupled_gan")
    generator = shape_generator(trained.state, trained.config)
    rng = np.random.default_rng(config.seed)  # the same samples at every step
    metrics, _, _ = table1_metrics(generator, config, train, evaluators, rng)
    rows.append({"step": step, **metrics})
    log.info("step %d: %s", step, json.dumps(metrics))
  rows.sort(key=lambda row: row["step"])
  result = {
    "name": config.ablation if config.ablation != "none" else "full model",
    **run_identity(config),
    "config_fingerprint": fingerprint,
    "steps": rows,
    "training_data": training_data_metrics(train, config, np.random.default_rng(config.seed)),
    "evaluators": {f: e.record(config.evaluation.targets.get(f)) for f, e in evaluators.items()},
  }
  (workdir / "learning_curve.json").write_text(json.dumps(result, indent=2) + "\n")
  plot_curve(result, workdir / "learning_curve.png")
  return result


def config_fingerprint(config) -> str:
  """A hash of the whole config: rows scored under another config (other evaluators, samples or
  training) are never mixed into a curve."""
  text = json.dumps(config.to_dict(), sort_keys=True, default=str)
  return hashlib.sha1(text.encode()).hexdigest()[:16]


def _scored_rows(path: pathlib.Path, fingerprint: str) -> dict[int, dict]:
  """The rows an earlier call wrote under the same config, by step (none when the file is
  absent, unreadable or from another config), so that a curve grows as a run trains."""
  if not path.exists():
    return {}
  try:
    earlier = json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError):
    log.warning("%s is not readable JSON: every checkpoint is scored again", path)
    return {}
  if earlier.get("config_fingerprint") != fingerprint:
    return {}
  return {int(row["step"]): row for row in earlier.get("steps", [])}


def plot_curve(result: dict, path: pathlib.Path) -> None:
  """Decoupling (%) and diversity/specificity (mm) against the step; the training data dashed,
  each evaluator's pass rate on same-class pairs (what perfect decoupling scores) dotted."""
  steps = [row["step"] for row in result["steps"]]
  figure, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 3.5))
  for axis, panel in zip(axes, PANELS, strict=True):
    for key, label in panel:
      if key not in result["steps"][0]:
        continue
      (line,) = axis.plot(steps, [row[key] for row in result["steps"]], "o-", label=label)
      if key in result["training_data"]:
        axis.axhline(result["training_data"][key], ls="--", color=line.get_color(), lw=1)
      factor = key.removeprefix("decoupling_")
      if key.startswith("decoupling_") and factor in result["evaluators"]:
        # The evaluator's pass rate on true same-class pairs: a perfectly decoupled model's score.
        ceiling = 100 * result["evaluators"][factor]["pass_rate"]
        axis.axhline(ceiling, ls=":", color=line.get_color(), lw=1, label=f"{label} ceiling")
    axis.set_xlabel("iteration")
    axis.legend(fontsize=8)
  axes[0].set_ylabel("% of pairs called the same")
  axes[0].set_ylim(0, 103)
  axes[1].set_ylabel("mm (dashed: training data)")
  figure.suptitle(f"{result['name']} ({result['variant']})")
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def main() -> None:
  """The command line (flags defined here, as in `paper_metrics`)."""
  workdir = flags.DEFINE_string("workdir", None, "Run directory (its config.json is used).")
  config = config_flags.DEFINE_config_file(
    "config", None, "Config file[:variant] (overrides: --config.x=y); default: the workdir's."
  )
  flags.mark_flags_as_required(["workdir"])

  def run_from_flags(argv):
    del argv
    directory = pathlib.Path(workdir.value)
    given = cli.config_value(config)
    result = learning_curve(read_config(directory) if given is None else given, directory)
    for row in result["steps"]:
      print(json.dumps(row))

  cli.run(run_from_flags)


if __name__ == "__main__":
  main()
