"""The personal model against direct sums, UV sampling at seam vertices against brute force, and
blendshape-name matching for retargeting."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jaxface.methods.personalized import rig
from jaxface.morphable import load as load_model
from jaxface.render.texture import vertex_uv_table


@pytest.fixture(scope="module")
def procedural():
  return load_model("procedural")


@pytest.fixture(scope="module")
def arrays(procedural):
  return rig.rig_arrays(procedural, num_identity=8, uv_size=16)


def _random_person(arrays, seed: int = 0) -> rig.Person:
  rng = np.random.default_rng(seed)
  ke, v = arrays.expression_basis.shape[:2]
  size = arrays.albedo_mean.shape[0]
  return rig.Person(
    identity=jnp.asarray(rng.normal(size=arrays.identity_basis.shape[0]), jnp.float32),
    neutral_correction=jnp.asarray(0.1 * rng.normal(size=(v, 3)), jnp.float32),
    blendshape_corrections=jnp.asarray(0.1 * rng.normal(size=(ke, v, 3)), jnp.float32),
    albedo=jnp.asarray(rng.uniform(0.2, 0.8, (size, size, 3)), jnp.float32),
    dynamic_albedo=jnp.asarray(0.05 * rng.normal(size=(ke, size, size, 3)), jnp.float32),
  )


def test_frame_shape_and_albedo_match_the_direct_sum_over_blendshapes(arrays):
  person = _random_person(arrays)
  weights = np.random.default_rng(1).uniform(0, 1, (3, arrays.expression_basis.shape[0]))
  meshes = np.asarray(rig.frame_shape(arrays, person, jnp.asarray(weights, jnp.float32)))
  albedos = np.asarray(rig.frame_albedo(person, jnp.asarray(weights, jnp.float32)))
  mean, id_basis = np.asarray(arrays.mean, np.float64), np.asarray(arrays.identity_basis)
  neutral = mean + np.asarray(person.neutral_correction)
  for i, alpha in enumerate(np.asarray(person.identity)):
    neutral = neutral + alpha * id_basis[i]
  for frame, w in enumerate(weights):
    mesh, albedo = neutral.copy(), np.asarray(person.albedo, np.float64).copy()
    for k, weight in enumerate(w):
      mesh += weight * (
        np.asarray(arrays.expression_basis[k]) + np.asarray(person.blendshape_corrections[k])
      )
      albedo += weight * np.asarray(person.dynamic_albedo[k])
    np.testing.assert_allclose(meshes[frame], mesh, atol=2e-4)
    np.testing.assert_allclose(albedos[frame], np.clip(albedo, 0, 1), atol=1e-5)


def test_the_generic_rig_drops_only_the_corrections(arrays):
  person = _random_person(arrays)
  generic = person.generic()
  assert not np.any(generic.blendshape_corrections) and not np.any(generic.dynamic_albedo)
  np.testing.assert_array_equal(generic.neutral_correction, person.neutral_correction)
  weights = jnp.zeros((1, arrays.expression_basis.shape[0]))
  np.testing.assert_allclose(  # at w = 0 a personal and a generic rig are the same face
    rig.frame_shape(arrays, person, weights), rig.frame_shape(arrays, generic, weights)
  )


def test_uv_maps_are_sampled_at_every_corner_of_a_seam_vertex(arrays):
  # Two triangles sharing the edge (1, 2), cut along it in UV: vertices 1 and 2 have one
  # texture coordinate on each side of the seam.
  triangles = np.array([[0, 1, 2], [1, 3, 2]])
  triangle_uv = np.array([[0, 1, 2], [3, 4, 5]])
  uv = np.array([[0.1, 0.1], [0.4, 0.1], [0.1, 0.4], [0.6, 0.2], [0.9, 0.6], [0.7, 0.8]])
  seamed = arrays._replace(
    uv=jnp.asarray(uv, jnp.float32), uv_table=vertex_uv_table(triangles, triangle_uv, 4)
  )
  # A map linear in u and v is sampled exactly by bilinear lookup away from the borders.
  size = 64
  centres = (np.arange(size) + 0.5) / size
  u_map = np.broadcast_to(centres[None, :], (size, size))
  v_map = np.broadcast_to(1.0 - centres[:, None], (size, size))
  maps = np.stack([u_map, v_map, np.ones((size, size))], axis=-1)[None]  # (1, H, W, 3)
  sampled = np.asarray(rig.vertex_maps(jnp.asarray(maps, jnp.float32), seamed))[0]
  corners = {0: [0], 1: [1, 3], 2: [2, 5], 3: [4]}
  for vertex, ids in corners.items():
    np.testing.assert_allclose(sampled[vertex, :2], uv[ids].mean(0), atol=1e-5)
  np.testing.assert_allclose(sampled[:, 2], 1.0, rtol=1e-6)
  assert not np.allclose(sampled[1, :2], uv[1])  # the seam vertex is not one side's value


def test_person_from_maps_converts_cm_to_model_units_and_offsets_the_mean_albedo(arrays):
  size, ke = arrays.albedo_mean.shape[0], arrays.expression_basis.shape[0]
  shape_static = np.zeros((1, size, size, 3), np.float32)
  shape_static[..., 1] = 0.5  # 0.5 cm up everywhere
  shape_dynamic = np.zeros((1, size, size, ke, 3), np.float32)
  shape_dynamic[..., 3, 0] = 1.0  # blendshape 3: 1 cm along x
  person = rig.person_from_maps(
    arrays, jnp.zeros((1, arrays.identity_basis.shape[0])), jnp.asarray(shape_static),
    jnp.asarray(shape_dynamic), jnp.full((1, size, size, 3), 0.1),
    jnp.zeros((1, size, size, ke, 3)),
  )  # fmt: skip
  per_cm = 1.0 / float(arrays.cm_per_unit)
  np.testing.assert_allclose(person.neutral_correction[0, :, 1], 0.5 * per_cm, rtol=1e-6)
  np.testing.assert_allclose(person.blendshape_corrections[0, 3, :, 0], per_cm, rtol=1e-6)
  assert not np.any(np.asarray(person.blendshape_corrections)[0, 2])
  np.testing.assert_allclose(person.albedo[0], np.clip(np.asarray(arrays.albedo_mean) + 0.1, 0, 1))
  assert person.dynamic_albedo.shape == (1, ke, size, size, 3)


def test_blendshape_names_match_exactly_or_across_sides():
  source = ("jawOpen", "mouthLowerDown", "eyeBlink_L", "eyeBlink_R", "tongueOut")
  target = (
    "eyeBlink_R",
    "jawOpen",
    "mouthLowerDown_L",
    "mouthLowerDown_R",
    "eyeBlink",
    "cheekPuff",
  )
  match = rig.match_blendshapes(source, target)
  np.testing.assert_array_equal(match.matched, [True, True, True, True, True, False])
  assert match.unmatched_target == ("cheekPuff",)
  assert match.unmatched_source == ("tongueOut",)
  weights = jnp.asarray([[0.1, 0.2, 0.3, 0.5, 0.9]])
  # eyeBlink_R <- 0.5, jawOpen <- 0.1, both mouthLowerDown sides <- 0.2, eyeBlink <- mean(0.3, 0.5)
  np.testing.assert_allclose(
    rig.retarget_weights(weights, match), [[0.5, 0.1, 0.2, 0.2, 0.4, 0.0]], rtol=1e-6
  )


def test_the_procedural_rig_drives_ict_facekit_by_name(procedural, ict_model):
  to_ict = rig.match_blendshapes(procedural.expression_names, ict_model.expression_names)
  assert not to_ict.unmatched_source  # every procedural blendshape drives ICT
  # ICT's gaze and lip-press shapes have no procedural counterpart: listed, kept at 0.
  assert set(to_ict.unmatched_target) == {
    *(f"eyeLook{d}_{s}" for d in ("Down", "In", "Out", "Up") for s in "LR"),
    "mouthClose", "mouthPress_L", "mouthPress_R",
  }  # fmt: skip
  from_ict = rig.match_blendshapes(ict_model.expression_names, procedural.expression_names)
  assert from_ict.matched.all()  # ICT's sided browInnerUp_L/_R average into browInnerUp
  column = procedural.expression_names.index("browInnerUp")
  rows = [ict_model.expression_names.index(f"browInnerUp_{s}") for s in "LR"]
  np.testing.assert_allclose(from_ict.mapping[rows, column], 0.5)


def test_retargeting_a_rig_to_itself_reproduces_its_tracked_mesh(procedural, arrays):
  person = _random_person(arrays, seed=3)
  weights = jnp.asarray(np.random.default_rng(4).uniform(0, 1, (2, procedural.num_expression)))
  match = rig.match_blendshapes(procedural.expression_names, procedural.expression_names)
  assert match.matched.all() and not match.unmatched_source
  np.testing.assert_array_equal(rig.retarget_weights(weights, match), weights)
  np.testing.assert_array_equal(
    rig.frame_shape(arrays, person, rig.retarget_weights(weights, match)),
    rig.frame_shape(arrays, person, weights),
  )


def test_corrections_can_be_confined_to_where_their_blendshape_moves(arrays):
  support = np.asarray(rig.blendshape_support(arrays))  # (Ke, V)
  magnitude = np.linalg.norm(np.asarray(arrays.expression_basis), axis=-1)
  np.testing.assert_allclose(support.max(axis=1), 1.0, rtol=1e-6)
  expected = magnitude / magnitude.max(axis=1, keepdims=True)
  np.testing.assert_allclose(support, expected, rtol=1e-5, atol=1e-7)
  assert (support[magnitude == 0] == 0).all() and (magnitude == 0).any()
  size, ke = arrays.albedo_mean.shape[0], arrays.expression_basis.shape[0]
  maps = (
    jnp.zeros((1, arrays.identity_basis.shape[0])), jnp.zeros((1, size, size, 3)),
    jnp.ones((1, size, size, ke, 3)), jnp.zeros((1, size, size, 3)),
    jnp.zeros((1, size, size, ke, 3)),
  )  # fmt: skip
  free = rig.person_from_maps(arrays, *maps)
  confined = rig.person_from_maps(arrays, *maps, support=jnp.asarray(support))
  np.testing.assert_allclose(
    confined.blendshape_corrections, free.blendshape_corrections * support[None, ..., None],
    rtol=1e-6,
  )  # fmt: skip
  assert np.all(np.asarray(confined.blendshape_corrections)[0][magnitude == 0] == 0)
