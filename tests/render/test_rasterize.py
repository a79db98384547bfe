"""The rasterizer against a brute-force reference, trimesh ray casting and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import trimesh

from jaxface.geometry import PerspectiveCamera, euler_to_matrix, focal_from_fov
from jaxface.render import candidate_count, interpolate, rasterize
from tests.helpers import grid_mesh


def brute_force(clip, triangles, height, width):
  """Every pixel centre against every triangle, nearest NDC depth wins (float64)."""
  clip = np.asarray(clip, np.float64)
  ndc = clip[:, :3] / clip[:, 3:]
  x = (ndc[:, 0] + 1) * width / 2
  y = (1 - ndc[:, 1]) * height / 2
  py, px = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
  ids = np.full((height, width), -1)
  depth = np.full((height, width), np.inf)
  barycentric = np.zeros((height, width, 3))
  for index, (a, b, c) in enumerate(np.asarray(triangles)):
    if min(clip[a, 3], clip[b, 3], clip[c, 3]) <= 0:
      continue
    area = (x[b] - x[a]) * (y[c] - y[a]) - (y[b] - y[a]) * (x[c] - x[a])
    if area == 0:
      continue
    w0 = ((x[c] - x[b]) * (py - y[b]) - (y[c] - y[b]) * (px - x[b])) / area
    w1 = ((x[a] - x[c]) * (py - y[c]) - (y[a] - y[c]) * (px - x[c])) / area
    w2 = 1 - w0 - w1
    inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
    z = w0 * ndc[a, 2] + w1 * ndc[b, 2] + w2 * ndc[c, 2]
    nearer = inside & (z < depth)
    ids[nearer] = index
    depth[nearer] = z[nearer]
    # Perspective-correct weights: screen weights divided by w, renormalised.
    q = np.stack([w0 / clip[a, 3], w1 / clip[b, 3], w2 / clip[c, 3]], axis=-1)
    barycentric[nearer] = (q / q.sum(-1, keepdims=True))[nearer]
  return ids, depth, barycentric


def _camera(rng, size, distance=70.0, yaw=0.8):
  angles = rng.uniform([-0.4, -yaw, -0.3], [0.4, yaw, 0.3])
  focal = float(focal_from_fov(20.0, size))
  return PerspectiveCamera(
    jnp.array([focal, focal]),
    jnp.array([size / 2, size / 2]),
    euler_to_matrix(jnp.asarray(angles, jnp.float32)),
    jnp.array([0.0, -0.5, -distance]),
  )


def _compare(fragments, clip, triangles, size):
  ids, depth, barycentric = brute_force(clip, triangles, size, size)
  ours = np.asarray(fragments.triangle_id)
  agree = ours == ids
  assert agree.mean() >= 0.9999, f"{(~agree).sum()} of {agree.size} pixels differ"
  both = agree & (ids >= 0)
  np.testing.assert_allclose(np.asarray(fragments.depth)[both], depth[both], atol=1e-5)
  np.testing.assert_allclose(np.asarray(fragments.barycentric)[both], barycentric[both], atol=1e-5)
  assert np.all(np.isinf(np.asarray(fragments.depth)[ours < 0]))


def test_random_triangle_soup_matches_brute_force():
  rng = np.random.default_rng(0)
  size, num = 48, 60
  centres = rng.uniform(-1, 1, (num, 1, 3)) * np.array([1.2, 1.2, 0.9])
  corners = centres + rng.normal(0, 0.35, (num, 3, 3))
  w = rng.uniform(0.5, 3.0, (num, 3, 1))
  clip = np.concatenate([corners * w, w], axis=-1).reshape(-1, 4).astype(np.float32)
  triangles = np.arange(3 * num, dtype=np.int32).reshape(num, 3)
  fragments = jax.jit(lambda c: rasterize(c, triangles, (size, size)))(clip)
  assert int(fragments.overflow) == 0
  _compare(fragments, clip, triangles, size)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ict_face_at_random_poses_matches_brute_force(ict_model, seed):
  size = 64
  rng = np.random.default_rng(seed)
  camera = _camera(rng, size)
  vertices = jnp.asarray(ict_model.vertices) - jnp.array([0.0, 0.0, 5.0])
  clip = camera.to_clip(vertices, (size, size), near=10.0, far=200.0)
  fragments = rasterize(clip, ict_model.triangles, (size, size))
  assert int(fragments.overflow) == 0
  _compare(fragments, clip, ict_model.triangles, size)


def test_mask_agrees_with_trimesh_ray_casting(ict_model):
  size = 64
  camera = _camera(np.random.default_rng(4), size)
  vertices = np.asarray(ict_model.vertices, np.float64) - np.array([0.0, 0.0, 5.0])
  clip = camera.to_clip(jnp.asarray(vertices, jnp.float32), (size, size), near=10.0, far=200.0)
  mask = np.asarray(rasterize(clip, ict_model.triangles, (size, size)).mask)
  # One ray per pixel centre from the camera centre, in world coordinates.
  rows, cols = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
  pixels = jnp.asarray(np.stack([cols, rows], -1).reshape(-1, 2), jnp.float32)
  far_points = np.asarray(camera.unproject(pixels, jnp.full((size * size,), 100.0)), np.float64)
  origin = np.asarray(camera.unproject(pixels[:1], jnp.zeros((1,))), np.float64)[0]
  directions = far_points - origin
  mesh = trimesh.Trimesh(vertices, np.asarray(ict_model.triangles), process=False)
  hit = mesh.ray.intersects_any(np.repeat(origin[None], len(directions), 0), directions)
  agree = mask.reshape(-1) == hit
  assert agree.mean() >= 0.999, f"{(~agree).sum()} pixels differ"
  assert 0.2 < mask.mean() < 0.95


def test_shared_edges_and_vertices_on_pixel_centres_are_covered_exactly_once():
  # A fan of four triangles around a vertex that sits on a pixel centre,
  # its spokes running through pixel centres; the outer square is between
  # centres. Every centre inside must be owned by exactly one triangle.
  size = 16
  pixel_xy = np.array([[2.25, 2.25], [12.75, 2.25], [12.75, 12.75], [2.25, 12.75], [7.5, 7.5]])
  ndc = np.stack([pixel_xy[:, 0] / size * 2 - 1, 1 - pixel_xy[:, 1] / size * 2], axis=1)
  clip = np.concatenate([ndc, np.zeros((5, 1)), np.ones((5, 1))], axis=1).astype(np.float32)
  for triangles in (
    np.array([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]], np.int32),
    np.array([[4, 0, 1], [2, 4, 1], [4, 2, 3], [0, 4, 3]], np.int32),  # other corner orders
  ):
    for flip in (False, True):  # both screen orientations
      tris = triangles[:, ::-1] if flip else triangles
      ids = np.asarray(rasterize(clip, tris, (size, size)).triangle_id)
      assert (ids >= 0).sum() == 11 * 11, "a centre was dropped or the square leaked"
      # Each claimed centre lies in (or on the boundary of) the claiming triangle.
      reference, _, _ = brute_force(clip, tris, size, size)
      np.testing.assert_array_equal(ids >= 0, reference >= 0)


def test_overflow_is_counted_never_silent(ict_model):
  size = 64
  camera = _camera(np.random.default_rng(5), size)
  clip = camera.to_clip(jnp.asarray(ict_model.vertices), (size, size), near=10.0, far=200.0)
  needed = int(candidate_count(clip, ict_model.triangles, (size, size)))
  small = rasterize(clip, ict_model.triangles, (size, size), max_candidates=needed // 2)
  assert int(small.overflow) == needed - needed // 2
  exact = rasterize(clip, ict_model.triangles, (size, size), max_candidates=needed)
  assert int(exact.overflow) == 0
  default = rasterize(clip, ict_model.triangles, (size, size))
  np.testing.assert_array_equal(exact.triangle_id, default.triangle_id)


@pytest.mark.parametrize("size", [32, 128, 256])
def test_default_buffer_does_not_overflow_on_faces(ict_model, size):
  rng = np.random.default_rng(size)
  vertices = jnp.asarray(ict_model.vertices) - jnp.asarray(ict_model.vertices).mean(0)
  for _ in range(3):
    # From a small face in the frame to a close-up larger than the frame.
    camera = _camera(rng, size, distance=rng.uniform(45.0, 160.0), yaw=1.2)
    clip = camera.to_clip(vertices, (size, size), near=1.0, far=1000.0)
    assert int(rasterize(clip, ict_model.triangles, (size, size)).overflow) == 0


def test_backface_culling(ict_model):
  size = 48
  vertices = np.asarray(ict_model.vertices, np.float64)
  triangles = np.asarray(ict_model.triangles)
  focal = float(focal_from_fov(20.0, size))
  behind = PerspectiveCamera(
    jnp.array([focal, focal]),
    jnp.array([size / 2, size / 2]),
    euler_to_matrix(jnp.array([0.0, np.pi, 0.0])),
    jnp.array([0.0, 0.0, -70.0]),
  )
  clip = behind.to_clip(jnp.asarray(vertices, jnp.float32), (size, size), near=10.0, far=200.0)
  eye = np.asarray(behind.unproject(jnp.zeros((1, 2)), jnp.zeros((1,))))[0]
  # Facing the camera, independently: the outward normal points towards the eye.
  corners = vertices[triangles]
  normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
  facing = np.einsum("fd,fd->f", normals, eye - corners.mean(axis=1)) > 0
  plain = np.asarray(rasterize(clip, triangles, (size, size)).triangle_id)
  culled = np.asarray(rasterize(clip, triangles, (size, size), cull_backfaces=True).triangle_id)
  assert not facing[plain[plain >= 0]].all()  # from behind, the inside of the face shows
  assert facing[culled[culled >= 0]].all()
  assert (culled >= 0).sum() < 0.5 * (plain >= 0).sum()


def test_batch_modes_agree(procedural):
  size = 40
  rng = np.random.default_rng(6)
  cameras = [_camera(rng, size) for _ in range(3)]
  clips = jnp.stack(
    [c.to_clip(jnp.asarray(procedural.vertices), (size, size), 10.0, 200.0) for c in cameras]
  )
  run = jax.jit(
    lambda c, mode: rasterize(c, procedural.triangles, (size, size), batch_mode=mode),
    static_argnums=1,
  )
  by_map, by_vmap = run(clips, "map"), run(clips, "vmap")
  for index, clip in enumerate(clips):
    single = run(clip, "map")
    np.testing.assert_array_equal(by_map.triangle_id[index], single.triangle_id)
    np.testing.assert_array_equal(by_vmap.triangle_id[index], single.triangle_id)
    np.testing.assert_allclose(by_vmap.barycentric[index], single.barycentric, atol=1e-6)


def bent_sheet():
  """A 6 x 6 grid bent into a bowl facing +z, about 10 cm across (large triangles)."""
  vertices, triangles = grid_mesh(6, 6, size=10.0)
  vertices = vertices - np.array([5.0, 5.0, 0.0])
  vertices[:, 2] = -0.04 * (vertices[:, 0] ** 2 + vertices[:, 1] ** 2)
  return vertices, triangles


def test_photometric_gradient_matches_finite_differences_on_interior_pixels():
  size = 48
  vertices, triangles = bent_sheet()
  colours = np.random.default_rng(8).uniform(0, 1, (len(vertices), 3))
  camera = _camera(np.random.default_rng(7), size, distance=40.0, yaw=0.4)
  with jax.enable_x64(True):
    vertices = jnp.asarray(vertices, jnp.float64)
    camera = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), camera)
    colours = jnp.asarray(colours)

    def fragments(v):
      return rasterize(camera.to_clip(v, (size, size), 10.0, 200.0), triangles, (size, size))

    ids = np.asarray(fragments(vertices).triangle_id)
    # Interior pixels: the pixel and its 8 neighbours see the same triangle,
    # so small vertex moves do not change visibility there.
    padded = np.pad(ids, 1, constant_values=-2)
    same = ids >= 0
    for dy in (-1, 0, 1):
      for dx in (-1, 0, 1):
        same &= padded[1 + dy : 1 + dy + size, 1 + dx : 1 + dx + size] == ids
    assert same.sum() > 50
    weights = jnp.asarray(np.where(same, 1.0, 0.0))

    @jax.jit
    def loss(v):
      image = interpolate(colours, fragments(v), triangles)
      return jnp.sum(weights[..., None] * image * jnp.array([0.3, 0.5, 0.2]))

    gradient = np.asarray(jax.jit(jax.grad(loss))(vertices))
    step = 1e-5
    for vertex in np.unique(triangles[ids[same]]):
      for axis in range(3):
        offset = jnp.zeros_like(vertices).at[vertex, axis].set(step)
        numeric = (loss(vertices + offset) - loss(vertices - offset)) / (2 * step)
        np.testing.assert_allclose(gradient[vertex, axis], numeric, rtol=1e-5, atol=1e-7)
    assert np.abs(gradient).max() > 0


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match=r"\(V, 4\)"):
    rasterize(jnp.zeros((3, 3)), jnp.zeros((1, 3), jnp.int32), (8, 8))
  with pytest.raises(ValueError, match="image_size"):
    rasterize(jnp.zeros((3, 4)), jnp.zeros((1, 3), jnp.int32), (0, 8))
  with pytest.raises(ValueError, match="batch_mode"):
    rasterize(jnp.zeros((2, 3, 4)), jnp.zeros((1, 3), jnp.int32), (8, 8), batch_mode="pmap")
