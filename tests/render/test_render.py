"""render(): one call from a textured face to image, mask, depth, normals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxface.geometry import (
  OrthographicCamera,
  PerspectiveCamera,
  WeakPerspectiveCamera,
  euler_to_matrix,
  focal_from_fov,
  triangle_neighbors,
)
from jaxface.render import dc_only_coefficients, render

SIZE = (64, 56)


def _perspective(yaw=0.3):
  focal = float(focal_from_fov(20.0, SIZE[0]))
  return PerspectiveCamera(
    jnp.array([focal, focal]),
    jnp.array([SIZE[1] / 2, SIZE[0] / 2]),
    euler_to_matrix(jnp.array([0.0, yaw, 0.0])),
    jnp.array([0.0, 0.0, -70.0]),
  )


def _render(model, camera, **kwargs):
  options = dict(uv=model.uv, triangle_uv=model.triangle_uv, albedo=model.albedo_mean,
                 sh_coefficients=dc_only_coefficients(1.0))  # fmt: skip
  options.update(kwargs)
  return jax.jit(lambda v, c: render(v, model.triangles, c, SIZE, **options))(
    jnp.asarray(model.vertices), camera
  )


def test_outputs(procedural):
  out = _render(procedural, _perspective(), background=0.25)
  mask = np.asarray(out.mask).astype(bool)
  assert out.image.shape == (*SIZE, 3) and 0.2 < mask.mean() < 0.9
  np.testing.assert_allclose(np.asarray(out.image)[~mask], 0.25)
  # DC light of irradiance 1: the face shows its albedo.
  np.testing.assert_allclose(np.asarray(out.image)[mask], np.asarray(out.albedo)[mask], atol=1e-5)
  depth = np.asarray(out.depth)[mask]
  assert depth.min() > 55 and depth.max() < 75  # cm from a camera 70 cm from the origin
  normals = np.asarray(out.normals)[mask]
  np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=1e-4)
  assert np.mean(normals[:, 2] > 0) > 0.97  # camera frame: visible surfaces face +z


def test_batched_equals_single(procedural):
  cameras = [_perspective(yaw) for yaw in (-0.4, 0.5)]
  batch_camera = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *cameras)
  vertices = jnp.stack([jnp.asarray(procedural.vertices)] * 2)
  sh = jnp.stack([dc_only_coefficients(1.0), dc_only_coefficients(0.5)])
  options = dict(
    uv=procedural.uv, triangle_uv=procedural.triangle_uv, albedo=procedural.albedo_mean
  )
  batched = jax.jit(
    lambda v, c: render(v, procedural.triangles, c, SIZE, sh_coefficients=sh, **options)
  )(vertices, batch_camera)
  for index, camera in enumerate(cameras):
    single = _render(procedural, camera, sh_coefficients=sh[index])
    np.testing.assert_allclose(batched.image[index], single.image, atol=1e-5)
    np.testing.assert_array_equal(
      batched.fragments.triangle_id[index], single.fragments.triangle_id
    )


def test_orthographic_and_weak_perspective_cameras(procedural):
  # A weak-perspective camera of NDC scale s is an orthographic camera of
  # s W / 2 and s H / 2 pixels per cm centred on the image: same picture.
  rotation = euler_to_matrix(jnp.array([0.0, 0.2, 0.0]))
  scale = 0.09
  weak = WeakPerspectiveCamera(jnp.array(scale), jnp.zeros(2), rotation)
  ortho = OrthographicCamera(
    jnp.array([scale * SIZE[1] / 2, scale * SIZE[0] / 2]),
    jnp.array([SIZE[1] / 2, SIZE[0] / 2]),
    rotation,
    jnp.array([0.0, 0.0, -50.0]),
  )
  ortho_out = _render(procedural, ortho)
  weak_out = _render(procedural, weak)
  assert 0.2 < float(ortho_out.mask.mean()) < 0.95
  ids_ortho = np.asarray(ortho_out.fragments.triangle_id)
  ids_weak = np.asarray(weak_out.fragments.triangle_id)
  assert (ids_ortho == ids_weak).mean() > 0.999
  np.testing.assert_allclose(weak_out.image, ortho_out.image, atol=1e-3)


def test_antialias_option_gives_silhouette_gradients(procedural):
  camera = _perspective()
  neighbors = triangle_neighbors(procedural.triangles)

  def silhouette_loss(offset, **kwargs):
    vertices = jnp.asarray(procedural.vertices) + offset
    out = render(vertices, procedural.triangles, camera, SIZE, uv=procedural.uv,
                 triangle_uv=procedural.triangle_uv, albedo=procedural.albedo_mean,
                 sh_coefficients=dc_only_coefficients(1.0), background=1.0, **kwargs)  # fmt: skip
    return jnp.sum(out.image)

  shift = jnp.zeros(3)
  plain = jax.jit(jax.grad(lambda o: silhouette_loss(o)))(shift)
  smooth = jax.jit(jax.grad(lambda o: silhouette_loss(o, antialias_neighbors=neighbors)))(shift)
  # Translating the face sideways changes how much white background shows;
  # only the antialiased image knows that.
  assert abs(float(smooth[0])) > abs(float(plain[0])) + 1.0


def test_bad_input(procedural):
  with pytest.raises(ValueError, match=r"\(V, 3\)"):
    render(jnp.zeros((5, 2)), procedural.triangles, _perspective(), SIZE, uv=procedural.uv,
           triangle_uv=procedural.triangle_uv, albedo=procedural.albedo_mean,
           sh_coefficients=dc_only_coefficients())  # fmt: skip
