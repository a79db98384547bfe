r"""The paper's Table 1 and Table 2 metrics for a trained run or the linear baseline.

    python -m jaxface.methods.decoupled_gan.paper_metrics --workdir=runs/gan_cpu
    python -m jaxface.methods.decoupled_gan.paper_metrics --baseline=linear \
        --config=configs/decoupled_gan.py:cpu --workdir=runs/gan_linear

`--config` (with `--config.x=y` overrides, as for train/main.py) defaults to the
config the run saved in its workdir; the linear baseline needs it. The run's
newest checkpoint that restores is scored unless `--step` is given; a
missing run or file stops the command with one line and exit status 2.

Writes <workdir>/paper_metrics.json (read by `report`), plus figures under
<workdir>/paper_figures/: sample grids (random, same identity code, same
expression code), the best/worst specificity samples, and the latent
manipulation of the supplement (replace / add expression codes) as meshes
and a rendered grid. The decoupling evaluators (one embedding network per
factor, trained on the dataset's true classes) are trained once per dataset
and cached, so every row of a table is scored by the same networks; each is
validated on identities it never saw, and one below the paper's quality
(or collapsed) is logged and marked in the JSON and the report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pathlib
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np
import PIL.Image
from absl import flags
from ml_collections import config_flags

from jaxface import cli
from jaxface.data.builders import cache_dir
from jaxface.errors import ConfigError
from jaxface.io.mesh import export_mesh
from jaxface.methods.decoupled_gan.data import (
  MeshDataset,
  create_dataset,
  identity_specific_energy,
)
from jaxface.methods.decoupled_gan.figures import mesh_images, sample_grid, tile
from jaxface.methods.decoupled_gan.linear import fit_linear_model
from jaxface.methods.decoupled_gan.method import shape_generator
from jaxface.metrics.decoupling import (
  Embedder,
  Verification,
  choose_threshold,
  decoupling_score,
  image_frame,
  mesh_embedding,
  train_embedder,
)
from jaxface.metrics.shape import (
  ShapeGenerator,
  data_diversity,
  generator_diversity,
  sparse_reconstruction_rmse,
  specificity_per_sample,
)
from jaxface.morphable import load as load_model
from jaxface.training import load_run, read_config

log = logging.getLogger(__name__)

#: Blendshapes outside the training emotions, for "extreme expressions" (Table 2's test set).
EXTREME_SHAPES = (
  "jawOpen", "jawLeft", "jawRight", "jawForward", "mouthLeft", "mouthRight", "mouthPucker",
  "mouthFunnel", "cheekPuff", "mouthRollUpper", "mouthRollLower", "mouthPress_L",
  "mouthPress_R", "eyeBlink_L", "eyeBlink_R", "mouthStretch_L", "mouthStretch_R", "browDown_L",
  "browOuterUp_R", "mouthLowerDown_L", "mouthLowerDown_R", "mouthClose", "noseSneer_L",
)  # fmt: skip


def training_data_metrics(train: MeshDataset, config, rng: np.random.Generator) -> dict:
  """Diversity of the training meshes from their labels (Table 1's first row), and the share of
  their expression energy that is identity-specific (what a separable model cannot express)."""
  vertices = train.vertices(progress=True)
  diversity = data_diversity(vertices, train.labels, config.evaluation.num_pairs, rng)
  out = {f"diversity_{k}": float(v) for k, v in diversity.items()}
  share = identity_specific_energy(train, float(config.data.get("personal_strength", 0.0)))
  if share is not None:
    out["identity_specific_energy_pct"] = float(share)
  return out


def sparse_test_set(model_spec: str, count: int, seed: int = 12) -> np.ndarray:
  """(count, V, 3) mm: unseen identities with extreme expressions outside the training set.

  12 expressions per subject as in the paper's CoMA test data; each is 2-4
  strong blendshapes not used by the training emotions' mixes.
  """
  model = load_model(model_spec)
  names = [n for n in EXTREME_SHAPES if n in model.expression_names]
  if len(names) < 4:
    raise ValueError(f"model {model.name!r} lacks the blendshapes of the extreme expressions")
  rng = np.random.default_rng(seed)
  meshes = []
  for index in range(count):
    if index % 12 == 0:
      identity = rng.standard_normal(model.num_identity).astype(np.float32)
    weights = np.zeros(model.num_expression, np.float32)
    for name in rng.choice(names, size=rng.integers(2, 5), replace=False):
      weights[model.expression_index(name)] = rng.uniform(0.7, 1.0)
    meshes.append(np.asarray(model.shape(identity, weights)))
  scale = {"cm": 10.0, "mm": 1.0, "m": 1000.0}[model.units]
  return np.stack(meshes).astype(np.float32) * scale


def _embedder_dir(config, train: MeshDataset) -> pathlib.Path:
  if config.evaluation.embedder_dir:
    root = pathlib.Path(config.evaluation.embedder_dir)
  elif config.data.data_dir:  # beside the datasets the user chose to keep elsewhere
    root = pathlib.Path(config.data.data_dir) / "decoupling_embedders"
  else:
    root = cache_dir() / "decoupling_embedders"
  ev = config.evaluation
  key = json.dumps(
    [train.name, len(train), config.data.to_dict(), ev.embedder_image_size,
     ev.embedder_batch_size, ev.embedder_width, ev.embedder_mining, "true labels",
     list(config.gan.factors)],
    sort_keys=True, default=str,
  )  # fmt: skip
  return pathlib.Path(root) / hashlib.sha1(key.encode()).hexdigest()[:12]


def embedder_steps(config, factor: str) -> int:
  """Training steps of `factor`'s evaluator: `config.evaluation.embedder_steps[factor]`, or the
  one number every factor trains for when it is an int (as in configs saved before 2026-12-02)."""
  steps = config.evaluation.embedder_steps
  if isinstance(steps, int):
    return steps
  if factor not in steps:
    raise ConfigError(
      f"config.evaluation.embedder_steps has no entry for the factor {factor!r} "
      f"(it has {sorted(steps)})"
    )
  return int(steps[factor])


class Evaluator(NamedTuple):
  """One factor's decoupling evaluator: its mesh embedding and its validation on unseen data."""

  embed: Callable[[np.ndarray], np.ndarray]
  verification: Verification
  problems: list[str]  # why it falls short of the paper's quality ([] when it meets it)

  def record(self, target) -> dict:
    """What paper_metrics.json keeps of it."""
    quality = {"collapsed": self.verification.collapsed, "validated_on": "unseen identities"}
    target = None if target is None else list(target)
    return {**self.verification._asdict(), **quality, "target": target, "problems": self.problems}


def decoupling_evaluators(config, train: MeshDataset, unseen: MeshDataset, progress=True):
  """{factor: `Evaluator`}, trained once per dataset and cached.

  Each factor's embedder is trained on the training meshes' true classes
  (`MeshDataset.true_labels`: the synthetic data know every mesh's
  expression; an evaluator is a measuring instrument, not part of the
  model) and validated on meshes of identities it never saw (`unseen`),
  against the paper's quality (`config.evaluation.targets`).
  """
  ev = config.evaluation
  # The evaluators belong to the dataset, not to a run: the data's seed (not the run's) draws
  # their initialisation, batches and validation pairs, so runs of every seed share them.
  seed = int(config.data.seed)
  folder = _embedder_dir(config, train)
  folder.mkdir(parents=True, exist_ok=True)
  triangles = train.triangles
  frame = image_frame(train.template)  # every mesh, real or generated, framed alike
  train_images = unseen_images = None
  evaluators = {}
  for factor in config.gan.factors:
    steps = embedder_steps(config, factor)
    path = folder / f"{factor}-{steps}-steps.npz"
    if path.exists():
      embedder = Embedder.load(path)
    else:
      if train_images is None:
        log.info("rendering the training meshes for the decoupling embedders")
        vertices = train.vertices(progress=progress)
        train_images = mesh_images(vertices, triangles, ev.embedder_image_size, frame)
      started = time.perf_counter()
      embedder = train_embedder(
        train_images, train.true_labels[factor], num_steps=steps,
        batch_size=ev.embedder_batch_size, width=ev.embedder_width,
        rng=jax.random.PRNGKey(seed), progress=progress, mining=ev.embedder_mining,
      )  # fmt: skip
      embedder.save(path)
      log.info("%s embedder: %.0f s", factor, time.perf_counter() - started)
    if unseen_images is None:
      unseen_images = mesh_images(unseen.vertices(), triangles, ev.embedder_image_size, frame)
    verification = choose_threshold(
      embedder.embed(unseen_images), unseen.true_labels[factor], num_pairs=2000,
      max_false_acceptance=0.1, rng=np.random.default_rng(seed),
    )  # fmt: skip
    # Without a target (no paper figure), only a collapse is a problem.
    problems = verification.problems(*ev.targets.get(factor, (0.0, 1.0)))
    for problem in problems:
      log.warning("the %s evaluator is below the paper's quality: %s", factor, problem)
    embed = mesh_embedding(embedder, triangles, ev.embedder_image_size, *frame)
    evaluators[factor] = Evaluator(embed, verification, problems)
  return evaluators


def model_metrics(generator: ShapeGenerator, config, train: MeshDataset, evaluators, rng):
  """Table 1 (decoupling, diversity, specificity) and Table 2 (sparse fitting) for one model.

  Returns (metrics, the specificity samples (S, V, 3), their per-sample specificity (S,)).
  """
  metrics, samples, per_sample = table1_metrics(generator, config, train, evaluators, rng)
  metrics.update(table2_metrics(generator, config))
  return metrics, samples, per_sample


def table1_metrics(generator: ShapeGenerator, config, train: MeshDataset, evaluators, rng):
  """Diversity, specificity and decoupling of one model: (metrics, samples, per-sample
  specificity), as `model_metrics`."""
  ev = config.evaluation
  metrics = {}
  for key, value in generator_diversity(generator, num_pairs=ev.num_pairs, rng=rng).items():
    metrics[f"diversity_{key}"] = float(value)
  samples = generator.generate(generator.sample_codes(rng, ev.specificity_samples))
  per_sample = specificity_per_sample(samples, train.vertices())
  metrics["specificity"] = float(np.mean(per_sample))
  for factor, evaluator in evaluators.items():
    if factor not in generator.code_dims:
      continue
    metrics[f"decoupling_{factor}"] = float(
      decoupling_score(
        generator, factor, evaluator.embed, evaluator.verification.threshold,
        num_bases=ev.decoupling_bases,
        samples_per_base=ev.decoupling_samples, rng=rng,
      )
    )  # fmt: skip
  return metrics, samples, per_sample


def table2_metrics(generator: ShapeGenerator, config) -> dict:
  """Sparse fitting RMSE (mm) of one model at each of `config.evaluation.regularisations`."""
  ev = config.evaluation
  metrics = {}
  truth = sparse_test_set(config.data.model, ev.sparse_meshes)
  keypoints = np.asarray(load_model(config.data.model).landmarks)
  for regularisation in ev.regularisations:
    metrics[f"sparse_rmse_{regularisation:g}"] = float(
      sparse_reconstruction_rmse(
        generator, keypoints, truth, regularisation, num_steps=ev.sparse_steps,
        learning_rate=ev.sparse_learning_rate, rng=jax.random.PRNGKey(config.seed),
        num_starts=ev.sparse_starts, tolerance=ev.sparse_tolerance,
      )
    )  # fmt: skip
  return metrics


def write_figures(generator: ShapeGenerator, folder: pathlib.Path, samples, per_sample, seed=0):
  """Sample grids, best/worst specificity samples and the latent manipulation."""
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  for share in [None, *[f for f in generator.code_dims if f != "noise"]]:
    name = "random" if share is None else f"same_{share}"
    image = sample_grid(generator, rng, rows=4, cols=6, share=share)
    PIL.Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"samples_{name}.png")
  order = np.argsort(per_sample)
  extremes = np.concatenate([samples[order[:3]], samples[order[-3:]]])
  image = tile(mesh_images(extremes, generator.triangles, 128), rows=1)
  PIL.Image.fromarray((image * 255).astype(np.uint8)).save(folder / "specificity_best3_worst3.png")
  if "expression" in generator.code_dims:
    codes = generator.sample_codes(rng, 2)  # row 0: source, row 1: target
    source = {k: v[:1] for k, v in codes.items()}
    target = {k: v[1:] for k, v in codes.items()}
    replaced = dict(target, expression=source["expression"])
    added = dict(target, expression=source["expression"] + target["expression"])
    meshes = {
      name: generator.generate(c)[0]
      for name, c in [("source", source), ("target", target), ("replaced", replaced),
                      ("added", added)]
    }  # fmt: skip
    for name, vertices in meshes.items():
      path = folder / f"manipulation_{name}.obj"
      path.unlink(missing_ok=True)  # this folder is regenerated as a whole
      export_mesh(path, vertices, generator.triangles)
    image = tile(mesh_images(np.stack(list(meshes.values())), generator.triangles, 128), rows=1)
    PIL.Image.fromarray((image * 255).astype(np.uint8)).save(folder / "manipulation.png")


def run_identity(config) -> dict:
  """What tells one evaluated run from another besides its name: the report averages the runs
  that differ only in `seed`."""
  strength = float(config.data.get("personal_strength", 0.0))
  return {
    "variant": config.variant,
    "data": "personal" if strength > 0 else "separable",
    "seed": int(config.seed),
  }


def run(config, workdir: pathlib.Path, baseline: str = "", step: int | None = None) -> dict:
  """Computes and writes <workdir>/paper_metrics.json; returns the metrics."""
  workdir.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(config.seed)
  train = create_dataset(config, "train")
  if baseline == "linear":
    vertices = train.vertices(progress=True)
    dims = dict(zip(config.gan.factors, config.gan.factor_dims, strict=True))
    # An identity space cannot have more modes than identities minus one.
    num_identity = min(dims["identity"], len(np.unique(train.labels["identity"])) - 1)
    linear = fit_linear_model(
      vertices, train.labels["identity"], num_identity, dims["expression"], seed=config.seed
    )
    linear.save(workdir / "linear_model.npz")
    generator = linear.shape_generator(train.triangles)
    name, step = "linear baseline", 0
  elif baseline:
    raise ConfigError(f"unknown baseline {baseline!r}; known: 'linear'")
  else:
    trained = load_run(workdir, step, config=config, method="decoupled_gan")
    generator = shape_generator(trained.state, trained.config)
    name = config.ablation if config.ablation != "none" else "full model"
    step = trained.step
  evaluators = decoupling_evaluators(config, train, create_dataset(config, "unseen"))
  started = time.perf_counter()
  metrics, samples, per_sample = model_metrics(generator, config, train, evaluators, rng)
  write_figures(generator, workdir / "paper_figures", samples, per_sample, config.seed)
  result = {
    "name": name,
    "step": int(step),
    **run_identity(config),
    "metrics": metrics,
    "training_data": training_data_metrics(train, config, np.random.default_rng(config.seed)),
    "evaluators": {f: e.record(config.evaluation.targets.get(f)) for f, e in evaluators.items()},
    "seconds": time.perf_counter() - started,
  }
  (workdir / "paper_metrics.json").write_text(json.dumps(result, indent=2) + "\n")
  return result


def main() -> None:
  """The command line. Flags are defined here, not at import, so that importing this module
  (tests, notebooks, train/main.py in one process) never clashes with another `--config`."""
  workdir = flags.DEFINE_string("workdir", None, "Run directory (its config.json is used).")
  config = config_flags.DEFINE_config_file(
    "config", None, "Config file[:variant] (overrides: --config.x=y); default: the workdir's."
  )
  baseline = flags.DEFINE_enum("baseline", "", ["", "linear"], "Evaluate a baseline instead.")
  step = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
  flags.mark_flags_as_required(["workdir"])

  def run_from_flags(argv):
    del argv
    directory = pathlib.Path(workdir.value)
    given = cli.config_value(config)
    if given is None and baseline.value:
      raise ConfigError("the linear baseline has no run to read a config from: pass --config")
    chosen = read_config(directory) if given is None else given
    result = run(chosen, directory, baseline.value, step.value)
    print(json.dumps(result["metrics"], indent=2))

  cli.run(run_from_flags)


if __name__ == "__main__":
  main()
