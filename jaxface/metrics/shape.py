"""Shape metrics of generative 3D face models: diversity, specificity, sparse fitting.

The paper's section 5.3 and Table 2 ("A Decoupled 3D Facial Model by
Adversarial Training"), generic over any model that maps standard-normal
codes to registered meshes (`ShapeGenerator`). Every length is in mm.

- Diversity: the mean over random pairs of meshes of their mean vertex
  distance, for independent pairs ("global") and for pairs sharing the code
  of one factor ("same_identity", "same_expression", ...). `data_diversity`
  computes the same numbers for a labelled training set.
- Specificity: the mean over generated samples of the smallest mean vertex
  distance to any training mesh.
- Sparse reconstruction (eq. 13): codes minimising the squared distance of p
  keypoints to targets plus lambda |z|^2, and the RMSE of the fitted surface
  against the ground truth.

Meshes compared here are registered (they share the template's topology and
vertex order), so "distance between meshes" is always vertex-to-vertex.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

#: Factor names that are never shared in a "same_<factor>" diversity pair.
NUISANCE_FACTORS = ("noise",)


def _check_meshes(name: str, vertices, count: int | None = None) -> np.ndarray | jax.Array:
  """Raises `ValueError` unless `vertices` is (N, V, 3) (with N == count if given)."""
  shape = np.shape(vertices)
  if len(shape) != 3 or shape[-1] != 3:
    raise ValueError(f"{name} must have shape (N, V, 3), got {shape}")
  if count is not None and shape[0] != count:
    raise ValueError(f"{name} must have {count} meshes, got shape {shape}")
  return vertices


@dataclasses.dataclass(frozen=True)
class ShapeGenerator:
  """A generative shape model seen by the metrics: codes -> meshes in mm.

  Attributes:
    code_dims: ordered factor name -> code dimension, e.g.
      {"identity": 65, "expression": 15, "noise": 5}. Every factor's code is
      distributed N(0, I) (a linear model whitens its coefficients).
    decode: {name: (N, d)} -> (N, V, 3) vertices in mm; jax-traceable and
      differentiable w.r.t. the codes.
    triangles: (F, 3) int vertex ids of the shared topology.
  """

  code_dims: Mapping[str, int]
  decode: Callable[[dict[str, jax.Array]], jax.Array]
  triangles: np.ndarray

  @functools.cached_property
  def _jit_decode(self):
    return jax.jit(self.decode)

  @property
  def factors(self) -> tuple[str, ...]:
    """Factor names in code order."""
    return tuple(self.code_dims)

  @property
  def shared_factors(self) -> tuple[str, ...]:
    """Factors evaluated by "same_<factor>" metrics: all but the nuisance ("noise")."""
    return tuple(f for f in self.code_dims if f not in NUISANCE_FACTORS)

  def sample_codes(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """{name: (n, d)} float32 codes, each factor drawn from N(0, I)."""
    return {
      name: rng.standard_normal((n, dim)).astype(np.float32) for name, dim in self.code_dims.items()
    }

  def check_codes(self, codes: Mapping[str, np.ndarray]) -> int:
    """Validates {name: (N, d)} against `code_dims`; returns N."""
    if set(codes) != set(self.code_dims):
      raise ValueError(f"codes must have the factors {list(self.code_dims)}, got {list(codes)}")
    counts = set()
    for name, dim in self.code_dims.items():
      shape = np.shape(codes[name])
      if len(shape) != 2 or shape[1] != dim:
        raise ValueError(f"codes[{name!r}] must have shape (N, {dim}), got {shape}")
      counts.add(shape[0])
    if len(counts) != 1:
      raise ValueError(f"all codes must have the same N, got {sorted(counts)}")
    return counts.pop()

  def generate(
    self, codes: Mapping[str, np.ndarray], batch_size: int = 256, progress: bool = False
  ) -> np.ndarray:
    """Decodes {name: (N, d)} in chunks of `batch_size` -> (N, V, 3) float32 numpy, mm.

    The last chunk is zero-padded to `batch_size`, so `decode` compiles once.
    """
    n = self.check_codes(codes)
    if batch_size <= 0:
      raise ValueError(f"batch_size must be positive, got {batch_size}")
    chunks = []
    for start in tqdm.trange(0, n, batch_size, disable=not progress, desc="generate"):
      chunk = _padded_chunk(codes, start, batch_size)
      out = self._jit_decode(chunk)  # (batch_size, V, 3)
      chunks.append(np.asarray(out[: min(batch_size, n - start)], np.float32))
    if not chunks:
      return np.zeros((0, 0, 3), np.float32)
    return np.concatenate(chunks)


def _padded_chunk(codes: Mapping[str, np.ndarray], start: int, size: int) -> dict[str, np.ndarray]:
  """Rows [start, start + size) of every code, zero-padded to `size` rows."""
  out = {}
  for name, value in codes.items():
    value = np.asarray(value[start : start + size], np.float32)
    if value.shape[0] < size:
      value = np.concatenate(
        [value, np.zeros((size - value.shape[0], *value.shape[1:]), np.float32)]
      )
    out[name] = value
  return out


def mean_vertex_distance(a: jax.Array, b: jax.Array) -> jax.Array:
  """Mean over vertices of the Euclidean distance: (N, V, 3), (N, V, 3) -> (N,)."""
  a, b = jnp.asarray(a), jnp.asarray(b)
  if a.ndim != 3 or a.shape[-1] != 3:
    raise ValueError(f"a must have shape (N, V, 3), got {a.shape}")
  if b.shape != a.shape:
    raise ValueError(f"b must have the shape of a {a.shape}, got {b.shape}")
  return jnp.mean(jnp.linalg.norm(a - b, axis=-1), axis=-1)


def similarity_align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
  """`source` (V, 3) moved onto `target` (V, 3) by the least-squares similarity (Umeyama 1991).

  Scale, rotation (no reflection) and translation minimising the summed
  squared vertex distances; what a reconstruction's error is measured after,
  since one image cannot tell a face's size from its distance.
  """
  source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
  if source.ndim != 2 or source.shape[-1] != 3 or source.shape != target.shape:
    raise ValueError(
      f"source and target must both have shape (V, 3), got {source.shape}, {target.shape}"
    )
  mu_s, mu_t = source.mean(0), target.mean(0)
  a, b = source - mu_s, target - mu_t
  u, sigma, vt = np.linalg.svd(b.T @ a / len(a))
  sign = np.ones(3)
  sign[2] = np.sign(np.linalg.det(u @ vt)) or 1.0
  rotation = u @ np.diag(sign) @ vt
  scale = float((sigma * sign).sum() / max(a.var(0).sum(), 1e-24))
  return scale * a @ rotation.T + mu_t


def aligned_vertex_error(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
  """(N, V, 3) each -> (N,) mean vertex distance after `similarity_align` of each mesh."""
  predicted, truth = np.asarray(predicted), np.asarray(truth)
  pairs = zip(predicted, truth, strict=True)
  return np.asarray([np.linalg.norm(similarity_align(p, t) - t, axis=-1).mean() for p, t in pairs])


# ---------------------------------------------------------------------------
# Diversity


def _numpy_seed(key: jax.Array) -> list[int]:
  """A numpy seed from the bits of a jax PRNG key (raw uint32 or typed)."""
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.key_data(key)
  return np.asarray(key).ravel().tolist()


def _resolve_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
  if isinstance(rng, np.random.Generator):
    return rng
  return np.random.default_rng(0 if rng is None else rng)


def generator_diversity(
  generator: ShapeGenerator,
  num_pairs: int = 10_000,
  rng: np.random.Generator | int | None = None,
  batch_size: int = 256,
  progress: bool = False,
) -> dict[str, float]:
  """Diversity of generated meshes (paper sec. 5.3), in mm.

  Returns {"global": ..., "same_<factor>": ...} for every factor but
  "noise": the mean over `num_pairs` pairs of the pair's mean vertex
  distance. "global" pairs have independent codes; a "same_<factor>" pair
  shares that factor's code and draws every other factor (noise included)
  independently.
  """
  if num_pairs <= 0:
    raise ValueError(f"num_pairs must be positive, got {num_pairs}")
  rng = _resolve_rng(rng)
  decode = generator._jit_decode

  @jax.jit
  def pair_distances(codes_a, codes_b):
    return mean_vertex_distance(decode(codes_a), decode(codes_b))  # (batch_size,)

  results = {}
  for key in ["global", *[f"same_{f}" for f in generator.shared_factors]]:
    codes_a = generator.sample_codes(rng, num_pairs)
    codes_b = generator.sample_codes(rng, num_pairs)
    if key != "global":
      factor = key.removeprefix("same_")
      codes_b[factor] = codes_a[factor]
    total = 0.0
    for start in tqdm.trange(0, num_pairs, batch_size, disable=not progress, desc=key):
      count = min(batch_size, num_pairs - start)
      distances = pair_distances(
        _padded_chunk(codes_a, start, batch_size), _padded_chunk(codes_b, start, batch_size)
      )
      total += float(np.sum(np.asarray(distances[:count], np.float64)))
    results[key] = total / num_pairs
  return results


def sample_pairs(
  labels: np.ndarray | None, num: int, rng: np.random.Generator, count: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
  """Uniform random pairs (i, j), i != j: (num,) and (num,) int indices.

  With `labels` (N,) int, pairs are drawn uniformly among all unordered pairs
  of distinct items sharing a label >= 0 (a group is picked with probability
  proportional to its number of pairs, then a pair inside it); label -1
  (unlabelled) is excluded. With labels None, among all pairs of `count`
  items. Returns two empty arrays when no valid pair exists.
  """
  if labels is None:
    if count is None or count < 2:
      return np.zeros(0, np.int64), np.zeros(0, np.int64)
    i = rng.integers(count, size=num)
    j = rng.integers(count - 1, size=num)
    return i, j + (j >= i)
  labels = np.asarray(labels)
  valid = np.flatnonzero(labels >= 0)
  groups, inverse, sizes = np.unique(labels[valid], return_inverse=True, return_counts=True)
  del groups
  weights = sizes.astype(np.float64) * (sizes - 1) / 2
  if weights.sum() == 0:
    return np.zeros(0, np.int64), np.zeros(0, np.int64)
  members = np.split(valid[np.argsort(inverse, kind="stable")], np.cumsum(sizes)[:-1])
  group = rng.choice(len(sizes), size=num, p=weights / weights.sum())
  a = rng.integers(sizes[group])  # (num,)
  b = rng.integers(sizes[group] - 1)
  b = b + (b >= a)
  i = np.array([members[g][k] for g, k in zip(group, a, strict=True)], np.int64)
  j = np.array([members[g][k] for g, k in zip(group, b, strict=True)], np.int64)
  return i, j


def data_diversity(
  vertices: np.ndarray,
  labels: Mapping[str, np.ndarray],
  num_pairs: int = 10_000,
  rng: np.random.Generator | int | None = None,
  batch_size: int = 256,
) -> dict[str, float]:
  """Diversity of a labelled data set (Table 1's "Training data" row), in mm.

  Args:
    vertices: (N, V, 3) registered meshes, mm.
    labels: {factor: (N,) int} class per mesh, -1 for unlabelled.
    num_pairs: pairs drawn (with replacement) per key.
    rng: numpy Generator or seed.
    batch_size: meshes gathered per distance evaluation.

  Returns:
    {"global": ..., "same_<factor>": ...} for every factor in `labels` but
    "noise": the mean of mean vertex distances over random pairs of distinct
    meshes ("global") or of distinct meshes sharing that factor's label
    (uniform over all such pairs). NaN when a factor has no valid pair.
  """
  _check_meshes("vertices", vertices)
  n = len(vertices)
  for factor, value in labels.items():
    if np.shape(value) != (n,):
      raise ValueError(f"labels[{factor!r}] must have shape ({n},), got {np.shape(value)}")
  if num_pairs <= 0:
    raise ValueError(f"num_pairs must be positive, got {num_pairs}")
  rng = _resolve_rng(rng)
  results = {}
  keys = [("global", None)] + [
    (f"same_{f}", np.asarray(v)) for f, v in labels.items() if f not in NUISANCE_FACTORS
  ]
  for key, factor_labels in keys:
    i, j = sample_pairs(factor_labels, num_pairs, rng, count=n)
    if len(i) == 0:
      results[key] = float("nan")
      continue
    total = 0.0
    for start in range(0, num_pairs, batch_size):
      ii, jj = i[start : start + batch_size], j[start : start + batch_size]
      distances = mean_vertex_distance(
        jnp.asarray(vertices[ii], jnp.float32), jnp.asarray(vertices[jj], jnp.float32)
      )
      total += float(np.sum(np.asarray(distances, np.float64)))
    results[key] = total / num_pairs
  return results


# ---------------------------------------------------------------------------
# Specificity


@jax.jit
def _chunk_minimum(samples, training, valid, running):
  """Running min over `training` rows of the distance to each sample.

  samples (s, V, 3), training (t, V, 3), valid (t,) bool, running (s,) -> (s,).
  A scan over training rows keeps the temporaries at one (s, V, 3) array.
  """

  def step(best, row):
    mesh, ok = row
    distance = jnp.mean(jnp.linalg.norm(samples - mesh[None], axis=-1), axis=-1)  # (s,)
    return jnp.where(ok, jnp.minimum(best, distance), best), None

  best, _ = jax.lax.scan(step, running, (training, valid))
  return best


def _pad_rows(array: np.ndarray, size: int) -> np.ndarray:
  if array.shape[0] == size:
    return array
  pad = np.zeros((size - array.shape[0], *array.shape[1:]), array.dtype)
  return np.concatenate([array, pad])


def specificity_per_sample(
  samples: np.ndarray,
  training: np.ndarray,
  sample_chunk: int = 256,
  training_chunk: int = 256,
  progress: bool = False,
) -> np.ndarray:
  """Per sample, the smallest mean vertex distance to any training mesh: (n,) mm.

  Args:
    samples: (n, V, 3) generated meshes, mm.
    training: (M, V, 3) training meshes, mm.
    sample_chunk: samples compared at once.
    training_chunk: training meshes moved to the device at once.
    progress: show a tqdm bar over sample chunks.

  Memory on the device is bounded by about (2 sample_chunk + training_chunk)
  x V x 3 float32 (the sample chunk, one distance temporary and the
  training chunk), whatever n and M are; the chunk shapes are fixed
  (padded), so the scan compiles once.
  """
  _check_meshes("samples", samples)
  _check_meshes("training", training)
  if np.shape(samples)[1] != np.shape(training)[1]:
    raise ValueError(
      f"samples {np.shape(samples)} and training {np.shape(training)} must have the same V"
    )
  if len(training) == 0:
    raise ValueError("training must hold at least one mesh")
  if sample_chunk <= 0 or training_chunk <= 0:
    raise ValueError(f"chunk sizes must be positive, got {sample_chunk}, {training_chunk}")
  n, m = len(samples), len(training)
  out = np.empty(n, np.float32)
  for start in tqdm.trange(0, n, sample_chunk, disable=not progress, desc="specificity"):
    count = min(sample_chunk, n - start)
    chunk = jnp.asarray(
      _pad_rows(np.asarray(samples[start : start + count], np.float32), sample_chunk)
    )
    best = jnp.full((sample_chunk,), jnp.inf, jnp.float32)
    for t0 in range(0, m, training_chunk):
      rows = np.asarray(training[t0 : t0 + training_chunk], np.float32)
      valid = np.arange(training_chunk) < len(rows)
      best = _chunk_minimum(chunk, jnp.asarray(_pad_rows(rows, training_chunk)), valid, best)
    out[start : start + count] = np.asarray(best[:count])
  return out


def specificity(
  samples: np.ndarray,
  training: np.ndarray,
  sample_chunk: int = 256,
  training_chunk: int = 256,
  progress: bool = False,
) -> float:
  """Specificity (paper sec. 5.3), mm: the mean of `specificity_per_sample`."""
  return float(
    np.mean(specificity_per_sample(samples, training, sample_chunk, training_chunk, progress))
  )


# ---------------------------------------------------------------------------
# Sparse reconstruction (eq. 13)


def _concat_norm2(codes: Mapping[str, jax.Array]) -> jax.Array:
  """|z|^2 over all factors concatenated: {name: (N, d)} -> (N,)."""
  return sum(jnp.sum(jnp.square(c), axis=-1) for c in codes.values())


#: Adam steps between two convergence checks of `fit_sparse`.
CHECK_EVERY = 50


def fit_sparse(
  generator: ShapeGenerator,
  keypoint_ids: np.ndarray,
  targets: np.ndarray,
  regularisation: float,
  num_steps: int = 1000,
  learning_rate: float = 0.1,
  rng: jax.Array | None = None,
  num_starts: int = 1,
  tolerance: float = 1e-5,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Codes fitted to sparse keypoints (paper eq. 13), all fits batched.

  Minimises, independently for each target, over the code z (all factors
  concatenated):

      E(z) = (1/p) sum_i |v_{k_i}(z) - target_i|^2 + regularisation * |z|^2,

  the mean squared keypoint error in mm^2 plus the Gaussian prior, so lambda
  is in mm^2 per unit of |z|^2: the paper's 0.01 and 10 act (a 1 mm fit of a
  unit-variance code of 80 dimensions puts 0.8 mm^2 of prior against 1 mm^2
  of data at lambda = 0.01). (The paper does not say its units; with a sum
  over 68 keypoints, 0.01 changed no fit.)

  Each target is fitted from `num_starts` codes drawn from N(0, I) and the
  lowest-energy fit is kept. Adam's step follows a cosine decay to 1% of
  `learning_rate` over `num_steps`; the fits stop early once no fit's energy
  fell by more than `tolerance` (relative) over the last `CHECK_EVERY`
  steps. Adam is element-wise, so the batched fits are exactly the
  independent ones.

  Args:
    generator: the model.
    keypoint_ids: (p,) vertex ids of the keypoints.
    targets: (N, p, 3) keypoint positions, mm.
    regularisation: lambda >= 0.
    num_steps: at most this many Adam steps.
    learning_rate: peak Adam step size (codes are unit-variance).
    rng: jax PRNG key for the initial codes (PRNGKey(0) if None); they are
      drawn with numpy from the key's bits (compiling jax's PRNG is slow on CPU).
    num_starts: random starts per target.
    tolerance: the relative energy decrease over `CHECK_EVERY` steps below
      which the fits have converged (0: always run `num_steps`).

  Returns:
    codes {name: (N, d)} float32 numpy, and the fitted meshes (N, V, 3) mm.
  """
  keypoint_ids = np.asarray(keypoint_ids)
  if keypoint_ids.ndim != 1 or keypoint_ids.size == 0:
    raise ValueError(f"keypoint_ids must have shape (p,) with p > 0, got {keypoint_ids.shape}")
  targets = np.asarray(targets, np.float32)
  if targets.shape[1:] != (keypoint_ids.size, 3) or targets.ndim != 3:
    raise ValueError(
      f"targets must have shape (N, {keypoint_ids.size}, 3) to match keypoint_ids, "
      f"got {targets.shape}"
    )
  if regularisation < 0:
    raise ValueError(f"regularisation must be >= 0, got {regularisation}")
  if num_steps <= 0 or num_starts <= 0 or tolerance < 0:
    raise ValueError(
      f"need num_steps > 0, num_starts > 0 and tolerance >= 0, got {num_steps}, {num_starts}, "
      f"{tolerance}"
    )
  rng = jax.random.PRNGKey(0) if rng is None else rng
  n = targets.shape[0]
  init = generator.sample_codes(np.random.default_rng(_numpy_seed(rng)), n * num_starts)
  schedule = optax.cosine_decay_schedule(learning_rate, num_steps, alpha=0.01)
  optimizer = optax.adam(schedule)
  ids = jnp.asarray(keypoint_ids, jnp.int32)
  repeated = jnp.asarray(np.repeat(targets, num_starts, axis=0))  # (N S, p, 3), start-minor

  def energies(codes):
    keypoints = generator.decode(codes)[:, ids]  # (N S, p, 3)
    data = jnp.mean(jnp.sum(jnp.square(keypoints - repeated), axis=-1), axis=-1)  # (N S,)
    return data + regularisation * _concat_norm2(codes)

  @jax.jit
  def run(codes):
    def steps(_, state):
      codes, opt_state = state
      grads = jax.grad(lambda c: jnp.sum(energies(c)))(codes)
      updates, opt_state = optimizer.update(grads, opt_state, codes)
      return optax.apply_updates(codes, updates), opt_state

    def unconverged(state):
      step, _, _, previous, current = state
      fell = (previous - current) / jnp.maximum(jnp.abs(previous), 1e-12)
      return (step < num_steps) & ((step == 0) | jnp.any(fell > tolerance))

    def chunk(state):
      step, codes, opt_state, _, current = state
      count = jnp.minimum(CHECK_EVERY, num_steps - step)
      codes, opt_state = jax.lax.fori_loop(0, count, steps, (codes, opt_state))
      return step + count, codes, opt_state, current, energies(codes)

    start = energies(codes)
    state = (jnp.asarray(0), codes, optimizer.init(codes), start, start)
    _, codes, _, _, final = jax.lax.while_loop(unconverged, chunk, state)
    best = jnp.argmin(final.reshape(n, num_starts), axis=-1) + num_starts * jnp.arange(n)
    codes = jax.tree.map(lambda c: c[best], codes)
    return codes, generator.decode(codes)

  codes, vertices = run(init)
  codes = {name: np.asarray(value, np.float32) for name, value in codes.items()}
  return codes, np.asarray(vertices, np.float32)


def sparse_reconstruction_rmse(
  generator: ShapeGenerator,
  keypoint_ids: np.ndarray,
  ground_truth: np.ndarray,
  regularisation: float,
  num_steps: int = 1000,
  learning_rate: float = 0.1,
  rng: jax.Array | None = None,
  num_starts: int = 1,
  tolerance: float = 1e-5,
) -> float:
  """Table 2's error, mm: fit to the ground truth's keypoints, RMSE over its surface.

  The ground truth must be registered to the generator's topology (same V,
  same vertex order), so the surface error is the vertex-to-vertex
  distance: sqrt(mean over meshes and vertices of |fit - truth|^2).

  Args:
    generator: the model.
    keypoint_ids: (p,) vertex ids used as sparse constraints.
    ground_truth: (N, V, 3) registered meshes, mm.
    regularisation, num_steps, learning_rate, rng, num_starts, tolerance: as in `fit_sparse`.
  """
  _check_meshes("ground_truth", ground_truth)
  ground_truth = np.asarray(ground_truth, np.float32)
  keypoint_ids = np.asarray(keypoint_ids)
  if keypoint_ids.ndim == 1 and keypoint_ids.size and keypoint_ids.max() >= ground_truth.shape[1]:
    raise ValueError(
      f"keypoint_ids index vertex {keypoint_ids.max()} of only {ground_truth.shape[1]}"
    )
  _, fitted = fit_sparse(
    generator,
    keypoint_ids,
    ground_truth[:, keypoint_ids],
    regularisation,
    num_steps=num_steps,
    learning_rate=learning_rate,
    rng=rng,
    num_starts=num_starts,
    tolerance=tolerance,
  )
  if fitted.shape != ground_truth.shape:
    raise ValueError(
      f"ground_truth {ground_truth.shape} must be registered to the generator's "
      f"meshes {fitted.shape}"
    )
  squared = np.sum(np.square(fitted.astype(np.float64) - ground_truth), axis=-1)  # (N, V)
  return float(np.sqrt(np.mean(squared)))
