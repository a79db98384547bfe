"""The decoupled GAN's step on the smoke config: inputs, losses, variants, retracing."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import decoupled_gan as gan_config
from jaxface.errors import ConfigError
from jaxface.methods.decoupled_gan import method, paper_metrics
from jaxface.methods.decoupled_gan.data import create_dataset, identity_specific_energy
from jaxface.training.pipeline import InputPipeline
from tests.helpers import smoke_setup


@pytest.fixture(scope="module")
def smoke(make_config):
  return smoke_setup(method, make_config())


def _state(config, pipeline, seed=0):
  return method.create_state(config, jax.random.PRNGKey(seed), pipeline.dataset)


def _step(config):
  """The method's one stage step, bound and jitted as the trainer does."""
  (stage,) = method.stages(config)
  return jax.jit(functools.partial(stage.step, config=config, stage=stage))


def _brute_force_geometry_image(vertices, triangles, uv, triangle_uv, size):
  """Pixel centres located in UV triangles one by one; barycentric interpolation of 3D vertices."""
  image = np.zeros((size, size, 3))
  corners_uv = uv[triangle_uv]  # (F, 3, 2)
  for row in range(size):
    for col in range(size):
      point = np.array([(col + 0.5) / size, 1.0 - (row + 0.5) / size])  # row 0 is v near 1
      a, b, c = corners_uv[:, 0], corners_uv[:, 1], corners_uv[:, 2]
      det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
      w1 = (point[0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (point[1] - a[:, 1])
      w2 = (b[:, 0] - a[:, 0]) * (point[1] - a[:, 1]) - (point[0] - a[:, 0]) * (b[:, 1] - a[:, 1])
      w1, w2 = w1 / det, w2 / det
      inside = (w1 >= -1e-9) & (w2 >= -1e-9) & (w1 + w2 <= 1 + 1e-9)
      if not inside.any():
        continue
      face = np.flatnonzero(inside)[0]
      weights = np.array([1 - w1[face] - w2[face], w1[face], w2[face]])
      image[row, col] = weights @ vertices[triangles[face]]
  return image


def test_discriminator_sees_exactly_the_geometry_images_of_real_meshes(smoke):
  config, dataset, pipeline = smoke
  state = _state(config, pipeline)
  real = pipeline.batch(0)["vertices"][:2]  # (2, V, 3) mm
  images = np.asarray(method.discriminator_images(state.constants, jnp.asarray(real)))
  size = config.gan.image_size
  assert images.shape == (2, size, size, 3)
  template = _brute_force_geometry_image(
    dataset.template, dataset.triangles, dataset.uv, dataset.triangle_uv, size
  )
  for mesh, image in zip(real, images, strict=True):
    expected = _brute_force_geometry_image(
      mesh, dataset.triangles, dataset.uv, dataset.triangle_uv, size
    )
    scale = float(state.constants.image_scale)  # the displacement spread, mm
    np.testing.assert_allclose(image * scale, expected - template, atol=2e-3)  # mm, float32
  displacements = np.stack([dataset[i]["vertices"] for i in range(len(dataset))]) - dataset.template
  np.testing.assert_allclose(scale, np.sqrt(np.mean(displacements**2)), rtol=0.1)
  # Without instance noise the critic's input is exactly that image.
  quiet = ml_collections.ConfigDict(config.to_dict())
  quiet.gan.instance_noise = 0.0
  critic_input = method._critic_input(jax.random.PRNGKey(0), state, jnp.asarray(real), quiet)
  np.testing.assert_array_equal(np.asarray(critic_input), images)


def _expected_generator_loss(metrics, gan):
  classes = sum(metrics[f"g_class_{f}"] for f in gan.classify)
  features = sum(metrics[f"g_feature_{f}"] for f in gan.classify)
  return (
    gan.lambda_gan * metrics["g_gan"]
    + gan.lambda_class * classes
    + gan.lambda_feat * features
    + gan.lambda_laplacian * metrics["g_laplacian"]
  )


@pytest.mark.parametrize("ablation", ["none", "no_mesh_reg", "id_class_only", "no_feat_loss"])
def test_each_loss_term_is_finite_and_switched_by_its_variant(smoke, make_config, ablation):
  config = ml_collections.FrozenConfigDict(make_config(f"smoke,ablation={ablation}"))
  _, _, pipeline = smoke
  state = _state(config, pipeline)
  step = _step(config)
  seen = {}
  for index in range(2):  # both labelled factors of the identity/expression alternation
    state, metrics = step(state, pipeline.batch(index))
    metrics = {k: float(v) for k, v in metrics.items()}
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    np.testing.assert_allclose(
      metrics["g_loss"], _expected_generator_loss(metrics, config.gan), rtol=1e-4
    )
    seen.update({k: seen.get(k, 0.0) + abs(v) for k, v in metrics.items()})
  gan = config.gan
  assert gan.lambda_laplacian == (0.0 if ablation == "no_mesh_reg" else 100.0)
  assert gan.lambda_feat == (0.0 if ablation == "no_feat_loss" else 0.5)
  if ablation == "id_class_only":
    assert gan.classify == ("identity",)
    assert not any("expression" in key for key in seen)
    assert not any(name.startswith("expression") for name in state.discriminator)
  else:
    assert gan.classify == ("identity", "expression")
    assert {"expression_0", "expression_out"} <= set(state.discriminator)
    # Over the two steps every classification and feature term was active once.
    for factor in gan.classify:
      assert seen[f"g_class_{factor}"] > 0 and seen[f"g_feature_{factor}"] > 0
      assert seen[f"d_class_{factor}"] > 0
  assert seen["g_laplacian"] > 0 and seen["d_gradient_penalty"] > 0


def test_generator_batch_alternates_labelled_and_paired_codes(smoke):
  config, _, pipeline = smoke
  state = _state(config, pipeline)
  for step, labelled in [(0, "identity"), (1, "expression")]:
    current = state.replace(step=jnp.asarray(step))
    codes, labels, pairs, slot = method._generator_batch(jax.random.PRNGKey(3), current, 8, config)
    other = "expression" if labelled == "identity" else "identity"
    assert int(slot) == config.gan.classify.index(labelled)
    fixed = np.asarray(state.constants.fixed_codes[slot])
    np.testing.assert_array_equal(np.asarray(codes[labelled]), fixed[np.asarray(labels[labelled])])
    assert (np.asarray(labels[other]) == -1).all()
    paired = np.asarray(codes[other])
    rows = np.asarray(pairs[other])
    np.testing.assert_array_equal(paired[rows[:, 0]], paired[rows[:, 1]])
    assert len(np.unique(paired, axis=0)) == 4  # four pairs, four distinct shared codes
    assert sorted(rows.ravel()) == list(range(8))


def test_laplacian_energy_falls_when_lambda4_is_on(smoke, make_config):
  _, _, pipeline = smoke
  energies = {}
  for ablation in ["none", "no_mesh_reg"]:
    # Start from per-vertex noise (not the default template start) and take
    # larger steps than the paper's, so the trend shows in a few steps.
    config = make_config(
      f"smoke,ablation={ablation}", **{"gan.learning_rate": 2e-3, "gan.output_init": "lecun_normal"}
    )
    config = ml_collections.FrozenConfigDict(config)
    state = _state(config, pipeline)
    step = _step(config)
    trace = []
    for index in range(16):
      state, metrics = step(state, pipeline.batch(index))
      trace.append(float(metrics["g_laplacian"]))
    energies[ablation] = trace
  # Means over both labelled factors of the identity/expression alternation.
  start, end = np.mean(energies["none"][:2]), np.mean(energies["none"][-4:])
  assert end < 0.65 * start, energies
  assert end < 0.5 * np.mean(energies["no_mesh_reg"][-4:]), energies


def test_train_step_traces_once_across_labelled_factors(smoke):
  config, _, pipeline = smoke
  state = _state(config, pipeline)
  (stage,) = method.stages(config)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(state, batch):
    return method.train_step(state, batch, config=config, stage=stage)

  for index in range(3):
    state, _ = step(state, pipeline.batch(index))
  assert int(state.step) == 3


def test_patch_convolutions_give_the_lax_convolutions_step(smoke, make_config):
  """The fast critic (`PatchConv`) against flax's nn.Conv, the implementation it replaced: the
  same parameters, and two iterations on fixed batches give the same losses."""
  config, _, pipeline = smoke
  assert config.gan.convolution == "patches"
  reference_config = make_config(**{"gan.convolution": "lax"})
  state = _state(config, pipeline)
  reference_state = _state(reference_config, pipeline)
  chex.assert_trees_all_equal(state.discriminator, reference_state.discriminator)
  step, reference_step = _step(config), _step(reference_config)
  for index in range(2):  # the second iteration starts from the first one's updates
    state, metrics = step(state, pipeline.batch(index))
    reference_state, reference_metrics = reference_step(reference_state, pipeline.batch(index))
    for name in reference_metrics:
      np.testing.assert_allclose(
        metrics[name], reference_metrics[name], rtol=1e-4, atol=1e-5, err_msg=name
      )
  # Adam's first steps move every weight by about the learning rate whatever its gradient's
  # size, so weights with a near-zero gradient may differ by a fraction of it.
  tolerance = 0.25 * config.gan.learning_rate
  chex.assert_trees_all_close(
    state.discriminator, reference_state.discriminator, atol=tolerance, rtol=0
  )


@pytest.mark.parametrize(
  ("field", "value", "match"),
  [
    ("gan.classify", ("identity", "mood"), r"config\.gan\.classify names \['mood'\]"),
    ("gan.factor_dims", (65,), r"config\.gan\.factor_dims"),
    ("gan.output_init", "ones", r"config\.gan\.output_init"),
    ("gan.convolution", "fft", r"config\.gan\.convolution"),
    ("gan.d_steps", 5, r"config\.batch_size=24 must be a multiple of config\.gan\.d_steps=5"),
    ("batch_size", 15, "must be even"),
  ],
)
def test_config_errors_name_the_field(make_config, field, value, match):
  with pytest.raises(ConfigError, match=match):
    method.stages(make_config(**{field: value}))


def test_configs_saved_before_the_convolution_and_step_fields_still_load(smoke, make_config):
  """A run's config.json from before `gan.convolution` and per-factor evaluator steps."""
  config, _, pipeline = smoke
  old = make_config()
  del old.gan["convolution"]
  del old.evaluation["embedder_steps"]
  old.evaluation.embedder_steps = 20
  method.stages(old)
  state = _state(old, pipeline)
  chex.assert_trees_all_equal(state.discriminator, _state(config, pipeline).discriminator)
  assert paper_metrics.embedder_steps(old, "expression") == 20
  assert paper_metrics.embedder_steps(config, "expression") == 20
  with pytest.raises(ConfigError, match="embedder_steps has no entry for the factor 'viseme'"):
    paper_metrics.embedder_steps(config, "viseme")


def test_config_variants_are_checked():
  with pytest.raises(ConfigError, match="unknown variant"):
    gan_config.get_config("huge")
  with pytest.raises(ConfigError, match="unknown ablation"):
    gan_config.get_config("smoke,ablation=no_gan")


def test_factors_are_data_the_viseme_model_is_a_config(make_config):
  config = ml_collections.FrozenConfigDict(make_config("smoke,visemes=true"))
  assert tuple(config.gan.factors) == ("identity", "expression", "viseme")
  dataset = method.create_dataset(config, "train")
  assert dataset.num_classes["viseme"] == 8 and (dataset.labels["viseme"] >= 0).mean() > 0.5
  pipeline = InputPipeline(dataset, config.batch_size, 0, None, 0)
  state = method.create_state(config, jax.random.PRNGKey(0), dataset)
  assert method.code_dims(config) == {"identity": 50, "expression": 50, "viseme": 50, "noise": 5}
  assert {"viseme_0", "viseme_out"} <= set(state.discriminator)
  step = _step(config)
  labelled = []
  for index in range(3):  # the labelled factor cycles through the three classifiers
    _codes, labels, _, _ = method._generator_batch(jax.random.PRNGKey(index), state, 8, config)
    labelled.append([f for f in config.gan.classify if (np.asarray(labels[f]) >= 0).all()])
    state, metrics = step(state, pipeline.batch(index))
    assert all(np.isfinite(float(v)) for v in metrics.values())
  assert labelled == [["identity"], ["expression"], ["viseme"]]


def test_evaluators_are_validated_on_identities_never_trained_on(make_config):
  config = make_config("smoke")
  train, unseen = create_dataset(config, "train"), create_dataset(config, "unseen")
  assert len(unseen) == config.evaluation.unseen_meshes and unseen.name.endswith("/unseen")
  codes = lambda d: np.unique(d.read(fields=("identity",))["identity"], axis=0)
  seen, new = codes(train), codes(unseen)
  distances = np.linalg.norm(seen[:, None] - new[None], axis=-1)
  assert distances.min() > 1.0  # no unseen identity is a training identity
  # The evaluators learn true classes: every mesh's expression, hidden labels included.
  assert (train.labels["expression"] == -1).any() and (train.true_labels["expression"] >= 0).all()
  known = train.labels["expression"] >= 0
  np.testing.assert_array_equal(
    train.true_labels["expression"][known], train.labels["expression"][known]
  )


def test_runs_of_every_seed_share_the_evaluators(make_config, tmp_path):
  """An evaluator belongs to the dataset: a run's seed changes neither its weights nor its
  threshold, so the rows of a table over seeds are scored by one instrument."""
  verifications = {}
  for seed in (0, 1):
    config = make_config(
      "smoke",
      seed=seed,
      **{"evaluation.embedder_dir": str(tmp_path), "evaluation.embedder_steps.identity": 3},
    )
    config.gan.factors = ("identity",)
    train, unseen = create_dataset(config, "train"), create_dataset(config, "unseen")
    evaluators = paper_metrics.decoupling_evaluators(config, train, unseen, progress=False)
    verifications[seed] = evaluators["identity"].verification
  assert len(list(tmp_path.glob("*/identity-3-steps.npz"))) == 1  # trained once, then reused
  assert verifications[0] == verifications[1]


def test_the_personal_data_hold_expression_energy_no_separable_model_has(make_config):
  personal = make_config("smoke")
  separable = make_config("smoke,data=separable")
  assert personal.data.personal_strength == 1.0 and separable.data.personal_strength == 0.0
  personal_share = identity_specific_energy(create_dataset(personal, "train"), 1.0, count=32)
  separable_share = identity_specific_energy(create_dataset(separable, "train"), 0.0, count=32)
  assert personal_share > 1.0 and separable_share < 1e-6
  with pytest.raises(ConfigError, match="unknown data"):
    make_config("smoke,data=scans")
