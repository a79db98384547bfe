"""Inverse warping: identity for identical views, a homography for a pure rotation; depth maps
and co-visibility against trimesh's ray casting."""

import jax.numpy as jnp
import numpy as np
import trimesh

from jaxface.geometry import PerspectiveCamera, euler_to_matrix
from jaxface.render import covisibility, depth_map, warp

SIZE = (40, 48)


def _camera(rotation=None):
  rotation = np.eye(3) if rotation is None else rotation
  return PerspectiveCamera(
    jnp.array([50.0, 50.0]),
    jnp.array([24.0, 20.0]),
    jnp.asarray(rotation, jnp.float32),
    jnp.zeros(3),
  )


def _ramp():
  rows, cols = np.meshgrid(np.arange(SIZE[0]) + 0.5, np.arange(SIZE[1]) + 0.5, indexing="ij")
  return np.stack([0.01 * cols, 0.02 * rows, 0.005 * (cols + rows)], axis=-1).astype(np.float32)


def test_identical_views_give_the_identity():
  image = np.random.default_rng(0).uniform(0, 1, (*SIZE, 3)).astype(np.float32)
  depth = np.random.default_rng(1).uniform(20, 40, SIZE).astype(np.float32)
  warped, valid = warp(jnp.asarray(image), jnp.asarray(depth), _camera(), _camera())
  assert np.asarray(valid).all()
  np.testing.assert_allclose(warped, image, atol=1e-4)


def test_pure_rotation_matches_the_analytic_homography():
  # Rotating the camera about its centre maps pixels by K R K^-1, whatever
  # the depth; a linear ramp is reproduced exactly by bilinear sampling.
  rotation = np.asarray(euler_to_matrix(jnp.array([0.05, -0.08, 0.03])))
  depth = np.random.default_rng(2).uniform(20, 40, SIZE).astype(np.float32)
  ramp = _ramp()
  warped, valid = warp(jnp.asarray(ramp), jnp.asarray(depth), _camera(), _camera(rotation))
  valid = np.asarray(valid)
  assert 0.5 < valid.mean() < 1.0
  rows, cols = np.meshgrid(np.arange(SIZE[0]) + 0.5, np.arange(SIZE[1]) + 0.5, indexing="ij")
  # Ray of each source pixel in the camera frame (y up, looking along -z).
  rays = np.stack([(cols - 24.0) / 50.0, -(rows - 20.0) / 50.0, -np.ones_like(cols)], axis=-1)
  turned = rays @ rotation.T
  x2 = 24.0 + 50.0 * turned[..., 0] / -turned[..., 2]
  y2 = 20.0 - 50.0 * turned[..., 1] / -turned[..., 2]
  expected = np.stack([0.01 * x2, 0.02 * y2, 0.005 * (x2 + y2)], axis=-1)
  interior = valid & (x2 > 1) & (x2 < SIZE[1] - 1) & (y2 > 1) & (y2 < SIZE[0] - 1)
  np.testing.assert_allclose(np.asarray(warped)[interior], expected[interior], atol=1e-4)
  # Points that leave the target image are invalid.
  outside = (x2 < 0) | (x2 > SIZE[1]) | (y2 < 0) | (y2 > SIZE[0])
  assert not valid[outside].any()


# ------------------------------------------------------------------------ depth_map, covisibility

FACE_SIZE = (48, 48)


def _face_camera(yaw_degrees: float, focal: float = 90.0):
  rotation = euler_to_matrix(jnp.deg2rad(jnp.array([0.0, yaw_degrees, 0.0])))
  return PerspectiveCamera(
    jnp.array([focal, focal]), jnp.array([24.0, 24.0]), rotation, jnp.array([0.0, 1.0, -60.0])
  )


def _face(procedural):
  vertices = np.asarray(procedural.vertices)
  return vertices - vertices.mean(0), np.asarray(procedural.triangles)


def _first_hits(vertices, triangles, origins, directions):
  """Ray parameter t (hit = origin + t * direction) of the first surface each ray meets (inf for a
  miss), by trimesh."""
  mesh = trimesh.Trimesh(vertices, triangles, process=False)
  locations, ray_ids, _ = mesh.ray.intersects_location(origins, directions, multiple_hits=True)
  distance = np.full(len(origins), np.inf)
  along = np.einsum("ij,ij->i", locations - origins[ray_ids], directions[ray_ids])
  along /= np.einsum("ij,ij->i", directions[ray_ids], directions[ray_ids])
  np.minimum.at(distance, ray_ids, along)
  return distance


def _pixel_rays(camera):
  rows, cols = np.mgrid[0 : FACE_SIZE[0], 0 : FACE_SIZE[1]] + 0.5
  focal, centre = np.asarray(camera.focal), np.asarray(camera.principal_point)
  local = np.stack(
    [(cols - centre[0]) / focal[0], -(rows - centre[1]) / focal[1], -np.ones_like(cols)], -1
  ).reshape(-1, 3)
  rotation, translation = np.asarray(camera.rotation), np.asarray(camera.translation)
  origin = -rotation.T @ translation
  directions = local @ rotation  # R^T d for row vectors
  return np.broadcast_to(origin, directions.shape).copy(), directions


def test_depth_map_matches_ray_casting(procedural):
  vertices, triangles = _face(procedural)
  camera = _face_camera(25.0)
  depth, mask = depth_map(jnp.asarray(vertices), triangles, camera, FACE_SIZE)
  origins, directions = _pixel_rays(camera)
  # Ray parameter t along d = (x, y, -1) in the camera frame is exactly the camera depth.
  hits = _first_hits(vertices, triangles, origins, directions).reshape(FACE_SIZE)
  depth, mask = np.asarray(depth), np.asarray(mask)
  hit = np.isfinite(hits)
  assert (mask == hit).mean() > 0.99  # silhouette pixels may differ at the edge test
  both = mask & hit
  assert both.sum() > 300
  np.testing.assert_allclose(depth[both], hits[both], rtol=1e-3)
  assert (depth[~mask] == 0).all()


def test_covisibility_matches_ray_casting_on_a_self_occluding_pose(procedural):
  vertices, triangles = _face(procedural)
  source, target = _face_camera(-20.0), _face_camera(55.0)  # the nose hides part of a cheek
  depth_1, mask_1 = depth_map(jnp.asarray(vertices), triangles, source, FACE_SIZE)
  depth_2, mask_2 = depth_map(jnp.asarray(vertices), triangles, target, FACE_SIZE)
  # 0.6 units: eq. 13's 0.05 in multiview_depth's normalised depth of this model (a = -0.085).
  seen = np.asarray(covisibility(depth_1, depth_2, source, target, 0.6, mask_1, mask_2))
  # Reference: cast a ray from camera 2's centre to each view-1 surface point.
  rows, cols = np.nonzero(np.asarray(mask_1))
  pixels = np.stack([cols + 0.5, rows + 0.5], -1)
  points = np.asarray(source.unproject(jnp.asarray(pixels), np.asarray(depth_1)[rows, cols]))
  centre = -np.asarray(target.rotation).T @ np.asarray(target.translation)
  offsets = points - centre
  distance = np.linalg.norm(offsets, axis=-1)
  hits = _first_hits(vertices, triangles, np.broadcast_to(centre, points.shape).copy(),
                     offsets / distance[:, None])  # fmt: skip
  projected, _ = target.project(jnp.asarray(points))
  projected = np.asarray(projected)
  inside = (
    (projected >= 0).all(-1) & (projected[:, 0] <= FACE_SIZE[1]) & (projected[:, 1] <= FACE_SIZE[0])
  )
  truth = inside & (hits >= distance - 0.3)
  hidden_fraction = 1.0 - truth.mean()
  assert 0.05 < hidden_fraction < 0.6, hidden_fraction  # the pose does self-occlude
  agreement = (seen[rows, cols] == truth).mean()
  # Grazing surfaces of view 2 are the misses: bilinear depth there is off by more than the
  # threshold. A hidden point called seen (what would corrupt a photo loss) stays rare.
  assert agreement > 0.88, agreement
  assert (seen[rows, cols] & ~truth).mean() < 0.02
  assert not seen[~np.asarray(mask_1)].any()
