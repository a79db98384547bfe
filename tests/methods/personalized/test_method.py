"""Config checks, the two stages, one step of each (what it trains, its loss, one trace), the
variants' personal models, the data and the evaluation's ground truth."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxface.data import personal
from jaxface.errors import ConfigError
from jaxface.methods import personalized
from jaxface.methods.personalized import evaluation, losses, networks
from jaxface.methods.personalized.image_formation import personal_model
from jaxface.methods.protocol import frozen
from jaxface.morphable import load as load_model


@pytest.mark.parametrize(
  ("overrides", "field"),
  [
    ({"personalized.stage": "both"}, "personalized.stage"),
    ({"personalized.steps_joint": -1}, "personalized.steps_joint"),
    ({"personalized.frames_per_user": 0}, "personalized.frames_per_user"),
    ({"personalized.learning_rate": 0.0}, "personalized.learning_rate"),
    ({"personalized.encoder_widths": (4, 8)}, "personalized.encoder_widths"),
    ({"personalized.decoder_widths": (4, 8)}, "personalized.decoder_widths"),
    ({"data.image_size": 48}, "data.image_size"),
    ({"data.personal_strength": -1.0}, "data.personal_strength"),
    ({"data.expression_amplitude": 0.0}, "data.expression_amplitude"),
    ({"personalized.correction_support": "all"}, "personalized.correction_support"),
    ({"personalized.steps_joint": 0, "personalized.steps_finetune": 0}, "steps_finetune"),
  ],
)
def test_bad_fields_are_named(make_config, overrides, field):
  with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
    personalized.stages(make_config(**overrides))


def test_weights_must_name_every_term(make_config):
  config = make_config()
  config.personalized.weights.unknown = 1.0
  with pytest.raises(ConfigError, match="unknown"):
    personalized.stages(config)


def test_a_finetune_stage_alone_needs_a_joint_run(make_config):
  with pytest.raises(ConfigError, match=r"warm_start\.joint\.workdir"):
    personalized.stages(make_config("smoke,stage=finetune"))
  config = make_config("smoke,stage=finetune", **{"warm_start.joint.workdir": "/some/run"})
  assert [stage.name for stage in personalized.stages(config)] == ["finetune"]


def test_stages_train_both_networks_then_the_modeling_network(make_config):
  joint, finetune = personalized.stages(make_config())
  assert (joint.name, joint.modules) == ("joint", ("modeling", "tracking"))
  assert (finetune.name, finetune.modules) == ("finetune", ("modeling",))


def test_frames_per_user_cannot_exceed_the_sequence(make_config):
  config = frozen(make_config(**{"personalized.frames_per_user": 9}))
  with pytest.raises(ConfigError, match="frames_per_user"):
    personalized.create_dataset(config, "train")


def _changed(before, after, name: str) -> bool:
  leaves = zip(jax.tree.leaves(getattr(before, name)["params"]),
               jax.tree.leaves(getattr(after, name)["params"]), strict=True)  # fmt: skip
  return any(not np.array_equal(a, b) for a, b in leaves)


@pytest.mark.parametrize("stage_index", [0, 1])
def test_a_step_trains_its_stage_modules_with_the_weighted_energy(smoke, state, stage_index):
  config, _, pipeline = smoke
  stage = personalized.stages(config)[stage_index]
  batch = jax.tree.map(np.asarray, pipeline.local_batch(0))
  chex.clear_trace_counter()  # the counter is per function name, shared by the parameters

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(state, batch):
    return stage.step(state, batch, config=config, stage=stage)

  before = jax.tree.map(np.asarray, state)
  after, metrics = step(jax.tree.map(np.copy, before), batch)
  after, _ = step(after, batch)  # a second call does not retrace
  assert _changed(before, after, "modeling")
  assert _changed(before, after, "tracking") == ("tracking" in stage.modules)
  assert not all(
    np.array_equal(a, b)
    for a, b in zip(
      jax.tree.leaves(before.modeling["batch_stats"]),
      jax.tree.leaves(after.modeling["batch_stats"]),
      strict=True,
    )
  )
  prefix = f"{stage.name}/"
  terms = {k[len(prefix) :]: float(v) for k, v in metrics.items()}
  assert set(losses.WEIGHTS) <= set(terms)
  weighted = sum(losses.WEIGHTS[name] * terms[name] for name in losses.WEIGHTS)
  assert terms["loss"] == pytest.approx(weighted, rel=1e-5)
  assert all(np.isfinite(v) for v in terms.values())


@pytest.mark.parametrize(
  ("ablation", "corrections", "dynamic"),
  [
    ("none", True, True),
    ("generic", False, False),
    ("no_dynamic_albedo", True, False),
    ("free_corrections", True, True),
  ],
)
def test_variants_drop_what_they_ablate(make_config, smoke, state, ablation, corrections, dynamic):
  config = frozen(make_config(f"smoke,ablation={ablation}"))
  _, dataset, _ = smoke
  images = np.asarray(dataset[0]["image"])[None]
  maps = networks.model_users(config, state, None, images, train=False)
  person = personal_model(config, state.arrays, maps)
  assert bool(np.any(person.blendshape_corrections)) == corrections
  assert bool(np.any(person.dynamic_albedo)) == dynamic
  assert np.any(person.neutral_correction)  # every variant keeps the personal neutral


def test_a_training_example_is_distinct_frames_of_one_user(smoke, make_config):
  config, dataset, _ = smoke
  sequences = dataset.sequences
  example = dataset[5]
  user = 5 % len(sequences)
  frames = np.asarray(sequences[user]["image"], np.float32) / 255.0
  chosen = [
    int(np.argmin(np.abs(frames - image).sum(axis=(1, 2, 3)))) for image in example["image"]
  ]
  assert len(set(chosen)) == config.personalized.frames_per_user
  assert chosen == sorted(chosen)
  np.testing.assert_array_equal(dataset[5]["image"], example["image"])  # deterministic
  assert example["face_mask"].dtype == bool and example["landmarks"].shape[1:] == (68, 2)
  held_out = personalized.create_dataset(config, "eval")
  train_codes = {tuple(np.asarray(s["identity"]).round(5)) for s in sequences}
  assert not {tuple(np.asarray(s["identity"]).round(5)) for s in held_out} & train_codes


def test_the_truth_is_the_persons_own_rig_centred_like_the_renders(smoke):
  config, _, _ = smoke
  model = load_model("procedural")
  example = personalized.create_dataset(config, "eval")[0]
  truth = evaluation.Truth(model, example, 1.0)
  rig = personal.personal_rig(model, np.asarray(example["identity"]))
  centre = np.asarray(model.vertices).mean(0)
  for frame, weights in enumerate(np.asarray(example["expression"])):
    direct = personal.personal_shape(model, rig, example["identity"], weights) - centre
    np.testing.assert_allclose(truth.meshes(weights[None])[0], direct, atol=1e-4)
    del frame
  generic = evaluation.Truth(model, example, 0.0)
  assert evaluation._generic_floor(model, generic) == pytest.approx((0.0, 0.0), abs=1e-4)
  residual, floor = evaluation._generic_floor(model, truth)
  assert 0.0 < residual < 1.0 and floor > 0.0


def test_evaluation_frames_are_evenly_spaced():
  np.testing.assert_array_equal(evaluation.model_frame_ids(8, 4), [0, 2, 5, 7])
  np.testing.assert_array_equal(evaluation.model_frame_ids(3, 4), [0, 1, 2])


def test_the_blendshape_picture_shows_generic_learnt_and_true_blendshapes(smoke, state):
  config, _, _ = smoke
  example = personalized.create_dataset(config, "eval")[0]
  truth = evaluation.Truth(load_model("procedural"), example, 1.0)
  rng = np.random.default_rng(0)
  corrections = 0.01 * rng.normal(size=state.arrays.expression_basis.shape)
  person = evaluation.rig.Person(
    identity=jnp.zeros(state.arrays.identity_basis.shape[0]),
    neutral_correction=jnp.zeros_like(state.arrays.mean),
    blendshape_corrections=jnp.asarray(corrections, jnp.float32),
    albedo=state.arrays.albedo_mean,
    dynamic_albedo=jnp.zeros((1, 1, 1, 3)),
  )
  meshes = evaluation.blendshape_meshes(state, person, truth)
  count = evaluation.SUMMARY_BLENDSHAPES
  assert meshes.shape == (3 * count, *state.arrays.mean.shape)
  basis = np.asarray(state.arrays.expression_basis)
  moving = np.linalg.norm(basis, axis=-1).mean(-1)
  chosen = np.argsort(-moving)[:count]
  assert moving[chosen].min() >= np.delete(moving, chosen).max()  # the most moving ones
  mean = np.asarray(state.arrays.mean)
  np.testing.assert_allclose(meshes[:count], mean + basis[chosen], atol=1e-5)
  np.testing.assert_allclose(
    meshes[count : 2 * count] - meshes[:count],
    np.asarray(person.blendshape_corrections)[chosen], atol=1e-5,
  )  # fmt: skip
  truth_rows = truth.neutral + basis[chosen] + truth.rig.shape_corrections[chosen]
  np.testing.assert_allclose(meshes[2 * count :], truth_rows, atol=1e-5)
  assert evaluation.blendshape_meshes(state, person, None).shape[0] == 2 * count


def test_correction_motion_tells_an_identity_offset_from_an_expression():
  corrections = np.zeros((2, 3, 3))
  corrections[0, :, 0] = 1.0  # blendshape 0's correction moves every vertex 1 along x
  steady = np.array([[0.5, 0.0], [0.5, 0.0]])  # the same weight in both frames
  moved, static = evaluation._correction_motion(steady, corrections)
  assert moved == pytest.approx(0.5) and static == pytest.approx(1.0)
  alternating = np.array([[1.0, 0.0], [0.0, 0.0]])  # on, then off: mean 0.5 of rms sqrt(0.5)
  moved, static = evaluation._correction_motion(alternating, corrections)
  assert moved == pytest.approx(0.5) and static == pytest.approx(0.25 / 0.5)
  assert evaluation._correction_motion(steady, np.zeros_like(corrections)) == (0.0, 0.0)


def test_weight_correlation_tells_a_tracker_that_reads_expressions_from_one_that_does_not():
  rng = np.random.default_rng(0)
  true = rng.uniform(size=(400, 3))
  true[:, 2] = 0.25  # never changes: left out
  assert evaluation.weight_correlation(0.5 * true + 0.1, true) == pytest.approx(1.0)
  assert evaluation.weight_correlation(-true, true) == pytest.approx(-1.0)
  unrelated = evaluation.weight_correlation(rng.uniform(size=(400, 3)), true)
  assert abs(unrelated) < 0.15  # two independent columns of 400 samples: |r| ~ 0.05
  assert evaluation.weight_correlation(np.full((400, 3), 0.2), true) == 0.0
  one = true.copy()
  one[:, 1] = rng.uniform(size=400)  # the second blendshape is read wrongly
  assert evaluation.weight_correlation(one, true) == pytest.approx(
    (1.0 + np.corrcoef(one[:, 1], true[:, 1])[0, 1]) / 2
  )
  with pytest.raises(ValueError, match=r"\(N, Ke\)"):
    evaluation.weight_correlation(true[:, :2], true)
