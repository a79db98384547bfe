"""Normal images, triplet embedders, the verification threshold and the decoupling score."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxface.metrics import decoupling
from jaxface.metrics.shape import ShapeGenerator
from tests.metrics.conftest import NUM_EXPRESSION, NUM_IDENTITY


def grid_plane(size: int = 6, extent: float = 1.0, flip: bool = False):
  """A flat square in the z = 0 plane over [-extent, extent]^2, counter-clockwise from +z."""
  xs = np.linspace(-extent, extent, size)
  x, y = np.meshgrid(xs, xs, indexing="xy")
  vertices = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=-1).astype(np.float32)
  triangles = []
  for r, c in itertools.product(range(size - 1), range(size - 1)):
    a, b, d, e = r * size + c, r * size + c + 1, (r + 1) * size + c, (r + 1) * size + c + 1
    triangles += [(a, b, e), (a, e, d)]  # counter-clockwise seen from +z (x right, y up)
  triangles = np.array(triangles, np.int32)
  return vertices, triangles[:, ::-1] if flip else triangles


def test_plane_renders_to_its_normal_colour():
  vertices, triangles = grid_plane()
  images = decoupling.normal_images(
    np.stack([vertices, vertices]), triangles, image_size=16, centre=(0.0, 0.0), half_extent=2.0
  )
  assert images.shape == (2, 16, 16, 3) and images.dtype == np.float32
  inside = np.zeros((16, 16), bool)
  inside[4:12, 4:12] = True  # the square covers the central half of the image
  np.testing.assert_allclose(
    images[:, inside], np.broadcast_to([0.5, 0.5, 1.0], (2, 64, 3)), atol=1e-5
  )
  np.testing.assert_array_equal(images[:, ~inside], 0.0)
  # The other winding faces away from the camera: its normal is -z.
  _, flipped = grid_plane(flip=True)
  back = decoupling.normal_images(vertices[None], flipped, 16, centre=(0.0, 0.0), half_extent=2.0)
  np.testing.assert_allclose(back[0, inside], np.broadcast_to([0.5, 0.5, 0.0], (64, 3)), atol=1e-5)


def test_image_orientation_and_frame():
  vertices, triangles = grid_plane()
  upper_right = vertices + np.array([1.0, 1.0, 0.0], np.float32)  # x, y in [0, 2]
  image = decoupling.normal_images(upper_right[None], triangles, 8, centre=(0, 0), half_extent=2)[0]
  mask = image.sum(-1) > 0
  assert mask[:4, 4:].all() and not mask[4:].any() and not mask[:, :4].any()  # y up, x right
  # The default frame is the data's bounding box with a 10% margin.
  centre, half = decoupling.image_frame(upper_right[None])
  np.testing.assert_allclose(centre, [1.0, 1.0])
  np.testing.assert_allclose(half, 1.1)
  with pytest.raises(ValueError, match="vertices must have shape"):
    decoupling.normal_images(vertices, triangles)


def test_procedural_face_is_seen_from_the_front(procedural):
  vertices = 10 * np.asarray(procedural.vertices)[None]  # mm
  image = decoupling.normal_images(vertices, procedural.triangles, image_size=32)[0]
  mask = image.sum(-1) > 0
  assert 0.3 < mask.mean() < 0.9
  # Front-facing surface: the blue (z) channel encodes n_z > 0 almost everywhere.
  assert np.mean(image[mask, 2] > 0.5) > 0.95
  # Left/right symmetric face: the red (x) channel is mirrored around 0.5.
  np.testing.assert_allclose(image[..., 0].mean(), 0.5 * mask.mean(), atol=0.02)


def test_batch_hard_triplet_loss_matches_brute_force():
  rng = np.random.default_rng(0)
  embeddings = rng.normal(size=(9, 4)).astype(np.float32)
  labels = np.array([0, 0, 1, 1, 1, 2, -1, 2, 3])
  expected = []
  for a in range(9):
    if labels[a] < 0:
      continue
    pos = [p for p in range(9) if p != a and labels[p] == labels[a]]
    neg = [n for n in range(9) if labels[n] >= 0 and labels[n] != labels[a]]
    if not pos:
      continue
    d = np.linalg.norm(embeddings - embeddings[a], axis=-1)
    expected.append(max(0.0, d[pos].max() - d[neg].min() + 0.3))
  loss = decoupling.batch_hard_triplet_loss(embeddings, labels, margin=0.3)
  np.testing.assert_allclose(loss, np.mean(expected), rtol=1e-5)


def test_semi_hard_triplet_loss_matches_brute_force():
  rng = np.random.default_rng(0)
  embeddings = rng.normal(size=(10, 4)).astype(np.float32)
  labels = np.array([0, 0, 1, 1, 1, 2, -1, 2, 3, 0])
  expected = []
  for a, p in itertools.permutations(range(10), 2):
    if labels[a] < 0 or labels[a] != labels[p]:
      continue
    d = np.linalg.norm(embeddings - embeddings[a], axis=-1)
    negatives = [n for n in range(10) if labels[n] >= 0 and labels[n] != labels[a]]
    farther = [d[n] for n in negatives if d[n] > d[p]]
    chosen = min(farther) if farther else max(d[n] for n in negatives)
    expected.append(max(0.0, d[p] - chosen + 0.3))
  loss = decoupling.semi_hard_triplet_loss(embeddings, labels, margin=0.3)
  np.testing.assert_allclose(loss, np.mean(expected), rtol=1e-5)
  # Some anchors have no semi-hard negative here, so both branches are exercised.
  assert 0 < np.mean(np.array(expected) > 0.3) < 1


def test_a_collapsed_evaluator_is_recognised():
  labels = np.repeat(np.arange(6), 8)
  rng = np.random.default_rng(3)
  spread = np.eye(6)[labels] + 0.05 * rng.normal(size=(48, 6))
  good = decoupling.choose_threshold(spread, labels, 500, rng=0)
  assert not good.collapsed and good.problems(0.95, 0.05) == []
  # Half the classes land on one point: their pairs pass at threshold 0+, and so do the
  # different-label pairs among them, which is how a collapsed evaluator reports FAR > 0.
  collapsed = spread.copy()
  collapsed[labels < 3] = 0.0
  bad = decoupling.choose_threshold(collapsed, labels, 2000, rng=0)
  assert bad.identical_negatives > 0.05 and bad.collapsed
  problems = bad.problems(0.95, 0.05)
  assert problems and problems[0].startswith("collapsed")


def test_choose_threshold_separable_1d():
  # Class k sits at 10 k with spread 0.2: positives < 0.2 apart, negatives > 9.
  labels = np.repeat(np.arange(4), 5)
  embeddings = (10.0 * labels + np.tile(np.linspace(0, 0.2, 5), 4))[:, None]
  threshold, accuracy, far, pass_rate, identical = decoupling.choose_threshold(
    embeddings, labels, 500, 0.1, rng=0
  )
  assert accuracy == 1.0 and far == 0.0 and pass_rate == 1.0 and identical == 0.0
  # The midpoint between the largest positive (0.2) and the smallest negative (9.8) distance.
  np.testing.assert_allclose(threshold, (0.2 + 9.8) / 2, rtol=1e-6)
  # Unlabelled items are ignored even when they would be confusers.
  noisy = np.concatenate([embeddings, [[0.1], [10.1]]])
  assert decoupling.choose_threshold(noisy, np.append(labels, [-1, -1]), 500, rng=0)[1] == 1.0


def exhaustive_rates(embeddings, labels, threshold):
  pos, neg = [], []
  for a, b in itertools.combinations(range(len(labels)), 2):
    d = abs(embeddings[a, 0] - embeddings[b, 0])
    (pos if labels[a] == labels[b] else neg).append(d)
  pos, neg = np.array(pos), np.array(neg)
  return np.mean(pos < threshold), np.mean(neg < threshold), pos, neg


def test_choose_threshold_respects_the_far_bound():
  # Overlapping classes: class k uniform on [k, k + 3]; the best accuracy
  # without a bound accepts more than 10% of the negatives.
  rng = np.random.default_rng(1)
  labels = np.repeat(np.arange(10), 10)
  embeddings = (labels + 3 * rng.uniform(size=100))[:, None]
  _, _, pos, neg = exhaustive_rates(embeddings, labels, 0.0)
  grid = np.linspace(0, 3, 3001)
  tpr = np.array([np.mean(pos < t) for t in grid])
  far = np.array([np.mean(neg < t) for t in grid])
  accuracy = (tpr + 1 - far) / 2
  bounded = np.where(far < 0.1, accuracy, -1)
  assert far[np.argmax(accuracy)] > 0.15  # the bound matters here
  threshold, acc, found_far, pass_rate, _ = decoupling.choose_threshold(
    embeddings, labels, 20_000, 0.1, rng=2
  )
  assert found_far < 0.1
  np.testing.assert_allclose(acc, (pass_rate + 1 - found_far) / 2)
  true_tpr, true_far, _, _ = exhaustive_rates(embeddings, labels, threshold)
  assert true_far < 0.11
  np.testing.assert_allclose(acc, bounded.max(), atol=0.015)
  np.testing.assert_allclose((true_tpr + 1 - true_far) / 2, bounded.max(), atol=0.015)
  loose = decoupling.choose_threshold(embeddings, labels, 20_000, 1.0, rng=2)
  assert loose[1] > acc + 0.02 and loose[2] > 0.15


def test_decoupling_score_with_oracle_embeddings(linear_parts):
  oracle = linear_parts.expression_oracle
  kwargs = dict(num_bases=6, samples_per_base=10, rng=3, meshes_per_call=30)
  # Expression never changes: every pair sharing the expression code looks "same".
  still = linear_parts.generator("no_expression")
  assert decoupling.decoupling_score(still, "expression", oracle, 0.5, **kwargs) == 100.0
  # Expression follows its own code: still 100%, the oracle recovers the shared code.
  linear = linear_parts.generator("linear")
  assert decoupling.decoupling_score(linear, "expression", oracle, 0.5, **kwargs) == 100.0
  # Expression driven by the noise code: sharing the expression code does not fix it.
  entangled = linear_parts.generator("entangled")
  score = decoupling.decoupling_score(entangled, "expression", oracle, 0.5, **kwargs)
  assert score < 10.0
  # Identity decoupling with an oracle identity embedding (the identity coefficients).
  identity_oracle = lambda v: np.linalg.lstsq(
    np.concatenate([linear_parts.identity, linear_parts.expression]).reshape(14, -1).T,
    (v - linear_parts.mean).reshape(len(v), -1).T,
    rcond=None,
  )[0].T[:, :NUM_IDENTITY]
  assert decoupling.decoupling_score(entangled, "identity", identity_oracle, 0.5, **kwargs) == 100.0
  with pytest.raises(ValueError, match="factor must be one of"):
    decoupling.decoupling_score(linear, "pose", oracle, 0.5, **kwargs)


def test_decoupling_score_counts_pairs_below_threshold(linear_parts):
  # Embedding = first expression coefficient of the linear generator. Pairs
  # share the identity code, so "same" happens when |e_base - e_sample| < tau
  # with both ~ N(0, 1): P(|N(0, 2)| < 0.5) = 0.276.
  linear = linear_parts.generator("linear")
  embed = lambda v: linear_parts.expression_oracle(v)[:, :1]
  score = decoupling.decoupling_score(
    linear, "identity", embed, 0.5, num_bases=20, samples_per_base=50, rng=4
  )
  assert abs(score - 27.6) < 6.0


def identity_meshes(linear_parts, per_class: int, seed: int):
  """Meshes of 3 very different identities with random mild expressions, mm."""
  rng = np.random.default_rng(seed)
  identities = np.zeros((3, NUM_IDENTITY))
  identities[0, 0], identities[1, 1], identities[2, :2] = 3.0, -3.0, (-2.0, 2.5)
  labels = np.repeat(np.arange(3), per_class)
  expressions = 0.7 * rng.standard_normal((len(labels), NUM_EXPRESSION))
  return linear_parts.shape(identities[labels], expressions).astype(np.float32), labels


def test_train_embedder_separates_identities(linear_parts, tmp_path):
  train, train_labels = identity_meshes(linear_parts, 16, seed=5)
  valid, valid_labels = identity_meshes(linear_parts, 8, seed=6)
  centre, half = decoupling.image_frame(train)
  render = lambda v: decoupling.normal_images(v, linear_parts.triangles, 32, centre, half)
  train_images = render(train)
  embedder = decoupling.train_embedder(
    train_images,
    train_labels,
    num_steps=150,
    batch_size=24,
    learning_rate=2e-3,
    embedding_dim=16,
    width=0.125,
    rng=jax.random.PRNGKey(0),
  )
  embeddings = embedder.embed(render(valid))
  assert embeddings.shape == (24, 16)
  np.testing.assert_allclose(np.linalg.norm(embeddings, axis=-1), 1.0, rtol=1e-5)
  verification = decoupling.choose_threshold(embeddings, valid_labels, 1000, rng=0)
  assert verification.accuracy > 0.9 and verification.far < 0.1
  assert not verification.collapsed and verification.pass_rate > 0.8
  path = embedder.save(tmp_path / "identity.npz")
  loaded = decoupling.Embedder.load(path)
  assert loaded.config == embedder.config
  np.testing.assert_array_equal(loaded.embed(render(valid)), embeddings)
  # The mesh-level helper composes rendering and embedding.
  embed_fn = decoupling.mesh_embedding(loaded, linear_parts.triangles, None, centre, half)
  np.testing.assert_allclose(embed_fn(valid), embeddings, atol=1e-6)


def test_train_embedder_validates():
  with pytest.raises(ValueError, match="labels must have shape"):
    decoupling.train_embedder(np.zeros((4, 8, 8, 3)), np.zeros(3, int), num_steps=1)
  with pytest.raises(ValueError, match="at least 2 classes"):
    decoupling.train_embedder(np.zeros((4, 8, 8, 3)), np.array([0, 0, 1, -1]), num_steps=1)


def test_trained_evaluator_scores_decoupled_high_and_entangled_low(procedural):
  """The whole protocol on hand-made models with a known answer: an identity evaluator trained
  on labelled meshes and thresholded on unseen identities scores a model decoupled by
  construction high, and one whose expression code also moves the identity low."""
  mean = 10 * np.asarray(procedural.vertices, np.float32)
  identity_modes = 40 * np.asarray(procedural.identity_basis[:2], np.float32)  # (2, V, 3) mm
  expression_modes = 30 * np.asarray(procedural.expression_basis[:4], np.float32)  # (4, V, 3)
  triangles = np.asarray(procedural.triangles)

  def meshes(num_identities: int, seed: int):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_identities), 6)
    identity = rng.standard_normal((num_identities, 2))[labels]
    expression = rng.standard_normal((len(labels), 4))
    vertices = (
      mean
      + np.einsum("nk,kvd->nvd", identity, identity_modes)
      + np.einsum("nk,kvd->nvd", expression, expression_modes)
    )
    return vertices.astype(np.float32), labels

  train, train_labels = meshes(48, seed=1)
  unseen, unseen_labels = meshes(24, seed=2)  # identities the evaluator never saw
  frame = decoupling.image_frame(train)
  render = lambda v: decoupling.normal_images(v, triangles, 32, *frame)
  embedder = decoupling.train_embedder(
    render(train), train_labels, num_steps=200, batch_size=32, learning_rate=2e-3,
    embedding_dim=16, width=0.125, rng=jax.random.PRNGKey(0),
  )  # fmt: skip
  verification = decoupling.choose_threshold(
    embedder.embed(render(unseen)), unseen_labels, 2000, 0.1, rng=0
  )
  assert not verification.collapsed and verification.accuracy > 0.85, verification
  embed = decoupling.mesh_embedding(embedder, triangles, 32, *frame)

  def generator(entangled: bool) -> ShapeGenerator:
    def decode(codes):
      identity = codes["identity"] + (codes["expression"][:, :2] if entangled else 0.0)
      return (
        jnp.asarray(mean)
        + jnp.einsum("nk,kvd->nvd", identity, jnp.asarray(identity_modes))
        + jnp.einsum("nk,kvd->nvd", codes["expression"], jnp.asarray(expression_modes))
      )

    return ShapeGenerator({"identity": 2, "expression": 4}, decode, triangles)

  kwargs = dict(num_bases=10, samples_per_base=20, rng=3)
  decoupled = decoupling.decoupling_score(
    generator(False), "identity", embed, verification.threshold, **kwargs
  )
  entangled = decoupling.decoupling_score(
    generator(True), "identity", embed, verification.threshold, **kwargs
  )
  assert decoupled > 80.0 and entangled < 40.0, (decoupled, entangled)
