"""The decoupling metric of generative face models (paper sec. 5.3, after [11]).

One embedding network per factor (identity, expression) maps an image of a
mesh to a 128-d unit vector, trained with a triplet loss on the data set's
labels; two meshes "share" the factor when their embeddings are closer than
a threshold tau chosen on a validation split (best accuracy with a false
acceptance rate below 10%). A model's decoupling score for a factor is the
percentage of pairs (x_i, y), y generated with x_i's code of that factor and
every other code resampled, that the embedder classifies as "same".

The image of a mesh (supplement, sec. "Decoupling"): a frontal orthographic
projection whose RGB encodes the unit normal, (n + 1) / 2, black background.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm
from flax import traverse_util

from jaxface.geometry.mesh import safe_normalize, vertex_normals
from jaxface.metrics.shape import ShapeGenerator, _numpy_seed, _resolve_rng, sample_pairs
from jaxface.nets.resnet import ResNet18, host_init
from jaxface.render.interpolate import interpolate
from jaxface.render.rasterize import rasterize

# ---------------------------------------------------------------------------
# Normal images


def image_frame(vertices: np.ndarray, margin: float = 1.1) -> tuple[np.ndarray, float]:
  """Camera framing of a set of meshes: x/y centre (2,) and half-extent, in mesh units.

  The x/y bounding box of the mean of the (N, V, 3) meshes, enlarged by
  `margin`: the centre is the box's centre and the half-extent is `margin`
  times the larger half side (square images). Compute it once on the
  training data and pass it to `normal_images` so every mesh, training or
  generated, is framed identically.
  """
  vertices = np.asarray(vertices)
  if vertices.ndim == 2:
    vertices = vertices[None]
  if vertices.ndim != 3 or vertices.shape[-1] != 3 or len(vertices) == 0:
    raise ValueError(f"vertices must have shape (N, V, 3) with N > 0, got {vertices.shape}")
  mean = np.mean(vertices, axis=0, dtype=np.float64)  # (V, 3)
  low, high = mean[:, :2].min(axis=0), mean[:, :2].max(axis=0)
  centre = (low + high) / 2
  half_extent = margin * float(np.max(high - low)) / 2
  return centre.astype(np.float32), half_extent


def _chunk_size(n: int, batch_size: int) -> int:
  """Chunk for n items: `batch_size`, or the next power of two >= n when smaller.

  Chunks are padded to this size, so calls with different n reuse a few
  compiled shapes instead of compiling one per n.
  """
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  return min(batch_size, 1 << max(0, n - 1).bit_length())


def _render_normals(vertices, triangles, centre, half_extent, image_size):
  """(B, V, 3) -> (B, S, S, 3) normal images; jitted with image_size static."""
  xy = (vertices[..., :2] - centre) / half_extent  # (B, V, 2) NDC
  # The camera sits on +z looking along -z: larger z is nearer (smaller NDC z).
  depth = -(vertices[..., 2:] - jnp.mean(vertices[..., 2:], axis=-2, keepdims=True)) / half_extent
  clip = jnp.concatenate([xy, depth, jnp.ones_like(depth)], axis=-1)  # (B, V, 4)
  fragments = rasterize(clip, triangles, (image_size, image_size))
  normals = vertex_normals(vertices, triangles)  # (B, V, 3)
  image = safe_normalize(interpolate(normals, fragments, triangles))  # (B, S, S, 3)
  return jnp.where(fragments.mask[..., None], (image + 1.0) / 2.0, 0.0)


_render_normals_jit = jax.jit(_render_normals, static_argnames=("image_size",))


def normal_images(
  vertices: np.ndarray,
  triangles: np.ndarray,
  image_size: int = 64,
  centre: np.ndarray | None = None,
  half_extent: float | None = None,
  batch_size: int = 32,
  progress: bool = False,
) -> np.ndarray:
  """Frontal orthographic renders coloured by the unit normal: (N, S, S, 3) float32 in [0, 1].

  The camera looks along -z (the models' faces look towards +z), x to the
  right and y up; pixel colour is (n + 1) / 2 of the interpolated,
  renormalised vertex normal, 0 on the background (a surface facing the
  camera is (0.5, 0.5, 1)).

  Args:
    vertices: (N, V, 3) meshes (any length unit).
    triangles: (F, 3) vertex ids, counter-clockwise seen from outside.
    image_size: S, the square image's side in pixels.
    centre: (2,) world x/y at the image centre.
    half_extent: world length from the centre to the image border.
      `centre` and `half_extent` default to `image_frame(vertices)`, i.e.
      they depend on the meshes of this call: pass them explicitly (from
      the training set) for identical framing across calls.
    batch_size: meshes rasterized per jitted call (the last chunk is padded).
    progress: show a tqdm bar over chunks.
  """
  vertices = np.asarray(vertices, np.float32)
  if vertices.ndim != 3 or vertices.shape[-1] != 3:
    raise ValueError(f"vertices must have shape (N, V, 3), got {vertices.shape}")
  triangles = np.asarray(triangles, np.int32)
  if triangles.ndim != 2 or triangles.shape[-1] != 3:
    raise ValueError(f"triangles must have shape (F, 3), got {triangles.shape}")
  if image_size <= 0:
    raise ValueError(f"image_size must be positive, got {image_size}")
  n = len(vertices)
  if n == 0:
    return np.zeros((0, image_size, image_size, 3), np.float32)
  if centre is None or half_extent is None:
    default_centre, default_half = image_frame(vertices)
    centre = default_centre if centre is None else centre
    half_extent = default_half if half_extent is None else half_extent
  centre = np.asarray(centre, np.float32)
  if centre.shape != (2,):
    raise ValueError(f"centre must have shape (2,), got {centre.shape}")
  if not half_extent > 0:
    raise ValueError(f"half_extent must be positive, got {half_extent}")
  batch_size = _chunk_size(n, batch_size)
  out = np.empty((n, image_size, image_size, 3), np.float32)
  for start in tqdm.trange(0, n, batch_size, disable=not progress, desc="normal images"):
    chunk = vertices[start : start + batch_size]
    count = len(chunk)
    if count < batch_size:
      chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - count, axis=0)])
    images = _render_normals_jit(
      jnp.asarray(chunk), jnp.asarray(triangles), centre, np.float32(half_extent), image_size
    )
    out[start : start + count] = np.asarray(images[:count])
  return out


# ---------------------------------------------------------------------------
# Embedding network


class EmbeddingNet(nn.Module):
  """ResNet-18 (GroupNorm) -> L2-normalised embedding: (N, H, W, 3) in [0, 1] -> (N, D)."""

  embedding_dim: int = 128
  width: float = 1.0

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    features = ResNet18(num_outputs=self.embedding_dim, width=self.width, name="resnet")(
      2.0 * images - 1.0
    )
    return safe_normalize(features)  # (N, D)


@dataclasses.dataclass(frozen=True)
class Embedder:
  """A trained embedding network: parameters plus the configuration to rebuild it.

  Attributes:
    params: Flax parameters of `EmbeddingNet`.
    embedding_dim: D.
    width: ResNet width multiplier.
    image_size: side of the square images it was trained on (informative).
  """

  params: Any
  embedding_dim: int = 128
  width: float = 1.0
  image_size: int = 64

  @property
  def network(self) -> EmbeddingNet:
    return EmbeddingNet(embedding_dim=self.embedding_dim, width=self.width)

  @property
  def config(self) -> dict:
    return {"embedding_dim": self.embedding_dim, "width": self.width, "image_size": self.image_size}

  def embed(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(N, H, W, 3) images in [0, 1] -> (N, D) float32 unit embeddings."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"images must have shape (N, H, W, 3), got {images.shape}")
    n = len(images)
    if n == 0:
      return np.zeros((0, self.embedding_dim), np.float32)
    batch_size = _chunk_size(n, batch_size)
    out = np.empty((n, self.embedding_dim), np.float32)
    for start in range(0, n, batch_size):
      chunk = images[start : start + batch_size]
      count = len(chunk)
      if count < batch_size:
        chunk = np.concatenate(
          [chunk, np.zeros((batch_size - count, *chunk.shape[1:]), np.float32)]
        )
      out[start : start + count] = np.asarray(_apply(self.network, self.params, chunk)[:count])
    return out

  def save(self, path: str | pathlib.Path) -> pathlib.Path:
    """Writes the flattened parameters and the JSON config to one .npz file."""
    path = pathlib.Path(path)
    flat = traverse_util.flatten_dict(jax.device_get(self.params), sep="/")
    arrays = {f"params/{key}": np.asarray(value) for key, value in flat.items()}
    np.savez(path, __config__=np.asarray(json.dumps(self.config)), **arrays)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

  @classmethod
  def load(cls, path: str | pathlib.Path) -> Embedder:
    with np.load(path) as data:
      config = json.loads(str(data["__config__"]))
      flat = {
        key.removeprefix("params/"): jnp.asarray(data[key])
        for key in data.files
        if key.startswith("params/")
      }
    return cls(params=traverse_util.unflatten_dict(flat, sep="/"), **config)


def _apply(network: EmbeddingNet, params, images) -> jax.Array:
  return _jitted_apply(network)(params, jnp.asarray(images))


_APPLY_CACHE: dict[tuple, Callable] = {}


def _jitted_apply(network: EmbeddingNet) -> Callable:
  key = (network.embedding_dim, network.width)
  if key not in _APPLY_CACHE:
    _APPLY_CACHE[key] = jax.jit(lambda params, x: network.apply({"params": params}, x))
  return _APPLY_CACHE[key]


def batch_hard_triplet_loss(
  embeddings: jax.Array, labels: jax.Array, margin: float = 0.2
) -> jax.Array:
  """Batch-hard triplet loss (Hermans et al. 2017): (B, D), (B,) -> ().

  For each anchor, the farthest example of its class and the nearest of
  another class: mean of max(0, d(a, p) - d(a, n) + margin) over anchors
  that have both. Labels < 0 take part in no triplet.
  """
  squared = jnp.sum(jnp.square(embeddings[:, None] - embeddings[None]), axis=-1)  # (B, B)
  distances = jnp.sqrt(jnp.maximum(squared, 1e-12))
  labelled = labels >= 0
  same = (labels[:, None] == labels[None]) & labelled[:, None] & labelled[None]
  positive = same & ~jnp.eye(len(labels), dtype=bool)
  negative = ~same & labelled[:, None] & labelled[None]
  hardest_positive = jnp.max(jnp.where(positive, distances, -jnp.inf), axis=1)
  hardest_negative = jnp.min(jnp.where(negative, distances, jnp.inf), axis=1)
  valid = jnp.any(positive, axis=1) & jnp.any(negative, axis=1)
  loss = jnp.maximum(hardest_positive - hardest_negative + margin, 0.0)
  loss = jnp.where(valid, loss, 0.0)
  return jnp.sum(loss) / jnp.maximum(jnp.sum(valid), 1)


def semi_hard_triplet_loss(
  embeddings: jax.Array, labels: jax.Array, margin: float = 0.2
) -> jax.Array:
  """Semi-hard triplet loss (Schroff et al. 2015, FaceNet sec. 3.2): (B, D), (B,) -> ().

  Every ordered positive pair (a, p) is a triplet. Its negative is the
  nearest one farther from a than p (semi-hard: d(a, n) > d(a, p)); when
  every negative is nearer than p, the farthest negative. Mean of
  max(0, d(a, p) - d(a, n) + margin) over the positive pairs. Batch-hard
  mining (the hardest negative for the hardest positive) is known to
  collapse every embedding onto one point early in training, where all
  triplets have loss `margin`; semi-hard triplets keep a gradient that
  separates. Labels < 0 take part in no triplet.
  """
  squared = jnp.sum(jnp.square(embeddings[:, None] - embeddings[None]), axis=-1)  # (B, B)
  distances = jnp.sqrt(jnp.maximum(squared, 1e-12))
  labelled = labels >= 0
  same = (labels[:, None] == labels[None]) & labelled[:, None] & labelled[None]
  positive = same & ~jnp.eye(len(labels), dtype=bool)  # (B, B) pairs (a, p)
  negative = ~same & labelled[:, None] & labelled[None]  # (B, B) pairs (a, n)
  to_positive = distances[:, :, None]  # (a, p, 1)
  to_negative = distances[:, None, :]  # (a, 1, n)
  farther = negative[:, None, :] & (to_negative > to_positive)  # (a, p, n)
  nearest_farther = jnp.min(jnp.where(farther, to_negative, jnp.inf), axis=-1)  # (a, p)
  farthest = jnp.max(jnp.where(negative, distances, -jnp.inf), axis=-1)[:, None]  # (a, 1)
  chosen = jnp.where(jnp.any(farther, axis=-1), nearest_farther, farthest)  # (a, p)
  valid = positive & jnp.any(negative, axis=-1)[:, None]
  loss = jnp.where(valid, jnp.maximum(distances - chosen + margin, 0.0), 0.0)
  return jnp.sum(loss) / jnp.maximum(jnp.sum(valid), 1)


#: Triplet mining schemes of `train_embedder`.
TRIPLET_LOSSES = {"semi_hard": semi_hard_triplet_loss, "batch_hard": batch_hard_triplet_loss}


def _class_batches(labels: np.ndarray, batch_size: int, per_class: int, rng: np.random.Generator):
  """Infinite (batch,) index arrays: P classes x K examples (P * K <= batch_size).

  Validates eagerly (raises here, not at the first `next`).
  """
  valid = np.flatnonzero(labels >= 0)
  classes, inverse = np.unique(labels[valid], return_inverse=True)
  members = [valid[inverse == c] for c in range(len(classes))]
  usable = [m for m in members if len(m) >= 2]
  if len(usable) < 2:
    raise ValueError(
      f"labels must have at least 2 classes with 2+ labelled examples, got {len(usable)}"
    )
  classes_per_batch = max(2, min(batch_size // per_class, len(usable)))
  per_class = max(2, batch_size // classes_per_batch)

  def batches():
    while True:
      chosen = rng.choice(len(usable), classes_per_batch, replace=False)
      yield np.concatenate(
        [rng.choice(usable[c], per_class, replace=len(usable[c]) < per_class) for c in chosen]
      )

  return batches()


def train_embedder(
  images: np.ndarray,
  labels: np.ndarray,
  num_steps: int = 2000,
  batch_size: int = 64,
  learning_rate: float = 1e-3,
  embedding_dim: int = 128,
  width: float = 0.5,
  margin: float = 0.2,
  examples_per_class: int = 4,
  rng: jax.Array | None = None,
  progress: bool = False,
  mining: str = "semi_hard",
) -> Embedder:
  """Trains a ResNet-18 embedder with a triplet loss (semi-hard mining by default).

  Batches hold P classes x K examples (K = `examples_per_class`, P as many
  classes as fit in `batch_size`, at most the number of classes; K grows to
  fill the batch when there are few classes), so every anchor has positives
  and negatives. Classes with fewer than two examples and images labelled
  -1 (unlabelled) are never sampled.

  Args:
    images: (N, H, W, 3) images in [0, 1] (e.g. `normal_images`).
    labels: (N,) int class of each image, -1 for unlabelled.
    num_steps: Adam steps.
    batch_size: images per step.
    learning_rate: Adam step size.
    embedding_dim: D, the embedding size (128 in the paper).
    width: ResNet-18 width multiplier.
    margin: triplet margin on distances between unit vectors.
    examples_per_class: K.
    rng: jax PRNG key for the initialisation and the batches (both are
      drawn with numpy from its bits, see `jaxface.nets.host_init`).
    progress: show a tqdm bar with the loss.
    mining: "semi_hard" (`semi_hard_triplet_loss`) or "batch_hard"
      (`batch_hard_triplet_loss`, which can collapse).
  """
  if mining not in TRIPLET_LOSSES:
    raise ValueError(f"mining must be one of {sorted(TRIPLET_LOSSES)}, got {mining!r}")
  triplet_loss = TRIPLET_LOSSES[mining]
  images = np.asarray(images, np.float32)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"images must have shape (N, H, W, 3), got {images.shape}")
  labels = np.asarray(labels)
  if labels.shape != (len(images),):
    raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
  if num_steps <= 0 or batch_size < 4:
    raise ValueError(f"need num_steps > 0 and batch_size >= 4, got {num_steps}, {batch_size}")
  rng = jax.random.PRNGKey(0) if rng is None else rng
  init_key, batch_key = jax.random.split(rng)
  batches = _class_batches(
    labels,
    batch_size,
    examples_per_class,
    np.random.default_rng(_numpy_seed(batch_key)),
  )
  network = EmbeddingNet(embedding_dim=embedding_dim, width=width)
  params = host_init(
    network, jnp.zeros((1, *images.shape[1:]), jnp.float32), seed=_numpy_seed(init_key)
  )
  optimizer = optax.adam(learning_rate)
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, batch_images, batch_labels):
    def loss_fn(params):
      embeddings = network.apply({"params": params}, batch_images)
      return triplet_loss(embeddings, batch_labels, margin)

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  bar = tqdm.trange(num_steps, disable=not progress, desc="embedder")
  for index in bar:
    batch = next(batches)
    params, opt_state, loss = step(params, opt_state, images[batch], labels[batch])
    if progress and index % 20 == 0:
      bar.set_postfix(loss=f"{float(loss):.4f}")
  return Embedder(
    params=jax.device_get(params),
    embedding_dim=embedding_dim,
    width=width,
    image_size=int(images.shape[1]),
  )


def mesh_embedding(
  embedder: Embedder,
  triangles: np.ndarray,
  image_size: int | None = None,
  centre: np.ndarray | None = None,
  half_extent: float | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
  """embed_fn for `decoupling_score`: meshes (N, V, 3) -> `normal_images` -> (N, D).

  Pass the `centre` and `half_extent` used for the embedder's training
  images (`image_frame` of the training meshes) so generated meshes are
  framed identically; `image_size` defaults to the embedder's.
  """
  size = embedder.image_size if image_size is None else image_size

  def embed(vertices: np.ndarray) -> np.ndarray:
    return embedder.embed(normal_images(vertices, triangles, size, centre, half_extent))

  return embed


# ---------------------------------------------------------------------------
# Threshold and score

#: Embeddings closer than this are the same point (a collapsed embedder maps distinct meshes here).
IDENTICAL_DISTANCE = 1e-4


class Verification(NamedTuple):
  """An evaluator's verification threshold and its quality on a validation split.

  Attributes:
    threshold: tau; a pair is "same" when its embedding distance is < tau.
    accuracy: (pass rate + 1 - FAR) / 2 over equal numbers of positive and
      negative pairs, a fraction.
    far: false acceptance rate, the fraction of different-label pairs called "same".
    pass_rate: the fraction of same-label pairs called "same" (true acceptance).
    identical_negatives: the fraction of different-label pairs whose
      embeddings coincide (distance < `IDENTICAL_DISTANCE`): a collapsed embedder.
  """

  threshold: float
  accuracy: float
  far: float
  pass_rate: float
  identical_negatives: float

  @property
  def collapsed(self) -> bool:
    """Distinct meshes embedded onto one point, or no pair accepted but identical ones."""
    return self.identical_negatives > 0.01 or self.threshold <= IDENTICAL_DISTANCE

  def problems(self, min_accuracy: float, max_far: float) -> list[str]:
    """Why this evaluator falls short of a quality target (accuracy, FAR fractions); [] if not."""
    found = []
    if self.collapsed:
      found.append(
        f"collapsed (threshold {self.threshold:.4f}, {100 * self.identical_negatives:.1f}% of "
        "different-label pairs embedded on one point)"
      )
    if self.accuracy < min_accuracy:
      found.append(f"accuracy {100 * self.accuracy:.2f}% < {100 * min_accuracy:.2f}%")
    if self.far > max_far:
      found.append(f"FAR {100 * self.far:.2f}% > {100 * max_far:.2f}%")
    return found


def choose_threshold(
  embeddings: np.ndarray,
  labels: np.ndarray,
  num_pairs: int = 2000,
  max_false_acceptance: float = 0.1,
  rng: np.random.Generator | int | None = None,
) -> tuple[float, float, float]:
  """The verification threshold tau of the decoupling metric, on a validation split.

  Draws `num_pairs` positive pairs (distinct items with the same label,
  uniform over all such pairs) and as many negative pairs (labelled items
  with different labels); a pair is classified "same" when its embedding
  distance is < tau. tau maximises the accuracy subject to a false
  acceptance rate (negatives classified "same") strictly below
  `max_false_acceptance`; it is the midpoint between consecutive observed
  distances (ties in accuracy: the smallest tau). Labels -1 are ignored.

  Returns:
    (threshold, accuracy, far), accuracy and far as fractions in [0, 1].
  """
  embeddings = np.asarray(embeddings, np.float64)
  if embeddings.ndim != 2:
    raise ValueError(f"embeddings must have shape (N, D), got {embeddings.shape}")
  labels = np.asarray(labels)
  if labels.shape != (len(embeddings),):
    raise ValueError(f"labels must have shape ({len(embeddings)},), got {labels.shape}")
  if num_pairs <= 0:
    raise ValueError(f"num_pairs must be positive, got {num_pairs}")
  rng = _resolve_rng(rng)
  pos_i, pos_j = sample_pairs(labels, num_pairs, rng)
  if len(pos_i) == 0:
    raise ValueError("labels have no positive pair (two items with the same label >= 0)")
  labelled = np.flatnonzero(labels >= 0)
  if len(np.unique(labels[labelled])) < 2:
    raise ValueError("labels have no negative pair (two different labels >= 0)")
  neg_i, neg_j = [], []
  found = 0
  while found < num_pairs:
    i = rng.choice(labelled, 4 * num_pairs)
    j = rng.choice(labelled, 4 * num_pairs)
    keep = labels[i] != labels[j]
    neg_i.append(i[keep])
    neg_j.append(j[keep])
    found += int(keep.sum())
  neg_i = np.concatenate(neg_i)[:num_pairs]
  neg_j = np.concatenate(neg_j)[:num_pairs]
  positive = np.linalg.norm(embeddings[pos_i] - embeddings[pos_j], axis=-1)  # (P,)
  negative = np.linalg.norm(embeddings[neg_i] - embeddings[neg_j], axis=-1)  # (P,)
  values = np.unique(np.concatenate([positive, negative]))
  candidates = np.concatenate(
    [values[:1], (values[1:] + values[:-1]) / 2, values[-1:] + max(1e-6, 1e-6 * values[-1])]
  )
  true_accept = np.searchsorted(np.sort(positive), candidates, side="left") / num_pairs
  false_accept = np.searchsorted(np.sort(negative), candidates, side="left") / num_pairs
  accuracy = (true_accept + 1.0 - false_accept) / 2
  accuracy = np.where(false_accept < max_false_acceptance, accuracy, -1.0)
  best = int(np.argmax(accuracy))
  return Verification(
    float(candidates[best]), float(accuracy[best]), float(false_accept[best]),
    float(true_accept[best]), float(np.mean(negative < IDENTICAL_DISTANCE)),
  )  # fmt: skip


def decoupling_score(
  generator: ShapeGenerator,
  factor: str,
  embed_fn: Callable[[np.ndarray], np.ndarray],
  threshold: float,
  num_bases: int = 100,
  samples_per_base: int = 100,
  rng: np.random.Generator | int | None = None,
  meshes_per_call: int = 1010,
  batch_size: int = 256,
  progress: bool = False,
) -> float:
  """Percentage (0-100) of pairs sharing `factor`'s code that the embedder calls "same".

  n = `num_bases` base codes x_i; for each, m = `samples_per_base` codes
  that copy x_i's `factor` code and resample every other factor (noise
  included). A pair (x_i, y) is "same" when |embed(x_i) - embed(y)| <
  `threshold`.

  Args:
    generator: the model.
    factor: the shared factor, a key of `generator.code_dims`.
    embed_fn: meshes (N, V, 3) mm -> (N, D) embeddings, e.g. `mesh_embedding`.
    threshold: tau from `choose_threshold`.
    num_bases, samples_per_base: n and m (100 and 100 in the paper).
    rng: numpy Generator or seed.
    meshes_per_call: bounds the meshes generated and embedded at once; a
      base and all its samples always go to the same `embed_fn` call (so a
      per-call default framing is shared within every compared pair).
    batch_size: decoding chunk.
    progress: show a tqdm bar over groups of bases.
  """
  if factor not in generator.code_dims:
    raise ValueError(f"factor must be one of {list(generator.code_dims)}, got {factor!r}")
  if num_bases <= 0 or samples_per_base <= 0:
    raise ValueError(
      f"num_bases and samples_per_base must be positive, got {num_bases}, {samples_per_base}"
    )
  rng = _resolve_rng(rng)
  m = samples_per_base
  bases = generator.sample_codes(rng, num_bases)
  group = max(1, meshes_per_call // (m + 1))
  same = 0
  for start in tqdm.trange(0, num_bases, group, disable=not progress, desc=f"decoupling {factor}"):
    base = {k: v[start : start + group] for k, v in bases.items()}  # (g, d)
    g = len(base[factor])
    samples = generator.sample_codes(rng, g * m)
    samples[factor] = np.repeat(base[factor], m, axis=0)  # (g * m, d)
    codes = {k: np.concatenate([base[k], samples[k]]) for k in bases}
    embeddings = np.asarray(embed_fn(generator.generate(codes, batch_size)), np.float64)
    if embeddings.ndim != 2 or len(embeddings) != g * (m + 1):
      raise ValueError(
        f"embed_fn must map {g * (m + 1)} meshes to (N, D), got shape {embeddings.shape}"
      )
    anchor = np.repeat(embeddings[:g], m, axis=0)  # (g * m, D)
    distances = np.linalg.norm(embeddings[g:] - anchor, axis=-1)  # (g * m,)
    same += int(np.sum(distances < threshold))
  return 100.0 * same / (num_bases * m)
