"""A person's face model as the modeling network builds it, and how frames and puppets use it.

Plain jnp, jit/vmap/grad-safe. The personal model of one user (`Person`) is
the morphable model's identity plus per-user corrections read off UV maps:

  neutral     S_0 = mean + B_id alpha + dS_0                    (V, 3)
  blendshape  B_k + dB_k                                          (Ke, V, 3)
  a frame     S(w) = S_0 + sum_k w_k (B_k + dB_k)
  albedo      A(w) = clip(A_static + sum_k w_k dA_k, 0, 1)        (Hu, Wu, 3)

with w the tracking network's blendshape weights for that frame. The UV
maps of dS_0 and dB_k are sampled at the vertices through the model's UV
layout (`jaxface.render.texture.sample_at_vertices`: a vertex on a seam
takes the mean of its texture coordinates); dA_k stays a UV map, as the
renderer reads albedo in UV space.

The generic rig is the same person with dB_k = 0 and dA_k = 0 (what the
baseline of the paper's comparison is); `Person.generic()` makes it.

Retargeting (the paper's applications): a user's tracked weights drive
another user's `Person` unchanged (their blendshapes share the semantics
of the generic rig), or an external puppet's blendshapes matched by ARKit
name (`match_blendshapes`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxface.geometry.laplacian import unique_edges
from jaxface.morphable.model import MorphableModel, mm_per_unit
from jaxface.render.texture import VertexUVTable, sample_at_vertices, vertex_uv_table


class RigArrays(NamedTuple):
  """The morphable model as the method uses it (checkpointed with the state, never trained).

  Attributes:
    mean: (V, 3) mean shape, centred on its own vertex mean (as the data renders faces).
    identity_basis: (Ki, V, 3); expression_basis: (Ke, V, 3) the generic blendshapes B_k.
    triangles: (F, 3) int32; landmarks: (68,) int32 vertex ids.
    uv: (T, 2) texture coordinates; triangle_uv: (F, 3) their corner ids.
    uv_table: each vertex's texture coordinates (`VertexUVTable`).
    albedo_mean: (Hu, Wu, 3) the model's mean albedo at the decoders' UV size.
    edges: (E, 2) int32 the mesh's edges (for the blendshape-gradient term).
    cm_per_unit: () centimetres per model length unit.
  """

  mean: jax.Array
  identity_basis: jax.Array
  expression_basis: jax.Array
  triangles: jax.Array
  landmarks: jax.Array
  uv: jax.Array
  triangle_uv: jax.Array
  uv_table: VertexUVTable
  albedo_mean: jax.Array
  edges: jax.Array
  cm_per_unit: jax.Array


def rig_arrays(model: MorphableModel, num_identity: int, uv_size: int) -> RigArrays:
  """The first `num_identity` identity modes and all blendshapes of `model`, albedo at `uv_size`."""
  vertices = np.asarray(model.vertices, np.float32)
  albedo = jax.image.resize(
    jnp.asarray(model.albedo_mean, jnp.float32), (uv_size, uv_size, 3), "linear", antialias=True
  )
  return RigArrays(
    mean=jnp.asarray(vertices - vertices.mean(0)),
    identity_basis=jnp.asarray(model.identity_basis, jnp.float32)[:num_identity],
    expression_basis=jnp.asarray(model.expression_basis, jnp.float32),
    triangles=jnp.asarray(model.triangles, jnp.int32),
    landmarks=jnp.asarray(model.landmarks, jnp.int32),
    uv=jnp.asarray(model.uv, jnp.float32),
    triangle_uv=jnp.asarray(model.triangle_uv, jnp.int32),
    uv_table=vertex_uv_table(model.triangles, model.triangle_uv, model.num_vertices),
    albedo_mean=jnp.clip(albedo, 0.0, 1.0),
    edges=jnp.asarray(unique_edges(np.asarray(model.triangles)), jnp.int32),
    cm_per_unit=jnp.asarray(mm_per_unit(model.units) / 10.0, jnp.float32),
  )


class Person(NamedTuple):
  """One user's personal model (leading batch axes allowed on every field).

  Attributes:
    identity: (Ki,) identity coefficients alpha.
    neutral_correction: (V, 3) dS_0, model units.
    blendshape_corrections: (Ke, V, 3) dB_k, model units.
    albedo: (Hu, Wu, 3) static UV albedo A_static.
    dynamic_albedo: (Ke, Hu, Wu, 3) dA_k.
  """

  identity: jax.Array
  neutral_correction: jax.Array
  blendshape_corrections: jax.Array
  albedo: jax.Array
  dynamic_albedo: jax.Array

  def generic(self) -> Person:
    """The same user on the generic rig: no blendshape corrections, no dynamic albedo."""
    return self._replace(
      blendshape_corrections=jnp.zeros_like(self.blendshape_corrections),
      dynamic_albedo=jnp.zeros_like(self.dynamic_albedo),
    )


def vertex_maps(maps: jax.Array, arrays: RigArrays) -> jax.Array:
  """UV maps (..., Hu, Wu, C) sampled at every vertex -> (..., V, C) (seams averaged)."""
  lead = maps.shape[:-3]
  flat = maps.reshape(-1, *maps.shape[-3:])
  sampled = jax.vmap(lambda texture: sample_at_vertices(texture, arrays.uv, arrays.uv_table))(flat)
  return sampled.reshape(*lead, *sampled.shape[1:])


def blendshape_support(arrays: RigArrays) -> jax.Array:
  """(Ke, V) where each generic blendshape moves the face: |B_k(x)| / max_x |B_k(x)| in [0, 1]."""
  magnitude = jnp.linalg.norm(arrays.expression_basis, axis=-1)
  return magnitude / jnp.maximum(magnitude.max(axis=-1, keepdims=True), 1e-12)


def person_from_maps(
  arrays: RigArrays,
  identity: jax.Array,
  shape_static: jax.Array,
  shape_dynamic: jax.Array,
  albedo_static: jax.Array,
  albedo_dynamic: jax.Array,
  support: jax.Array | None = None,
) -> Person:
  """The `Person` of the modeling network's outputs.

  Args:
    identity: (..., Ki) identity coefficients.
    shape_static: (..., Hu, Wu, 3) dS_0 in cm; shape_dynamic: (..., Hu, Wu, Ke, 3) dB_k in cm.
    albedo_static: (..., Hu, Wu, 3) the static albedo's offset from the model's mean albedo.
    albedo_dynamic: (..., Hu, Wu, Ke, 3) dA_k.
    support: (Ke, V) factors the corrections dB_k are multiplied by at each vertex
      (`blendshape_support`: a correction only where its blendshape moves), or None.
  """
  to_units = 1.0 / arrays.cm_per_unit
  dynamic = jnp.moveaxis(shape_dynamic, -2, -4)  # (..., Ke, Hu, Wu, 3)
  corrections = to_units * vertex_maps(dynamic, arrays)  # (..., Ke, V, 3)
  if support is not None:
    corrections = corrections * support[..., None]
  return Person(
    identity=identity,
    neutral_correction=to_units * vertex_maps(shape_static, arrays),
    blendshape_corrections=corrections,
    albedo=jnp.clip(arrays.albedo_mean + albedo_static, 0.0, 1.0),
    dynamic_albedo=jnp.moveaxis(albedo_dynamic, -2, -4),
  )


def neutral_shape(arrays: RigArrays, person: Person) -> jax.Array:
  """S_0 = mean + B_id alpha + dS_0: (..., V, 3)."""
  return (
    arrays.mean
    + jnp.einsum("...i,ivd->...vd", person.identity, arrays.identity_basis)
    + person.neutral_correction
  )


def blendshapes(arrays: RigArrays, person: Person) -> jax.Array:
  """The user's blendshapes B_k + dB_k: (..., Ke, V, 3)."""
  return arrays.expression_basis + person.blendshape_corrections


def frame_shape(arrays: RigArrays, person: Person, weights: jax.Array) -> jax.Array:
  """S(w) = S_0 + sum_k w_k (B_k + dB_k).

  Args:
    person: one user's fields with leading axes (...).
    weights: (..., N, Ke) blendshape weights of N frames.
  Returns:
    (..., N, V, 3) the frames' meshes.
  """
  expression = jnp.einsum("...nk,...kvd->...nvd", weights, blendshapes(arrays, person))
  return neutral_shape(arrays, person)[..., None, :, :] + expression


def frame_albedo(person: Person, weights: jax.Array) -> jax.Array:
  """A(w) = clip(A_static + sum_k w_k dA_k): (..., N, Hu, Wu, 3) for weights (..., N, Ke)."""
  dynamic = jnp.einsum("...nk,...khwc->...nhwc", weights, person.dynamic_albedo)
  return jnp.clip(person.albedo[..., None, :, :, :] + dynamic, 0.0, 1.0)


class BlendshapeMatch(NamedTuple):
  """How a source rig's blendshapes drive a target's (`match_blendshapes`).

  Attributes:
    mapping: (Ks, Kt) float32, target weights = source weights @ mapping.
    matched: (Kt,) bool, whether some source blendshape drives that target one.
    unmatched_source: names of the source that drive nothing.
    unmatched_target: names of the target that nothing drives (kept at weight 0).
  """

  mapping: np.ndarray
  matched: np.ndarray
  unmatched_source: tuple[str, ...]
  unmatched_target: tuple[str, ...]


SIDES = ("_L", "_R")


def _sideless(name: str) -> str:
  return name[:-2] if name.endswith(SIDES) else name


def match_blendshapes(source: tuple[str, ...], target: tuple[str, ...]) -> BlendshapeMatch:
  """Matches ARKit blendshape names of a source rig to a target's.

  A target blendshape takes the source one of the same name. Failing that,
  a sided target ("mouthLowerDown_L") takes the source's unsided one
  ("mouthLowerDown"), and an unsided target ("browInnerUp") the mean of the
  source's two sides (or the one side it has). Names compare
  case-sensitively, as ARKit spells them.
  """
  source, target = tuple(source), tuple(target)
  index = {name: i for i, name in enumerate(source)}
  mapping = np.zeros((len(source), len(target)), np.float32)
  for j, name in enumerate(target):
    if name in index:
      mapping[index[name], j] = 1.0
    elif _sideless(name) != name and _sideless(name) in index:
      mapping[index[_sideless(name)], j] = 1.0
    else:
      sides = [index[name + side] for side in SIDES if name + side in index]
      mapping[sides, j] = 1.0 / max(len(sides), 1)
  matched = mapping.any(axis=0)
  drives = mapping.any(axis=1)
  return BlendshapeMatch(
    mapping=mapping,
    matched=matched,
    unmatched_source=tuple(name for i, name in enumerate(source) if not drives[i]),
    unmatched_target=tuple(name for j, name in enumerate(target) if not matched[j]),
  )


def retarget_weights(weights: jax.Array, match: BlendshapeMatch) -> jax.Array:
  """Source weights (..., Ks) -> the target's (..., Kt); unmatched target blendshapes get 0."""
  return weights @ jnp.asarray(match.mapping)
