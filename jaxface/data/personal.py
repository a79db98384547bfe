"""Identity-specific expressions of synthetic people: the personal rig behind every generator.

A generic blendshape rig moves every face the same way for the same weight.
People do not: one person's smile lifts the cheeks more, another's creases
the eye corners, and expressions change the skin's colour (wrinkle shading,
flushing) in a way that differs from person to person. The personalized
paper (personalised blendshapes and dynamic albedo) can only be tested on
data where this holds, and the decoupled-GAN paper's identity / expression
disentanglement is only non-trivial when expression depends on identity. So
both come from here:

- `expression_response`: how strongly, and with which mix of blendshapes,
  a person makes an expression (a smooth non-linear function of the
  identity code, in weight space);
- `personal_rig`: per blendshape k, a correction dB_k (V, 3) of the generic
  blendshape B_k and an albedo change dA_k (Hu, Wu, 3), both smooth over
  the face and smooth non-linear functions of the identity code, so a
  generic rig cannot express them and a network that sees the person can
  learn them;
- `personal_shape` / `personal_albedo`: the composed mesh and albedo,
  shape = mean + B_id id + sum_k w_k (B_k + dB_k),
  albedo = A(a) + sum_k w_k dA_k;
- `generic_fit` / `generic_fit_residual`: the best generic-rig weights for
  a personal expression, and how much of it they miss (what
  "identity-specific" measures);
- `separable_residual_energy`: the energy of a personal expression outside
  the span of the model's identity and expression bases, which no separable
  identity + expression linear model on those bases reproduces.

Shape corrections (for blendshape k, at neutral vertex x with normal n):
dB_k(x) = s [(g_k(x) - 1) B_k(x) + h_k(x) |B_k(x)| n(x)], where g_k rescales
the blendshape's motion locally (+/- about 35%) and h_k bulges the skin
along the normal where the blendshape moves it. g_k and h_k are sums of
`NUM_FIELDS` fixed low-frequency fields of the face (wavelengths of 0.5 to
1 face height) with weights tanh(W code). dB_k lives where B_k moves, so a
neutral face is unchanged.

Albedo changes: dA_k(t) = activity_k(t) [r_k REDNESS - d_k crease_k(t)],
where activity_k is |B_k| (relative to its maximum) at texel t's point of
the neutral mesh, REDNESS an RGB flush, and crease_k a pattern of thin
dark lines across the blendshape's direction of motion (wrinkles), with
identity-dependent amounts r_k, d_k and crease phase.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import scipy.optimize

from jaxface.geometry.mesh import vertex_normals
from jaxface.geometry.uv import uv_texel_lookup
from jaxface.morphable.model import MorphableModel

#: Low-frequency fields per blendshape correction.
NUM_FIELDS = 6
#: The fixed seed of the rig's fields and code maps (every dataset shares one rig function).
RIG_SEED = 11
#: RGB change of a fully active flush (linear RGB: more red, a little less green and blue).
REDNESS = np.array([0.10, -0.03, -0.03], np.float32)
#: Darkening at the centre of a fully active crease.
CREASE_DEPTH = 0.18
#: Crease spacing in face heights.
CREASE_SPACING = 0.035


class PersonalRig(NamedTuple):
  """One person's corrections of the generic rig.

  Attributes:
    shape_corrections: (Ke, V, 3) dB_k, cm.
    albedo_changes: (Ke, Hu, Wu, 3) dA_k, linear RGB; (Ke, 1, 1, 3) zeros for a rig made
      with `albedo_strength=0` (they broadcast alike).
  """

  shape_corrections: np.ndarray
  albedo_changes: np.ndarray


def expression_response(code: np.ndarray, weights: np.ndarray, intensity: float) -> np.ndarray:
  """(Ke,) the weights with which the person of identity `code` makes expression `weights`.

  How strongly (intensity scaled by functions of the first two identity
  coefficients), with which mix of blendshapes (a per-blendshape factor
  that varies with the third) and how sharply (an exponent from the
  fourth); in [0, 1].
  """
  strength = intensity * (1.0 + 0.35 * np.tanh(code[0])) * (1.0 + 0.15 * np.sin(2.0 * code[1]))
  mix = 1.0 + 0.3 * np.sin(np.arange(len(weights)) + 1.5 * code[2 % len(code)])
  return np.clip(strength * weights * mix, 0.0, 1.0) ** (1.0 + 0.2 * np.tanh(code[3 % len(code)]))


def _face_frame(vertices: np.ndarray) -> np.ndarray:
  """(..., 3) points in face heights, centred on the neutral face's bounding box."""
  low, high = vertices.min(0), vertices.max(0)
  return (vertices - (low + high) / 2.0) / (high[1] - low[1])


def _fields(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """(..., NUM_FIELDS) smooth fields of face-frame points, each with values in [-1, 1]."""
  wavelength = rng.uniform(0.5, 1.0, NUM_FIELDS)
  direction = rng.normal(size=(NUM_FIELDS, 3))
  direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
  phase = rng.uniform(0, 2 * np.pi, NUM_FIELDS)
  return np.sin(2 * np.pi * (points @ direction.T) / wavelength + phase)


def _code_map(rng: np.random.Generator, outputs: tuple[int, ...], num_identity: int) -> np.ndarray:
  """A fixed random linear map of identity codes, scaled so W code is about unit-variance."""
  return rng.normal(size=(*outputs, num_identity)) / np.sqrt(num_identity)


class _RigBasis(NamedTuple):
  """What every person's rig of one model shares (see `_rig_basis`)."""

  basis: np.ndarray  # (Ke, V, 3) the generic blendshapes
  magnitude: np.ndarray  # (Ke, V) |B_k|
  normals: np.ndarray  # (V, 3) of the neutral mesh
  fields: np.ndarray  # (V, J)
  activity: np.ndarray  # (Ke, Hu, Wu) |B_k| / max |B_k| at each texel's point
  across: np.ndarray  # (Ke, Hu, Wu) texel position along B_k's motion, in crease spacings
  maps: dict[str, np.ndarray]  # fixed linear maps of the identity code


_BASES: dict[int, tuple[MorphableModel, _RigBasis]] = {}


def _rig_basis(model: MorphableModel) -> _RigBasis:
  """The identity-independent part of the rig, computed once per model object."""
  cached = _BASES.get(id(model))
  if cached is not None and cached[0] is model:
    return cached[1]
  rng = np.random.default_rng(RIG_SEED)
  ke, ki = model.num_expression, model.num_identity
  vertices = np.asarray(model.vertices, np.float64)
  basis = np.asarray(model.expression_basis, np.float64)
  points = _face_frame(vertices)
  fields = _fields(points, rng)
  maps = {
    "scale": _code_map(rng, (ke, NUM_FIELDS), ki), "bulge": _code_map(rng, (ke, NUM_FIELDS), ki),
    "flush": _code_map(rng, (ke,), ki), "crease": _code_map(rng, (ke,), ki),
    "phase": _code_map(rng, (ke,), ki),
  }  # fmt: skip
  normals = np.asarray(vertex_normals(jnp.asarray(vertices), jnp.asarray(model.triangles)))
  magnitude = np.linalg.norm(basis, axis=-1)
  triangle_id, barycentric = uv_texel_lookup(
    np.asarray(model.uv), np.asarray(model.triangle_uv), model.albedo_mean.shape[:2]
  )
  corners = np.asarray(model.triangles)[np.maximum(triangle_id, 0)]  # (Hu, Wu, 3)
  covered = triangle_id >= 0
  peak = np.maximum(magnitude.max(-1, keepdims=True), 1e-12)
  activity = np.einsum("hwc,khwc->khw", barycentric, (magnitude / peak)[:, corners]) * covered
  texel_points = np.einsum("hwc,hwcd->hwd", barycentric, points[corners])
  motion = np.einsum("kv,kvd->kd", magnitude, basis)  # each blendshape's main direction
  motion /= np.maximum(np.linalg.norm(motion, axis=-1, keepdims=True), 1e-12)
  across = np.einsum("hwd,kd->khw", texel_points, motion) / CREASE_SPACING
  basis_parts = _RigBasis(basis, magnitude, normals, fields, activity, across, maps)
  _BASES[id(model)] = (model, basis_parts)
  return basis_parts


def personal_rig(
  model: MorphableModel,
  code: np.ndarray,
  *,
  shape_strength: float = 1.0,
  albedo_strength: float = 1.0,
) -> PersonalRig:
  """The corrections of identity `code` (Ki,) (see the module docstring); 0 strengths: none."""
  code = np.asarray(code, np.float64)
  if code.shape != (model.num_identity,):
    raise ValueError(f"identity code must have shape ({model.num_identity},), got {code.shape}")
  parts = _rig_basis(model)
  maps = parts.maps
  spread = 0.35 / np.sqrt(NUM_FIELDS)
  scale = spread * np.tanh(maps["scale"] @ code) @ parts.fields.T  # (Ke, V)
  bulge = spread * np.tanh(maps["bulge"] @ code) @ parts.fields.T
  corrections = shape_strength * (
    scale[..., None] * parts.basis + (bulge * parts.magnitude)[..., None] * parts.normals[None]
  )
  if albedo_strength == 0:  # broadcasts like the full (Ke, Hu, Wu, 3) zeros, without its cost
    changes = np.zeros((len(corrections), 1, 1, 3), np.float32)
    return PersonalRig(corrections.astype(np.float32), changes)
  phase = np.pi * np.tanh(maps["phase"] @ code)[:, None, None]
  crease = np.cos(np.pi * parts.across + phase) ** 8  # thin dark lines, (Ke, Hu, Wu)
  flush = 0.5 * (1.0 + np.tanh(maps["flush"] @ code))  # (Ke,) in [0, 1]
  depth = 0.5 * (1.0 + np.tanh(maps["crease"] @ code))
  changes = (
    albedo_strength
    * parts.activity[..., None]
    * (
      flush[:, None, None, None] * REDNESS
      - (depth[:, None, None] * CREASE_DEPTH * crease)[..., None]
    )
  )
  return PersonalRig(corrections.astype(np.float32), changes.astype(np.float32))


def personal_shape(model: MorphableModel, rig: PersonalRig, identity, expression) -> np.ndarray:
  """(V, 3) mean + B_id id + sum_k w_k (B_k + dB_k)."""
  expression = np.asarray(expression, np.float32)
  generic = np.asarray(model.shape(identity, expression))
  return generic + np.einsum("k,kvd->vd", expression, rig.shape_corrections)


def personal_albedo(model: MorphableModel, rig: PersonalRig, coefficients, expression):
  """(Hu, Wu, 3) A(a) + sum_k w_k dA_k, clipped to [0, 1]."""
  expression = np.asarray(expression, np.float32)
  generic = np.asarray(model.albedo(coefficients))
  return np.clip(generic + np.einsum("k,khwc->hwc", expression, rig.albedo_changes), 0.0, 1.0)


def _displacement(model: MorphableModel, rig: PersonalRig, expression):
  """The generic basis (Ke, 3V) and the personal displacement sum_k w_k (B_k + dB_k) (3V,)."""
  expression = np.asarray(expression, np.float64)
  basis = np.asarray(model.expression_basis, np.float64).reshape(model.num_expression, -1)
  corrections = np.asarray(rig.shape_corrections, np.float64).reshape(basis.shape)
  return basis, expression @ (basis + corrections)


_QR: dict[int, tuple[MorphableModel, np.ndarray, np.ndarray]] = {}


def _basis_qr(model: MorphableModel, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The reduced QR of the generic basis (3V, Ke), computed once per model object."""
  cached = _QR.get(id(model))
  if cached is None or cached[0] is not model:
    cached = (model, *np.linalg.qr(basis.T))
    _QR[id(model)] = cached
  return cached[1], cached[2]


def generic_fit(model: MorphableModel, rig: PersonalRig, expression) -> np.ndarray:
  """(Ke,) the generic-rig weights in [0, 1] closest (least squares) to a personal expression.

  The personal displacement sum_k w_k (B_k + dB_k) fitted by sum_k v_k B_k:
  the best the generic-rig baseline can do for that expression. Solved on
  the basis's QR factor (Ke x Ke), which has the same minimisers as the
  full 3V-row problem; the minimiser need not be unique (nearly collinear
  blendshapes), the residual is.
  """
  basis, target = _displacement(model, rig, expression)
  if not np.any(target):
    return np.zeros(model.num_expression)
  q, r = _basis_qr(model, basis)
  fitted = scipy.optimize.lsq_linear(r, q.T @ target, bounds=(0.0, 1.0), method="bvls").x
  return np.clip(fitted, 0.0, 1.0)  # BVLS may step past a bound by rounding (-1e-19 seen)


def generic_fit_residual(model: MorphableModel, rig: PersonalRig, expression) -> float:
  """The share of a personal expression's displacement that no generic rig weights reproduce.

  |residual| / |displacement| of `generic_fit` (0 when `w` is 0).
  """
  basis, target = _displacement(model, rig, expression)
  norm = np.linalg.norm(target)
  if norm == 0.0:
    return 0.0
  fitted = generic_fit(model, rig, expression)
  return float(np.linalg.norm(basis.T @ fitted - target) / norm)


_JOINT_SPAN: dict[int, tuple[MorphableModel, np.ndarray]] = {}


def separable_residual_energy(model: MorphableModel, rig: PersonalRig, expression):
  """(outside, total): the squared norm of a personal expression's displacement sum_k w_k
  (B_k + dB_k) outside span(B_id, B_exp) (unbounded least squares on both bases), and its
  squared norm. outside / total is the share of the expression's energy that no separable
  linear model on the model's bases can express, even with a free identity per mesh."""
  cached = _JOINT_SPAN.get(id(model))
  if cached is None or cached[0] is not model:
    identity = np.asarray(model.identity_basis, np.float64).reshape(model.num_identity, -1)
    basis = np.asarray(model.expression_basis, np.float64).reshape(model.num_expression, -1)
    # An orthonormal basis of the span by SVD, dropping the directions of singular values below
    # numpy's least-squares cutoff (the bases may be nearly dependent, where QR keeps noise).
    u, singular, _ = np.linalg.svd(np.concatenate([identity, basis]).T, full_matrices=False)
    keep = singular > np.finfo(np.float64).eps * max(u.shape) * singular[0]
    cached = (model, u[:, keep])
    _JOINT_SPAN[id(model)] = cached
  q = cached[1]
  _, target = _displacement(model, rig, expression)
  residual = target - q @ (q.T @ target)  # not total - |projection|^2, which cancels
  return float(residual @ residual), float(target @ target)
