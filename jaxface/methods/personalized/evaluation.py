"""Evaluation on held-out synthetic users against their exact meshes, and the method's summaries.

Each held-out user's personal model is built from `eval_frames_per_user`
frames of their sequence (evenly spaced), and every frame of the sequence
is tracked. The ground truth is the person's own rig (`jaxface.data.
personal`): frame t's true mesh is mean + B_id id + sum_k w*_k (B_k + dB*_k)
for the sequence's true weights w*. Reported (lengths in mm):

- `reconstruction/vertex_error_mm`: mean vertex distance of each frame's
  mesh after a similarity alignment to the true one (a single image cannot
  tell size from distance), averaged over frames and users;
- `reconstruction/neutral_error_mm`: the same for the neutral S_0;
- `reconstruction/expression_error_mm`: mean vertex distance of the
  expression displacement S(w) - S_0 from the true one (both in the face
  frame, no alignment): the part personal blendshapes change;
- `reconstruction/photometric`: E_ph of the renders, and
  `reconstruction/landmark_error_px`: mean 2D landmark distance in pixels;
- `retargeting/vertex_error_mm`, `retargeting/expression_error_mm`: user A's
  tracked weights on user B's model (B = the next held-out user) against
  B's true mesh for A's true weights;
- `tracking/weight_error`: mean absolute error of the blendshape weights,
  `tracking/weight_correlation`: whether the tracker reads expressions at
  all (`weight_correlation`: 1 for weights proportional to the true ones,
  about 0 for weights unrelated to them), `tracking/rotation_error_deg`:
  the geodesic error of the head rotation;
- `model/correction_mm`: the mean vertex length of what the learnt
  blendshape corrections add to a frame (sum_k w_k dB_k), and
  `model/correction_static_share`: the share of it that is the same in
  every frame of the user (near 1: the corrections act as an identity
  offset rather than as expression);
- `data/identity_specific_pct`: the share of the true expression
  displacement that no generic-rig weights reproduce
  (`personal.generic_fit_residual`, in %), and `data/generic_floor_mm`: the
  expression error of those best generic weights, the floor of any generic
  rig, and `data/expression_displacement_mm`: the mean length of the true
  expression displacement. These describe the data, not the model.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from jaxface.data import personal
from jaxface.geometry.transforms import euler_to_matrix
from jaxface.methods.personalized import losses, networks, rig
from jaxface.methods.personalized.image_formation import (
  grey_render,
  personal_model,
  render_frames,
)
from jaxface.methods.personalized.networks import State
from jaxface.methods.protocol import frozen
from jaxface.metrics.shape import aligned_vertex_error
from jaxface.morphable import load as load_model
from jaxface.morphable.model import mm_per_unit


@functools.partial(jax.jit, static_argnames=("config",))
def reconstruct(state: State, model_images, track_images, config: ml_collections.FrozenConfigDict):
  """Builds B users' models from `model_images` (B, K, H, W, 3) and tracks `track_images`
  (B, F, H, W, 3). Returns {"person": the `rig.Person`s, "track": the `Track` of the B F frames,
  "vertices": (B, F, V, 3), "neutral": (B, V, 3), "image": (B F, H, W, 3), "mask": (B F, H, W),
  "landmarks": (B F, 68, 2)}."""
  frames, size = track_images.shape[1:3]
  maps = networks.model_users(config, state, None, model_images, train=False)
  person = personal_model(config, state.arrays, maps)
  track = networks.track_frames(config, state, None, track_images.reshape(-1, size, size, 3))
  rendered = render_frames(state.arrays, person, track, size, frames)
  return {
    "person": person, "track": track, "vertices": rendered.vertices,
    "neutral": rig.neutral_shape(state.arrays, person), "image": rendered.render.image,
    "mask": rendered.render.mask, "landmarks": rendered.landmarks,
  }  # fmt: skip


def model_frame_ids(num_frames: int, count: int) -> np.ndarray:
  """The `count` evenly spaced frames a user's model is built from."""
  return np.unique(np.linspace(0, num_frames - 1, min(count, num_frames)).round().astype(int))


class Truth:
  """The true meshes of one held-out user (see the module docstring), in the face frame."""

  def __init__(self, model, example: dict, strength: float):
    self.model = model
    self.identity = np.asarray(example["identity"], np.float32)
    self.weights = np.asarray(example["expression"], np.float32)  # (F, Ke)
    zero = personal.PersonalRig(
      np.zeros((model.num_expression, model.num_vertices, 3), np.float32), np.zeros((1, 1, 1, 3))
    )
    self.rig = (
      personal.personal_rig(model, self.identity, shape_strength=strength, albedo_strength=strength)
      if strength > 0
      else zero
    )
    self.centre = np.asarray(model.vertices).mean(0)
    self.neutral = np.asarray(model.shape(self.identity)) - self.centre

  def displacement(self, weights: np.ndarray) -> np.ndarray:
    """(F, V, 3) sum_k w_k (B_k + dB*_k) for weights (F, Ke)."""
    basis = np.asarray(self.model.expression_basis) + self.rig.shape_corrections
    return np.einsum("fk,kvd->fvd", weights, basis)

  def meshes(self, weights: np.ndarray) -> np.ndarray:
    return self.neutral + self.displacement(weights)


def _mean_distance(a, b) -> float:
  return float(np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1).mean())


def _stack(examples: list[dict], key: str) -> np.ndarray:
  return np.stack([np.asarray(e[key]) for e in examples])


def evaluate(state: State, dataset, config) -> dict[str, float]:
  """Every metric of the module docstring, averaged over the held-out users."""
  config = frozen(config)
  pc, data = config.personalized, config.data
  model = load_model(str(data.model))
  mm = mm_per_unit(model.units)
  users = [dataset[i] for i in range(len(dataset))]
  truths = [Truth(model, e, float(data.personal_strength)) for e in users]
  ids = model_frame_ids(int(data.num_frames), int(pc.eval_frames_per_user))
  sums: dict[str, list[float]] = {}
  add = lambda name, value: sums.setdefault(name, []).append(float(value))
  outputs = []
  chunk = int(pc.eval.batch_size)
  for start in tqdm.trange(0, len(users), chunk, desc="evaluate", leave=False,
                           disable=not config.progress_bar):  # fmt: skip
    group = users[start : start + chunk]
    frames = _stack(group, "image").astype(np.float32) / 255.0  # (b, F, H, W, 3)
    out = jax.device_get(
      reconstruct(state, jnp.asarray(frames[:, ids]), jnp.asarray(frames), config)
    )
    outputs.append(out)
    size = frames.shape[2]
    face = _stack(group, "segmentation").reshape(-1, size, size) > 0
    compared = (out["mask"] > 0.5) & face
    add("reconstruction/photometric", losses.photometric_loss(
      out["image"], frames.reshape(-1, size, size, 3), compared))  # fmt: skip
    true_landmarks = _stack(group, "landmarks").reshape(-1, 68, 2)
    add("reconstruction/landmark_error_px",
        np.linalg.norm(out["landmarks"] - true_landmarks, axis=-1).mean())  # fmt: skip
    true_pose = _stack(group, "pose").reshape(-1, 3)
    rotation = np.asarray(euler_to_matrix(jnp.asarray(true_pose)))
    cosine = (np.einsum("nij,nij->n", rotation, out["track"].rotation) - 1.0) / 2.0
    add("tracking/rotation_error_deg", np.degrees(np.arccos(np.clip(cosine, -1, 1))).mean())
  vertices = np.concatenate([o["vertices"] for o in outputs])  # (N, F, V, 3)
  neutral = np.concatenate([o["neutral"] for o in outputs])  # (N, V, 3)
  weights = np.concatenate([o["track"].weights for o in outputs]).reshape(
    len(users), -1, model.num_expression
  )
  person = jax.tree.map(lambda *x: np.concatenate(x), *[o["person"] for o in outputs])
  true_weights = np.stack([truth.weights for truth in truths])  # (N, F, Ke)
  flat = lambda w: w.reshape(-1, model.num_expression)
  add("tracking/weight_correlation", weight_correlation(flat(weights), flat(true_weights)))
  for index, truth in enumerate(truths):
    true_meshes = truth.meshes(truth.weights)
    add(
      "reconstruction/vertex_error_mm",
      mm * aligned_vertex_error(vertices[index], true_meshes).mean(),
    )
    add(
      "reconstruction/neutral_error_mm",
      mm * aligned_vertex_error(neutral[index][None], truth.neutral[None])[0],
    )
    add("reconstruction/expression_error_mm", mm * _mean_distance(
      vertices[index] - neutral[index], truth.displacement(truth.weights)))  # fmt: skip
    add("tracking/weight_error", np.abs(weights[index] - truth.weights).mean())
    moved, static = _correction_motion(weights[index], person.blendshape_corrections[index])
    add("model/correction_mm", mm * moved)
    add("model/correction_static_share", static)
    # Retargeting: this user's tracked weights drive the next user's model.
    target = (index + 1) % len(truths)
    other = jax.tree.map(lambda x, t=target: jnp.asarray(x[t]), person)
    driven = np.asarray(rig.frame_shape(state.arrays, other, jnp.asarray(weights[index])))
    driven_neutral = np.asarray(rig.neutral_shape(state.arrays, other))
    wanted = truths[target].meshes(truth.weights)
    add("retargeting/vertex_error_mm", mm * aligned_vertex_error(driven, wanted).mean())
    add("retargeting/expression_error_mm", mm * _mean_distance(
      driven - driven_neutral, truths[target].displacement(truth.weights)))  # fmt: skip
    add("data/expression_displacement_mm", mm * np.linalg.norm(
      truth.displacement(truth.weights), axis=-1).mean())  # fmt: skip
    residual, floor = _generic_floor(model, truth)
    add("data/identity_specific_pct", 100.0 * residual)
    add("data/generic_floor_mm", mm * floor)
  return {name: float(np.mean(values)) for name, values in sums.items()}


def weight_correlation(predicted: np.ndarray, true: np.ndarray) -> float:
  """The mean over blendshapes of the Pearson correlation of predicted and true weights (N, Ke)
  across N frames; blendshapes whose true weight never changes are left out (nan if all are)."""
  predicted, true = np.asarray(predicted, np.float64), np.asarray(true, np.float64)
  if predicted.shape != true.shape or predicted.ndim != 2:
    raise ValueError(f"weights must both be (N, Ke), got {predicted.shape} and {true.shape}")
  varying = true.std(axis=0) > 0
  if not varying.any():
    return float("nan")
  a = predicted[:, varying] - predicted[:, varying].mean(axis=0)
  b = true[:, varying] - true[:, varying].mean(axis=0)
  denominator = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
  # A constant prediction carries no information about the expression: correlation 0.
  r = np.where(denominator > 0, (a * b).sum(axis=0) / np.where(denominator > 0, denominator, 1), 0)
  return float(r.mean())


def _correction_motion(weights: np.ndarray, corrections: np.ndarray) -> tuple[float, float]:
  """What the learnt corrections add to a user's frames, c_t = sum_k w_tk dB_k: its mean vertex
  length and the share of its energy that is the same in every frame, |mean_t c_t|^2 /
  mean_t |c_t|^2 (1: the corrections act as a fixed shape offset, i.e. identity; 0 when none)."""
  motion = np.einsum("tk,kvd->tvd", weights, np.asarray(corrections))  # (F, V, 3)
  energy = float(np.mean(np.sum(motion**2, axis=-1)))
  if energy == 0.0:
    return 0.0, 0.0
  static = float(np.mean(np.sum(motion.mean(axis=0) ** 2, axis=-1))) / energy
  return float(np.linalg.norm(motion, axis=-1).mean()), static


def _generic_floor(model, truth: Truth) -> tuple[float, float]:
  """The identity-specific share and the best generic rig's expression error, over the frames."""
  residuals, floors = [], []
  basis = np.asarray(model.expression_basis)
  for weights in truth.weights:
    if not np.any(weights):
      continue
    fitted = personal.generic_fit(model, truth.rig, weights)
    residuals.append(personal.generic_fit_residual(model, truth.rig, weights))
    wanted = truth.displacement(weights[None])[0]
    floors.append(_mean_distance(np.einsum("k,kvd->vd", fitted, basis), wanted))
  if not residuals:
    return 0.0, 0.0
  return float(np.mean(residuals)), float(np.mean(floors))


#: Blendshapes shown in the summaries' blendshape grid (those that move the face most).
SUMMARY_BLENDSHAPES = 8


@functools.partial(jax.jit, static_argnames=("size", "distance"))
def _frontal_grey(arrays, meshes: jax.Array, size: int, distance: float) -> jax.Array:
  """(N, V, 3) face-frame meshes seen frontally at `distance` face heights, grey."""
  count, height = meshes.shape[0], jnp.ptp(arrays.mean[:, 1])
  track = networks.Track(
    jnp.broadcast_to(jnp.eye(3), (count, 3, 3)),
    jnp.broadcast_to(jnp.asarray([0.0, 0.0, -distance]) * height, (count, 3)),
    jnp.zeros((count, 1)), jnp.zeros((count, 27)),
  )  # fmt: skip
  return grey_render(meshes, arrays.triangles, networks.cameras(track, size), size, height)


def blendshape_meshes(state: State, person, truth: Truth | None) -> np.ndarray:
  """Rows of the user's most moving blendshapes at weight 1 on their neutral: the generic B_k,
  the learnt B_k + dB_k and (given `truth`) the true ones on the true neutral: (R x 8, V, 3)."""
  basis = np.asarray(state.arrays.expression_basis)
  chosen = np.argsort(-np.linalg.norm(basis, axis=-1).mean(-1))[:SUMMARY_BLENDSHAPES]
  neutral = np.asarray(rig.neutral_shape(state.arrays, person))
  personal = np.asarray(rig.blendshapes(state.arrays, person))
  rows = [neutral + basis[chosen], neutral + personal[chosen]]
  if truth is not None:
    rows.append(truth.neutral + (basis + truth.rig.shape_corrections)[chosen])
  return np.concatenate(rows)


def summaries(state: State, batch, config) -> dict:
  """Image grids of a few users' frames (input, reconstruction, overlay), the first user's
  blendshapes (generic / learnt / true on an evaluation batch) and their first frame's mesh."""
  config = frozen(config)
  pc = config.personalized
  images = np.asarray(batch["image"])
  evaluation_batch = images.dtype == np.uint8  # whole sequences, with their ground truth
  if evaluation_batch:
    images = images.astype(np.float32) / 255.0
  count = min(int(pc.eval.num_summaries), images.shape[0])
  images = images[:count]
  ids = model_frame_ids(images.shape[1], int(pc.eval_frames_per_user))
  out = jax.device_get(reconstruct(state, jnp.asarray(images[:, ids]), jnp.asarray(images), config))
  size = images.shape[2]
  frames = images.reshape(-1, size, size, 3)
  mask = out["mask"][..., None] > 0.5
  first = jax.tree.map(lambda x: jnp.asarray(x[0]), out["person"])
  truth = None
  if evaluation_batch:
    example = {key: np.asarray(batch[key])[0] for key in ("identity", "expression")}
    truth = Truth(load_model(str(config.data.model)), example, float(config.data.personal_strength))
  shapes = blendshape_meshes(state, first, truth)
  distance = float(pc.nominal_distance)
  return {
    "input": frames,
    "reconstruction": np.clip(out["image"], 0.0, 1.0),
    "overlay": np.where(mask, 0.5 * frames + 0.5 * np.clip(out["image"], 0, 1), frames),
    "blendshapes": np.asarray(_frontal_grey(state.arrays, jnp.asarray(shapes), size, distance)),
    "reconstruction_mesh": (out["vertices"][0, 0], np.asarray(state.arrays.triangles)),
  }
