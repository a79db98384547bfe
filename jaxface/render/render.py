"""`render`: one call from a textured mesh, a camera and SH light to images."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxface.geometry.camera import WeakPerspectiveCamera
from jaxface.geometry.mesh import safe_normalize, vertex_normals
from jaxface.render.antialias import antialias as antialias_pass
from jaxface.render.interpolate import interpolate
from jaxface.render.rasterize import Fragments, rasterize
from jaxface.render.shading import lambertian
from jaxface.render.texture import sample_texture


class RenderOutput(NamedTuple):
  """Everything `render` produces; (H, W, ...) fields, or (B, H, W, ...).

  Attributes:
    image: (H, W, 3) shaded colour composited over the background.
    mask: (H, W) float 1 on the face, 0 on background (antialiased edges
      stay binary here).
    depth: (H, W) camera depth (-z_camera, or NDC depth for a
      weak-perspective camera); 0 on background.
    normals: (H, W, 3) unit normals in the camera frame; 0 on background.
    albedo: (H, W, 3) albedo looked up from the UV texture; 0 on background.
    uv: (H, W, 2) interpolated texture coordinates.
    fragments: the rasterizer's output.
  """

  image: jax.Array
  mask: jax.Array
  depth: jax.Array
  normals: jax.Array
  albedo: jax.Array
  uv: jax.Array
  fragments: Fragments


def _camera_depth(camera, vertices: jax.Array, image_size) -> jax.Array:
  if isinstance(camera, WeakPerspectiveCamera):
    return camera.to_ndc(vertices)[..., 2]
  return camera.project(vertices)[1]


def _clip(camera, vertices, image_size, near, far):
  if isinstance(camera, WeakPerspectiveCamera):
    return camera.to_clip(vertices, image_size)
  return camera.to_clip(vertices, image_size, near=near, far=far)


def _render_single(
  vertices,
  camera,
  albedo_texture,
  sh_coefficients,
  *,
  triangles,
  uv,
  triangle_uv,
  image_size,
  background,
  near,
  far,
  cull_backfaces,
  max_candidates,
  neighbors,
  sh_frame,
):
  clip = _clip(camera, vertices, image_size, near, far)  # (V, 4)
  fragments = rasterize(
    clip, triangles, image_size, cull_backfaces=cull_backfaces, max_candidates=max_candidates
  )
  mask = fragments.mask
  world_normals = vertex_normals(vertices, triangles)  # (V, 3)
  rotation = camera.rotation
  camera_normals = world_normals @ jnp.swapaxes(rotation, -1, -2)  # R n, row vectors
  normals = safe_normalize(interpolate(camera_normals, fragments, triangles))
  depth = interpolate(_camera_depth(camera, vertices, image_size)[:, None], fragments, triangles)[
    ..., 0
  ]
  pixel_uv = interpolate(uv, fragments, triangle_uv)  # (H, W, 2)
  albedo = jnp.where(mask[..., None], sample_texture(albedo_texture, pixel_uv), 0.0)
  if sh_frame == "world":
    light_normals = safe_normalize(interpolate(world_normals, fragments, triangles))
  else:
    light_normals = normals
  shaded = lambertian(albedo, light_normals, sh_coefficients)
  image = jnp.where(mask[..., None], shaded, background)
  if neighbors is not None:
    image = antialias_pass(image, fragments, clip, triangles, neighbors)
  return RenderOutput(
    image=image,
    mask=mask.astype(image.dtype),
    depth=jnp.where(mask, depth, 0.0),
    normals=jnp.where(mask[..., None], normals, 0.0),
    albedo=albedo,
    uv=pixel_uv,
    fragments=fragments,
  )


def render(
  vertices: jax.Array,
  triangles: jax.Array,
  camera,
  image_size: tuple[int, int],
  *,
  uv: jax.Array,
  triangle_uv: jax.Array,
  albedo: jax.Array,
  sh_coefficients: jax.Array,
  background: jax.Array | float = 0.0,
  near: float = 1.0,
  far: float = 1000.0,
  cull_backfaces: bool = False,
  max_candidates: int | None = None,
  antialias_neighbors: jax.Array | None = None,
  sh_frame: str = "camera",
  batch_mode: str = "map",
) -> RenderOutput:
  """Renders a textured mesh under spherical-harmonics light.

  Args:
    vertices: (V, 3) or (B, V, 3) world positions.
    triangles: (F, 3) vertex ids.
    camera: a Perspective/Orthographic/WeakPerspectiveCamera; batched
      leaves (leading B) for batched vertices.
    image_size: (H, W).
    uv: (T, 2) texture coordinates and triangle_uv (F, 3) their corner ids
      (a MorphableModel's `uv` and `triangle_uv`).
    albedo: (Hu, Wu, 3) UV albedo, or (B, Hu, Wu, 3).
    sh_coefficients: (27,) or (B, 27), see `jaxface.render.shading`.
    background: colour where nothing is rendered, scalar, (3,) or (H, W, 3).
    near, far: clip planes of perspective/orthographic cameras.
    cull_backfaces: skip triangles facing away from the camera.
    max_candidates: rasterizer work buffer; see `rasterize`.
    antialias_neighbors: (F, 3) from `jaxface.geometry.triangle_neighbors`
      to turn on the silhouette antialias pass (gradients at silhouettes).
    sh_frame: "camera" (light fixed to the camera, as Deep3DFaceRecon and
      3DFaceFill) or "world" (light fixed to the scene: views of one face
      see the same shading, as multi-view photo-consistency needs).
    batch_mode: "map" (CPU) or "vmap" (accelerators) over the batch.
  """
  if sh_frame not in ("camera", "world"):
    raise ValueError(f"sh_frame must be 'camera' or 'world', got {sh_frame!r}")
  vertices = jnp.asarray(vertices)
  if vertices.ndim not in (2, 3) or vertices.shape[-1] != 3:
    raise ValueError(f"vertices must have shape (V, 3) or (B, V, 3), got {vertices.shape}")
  image_size = (int(image_size[0]), int(image_size[1]))
  options = dict(
    triangles=jnp.asarray(triangles, jnp.int32),
    uv=jnp.asarray(uv),
    triangle_uv=jnp.asarray(triangle_uv, jnp.int32),
    image_size=image_size,
    background=jnp.asarray(background, vertices.dtype),
    near=near,
    far=far,
    cull_backfaces=cull_backfaces,
    max_candidates=max_candidates,
    neighbors=None if antialias_neighbors is None else jnp.asarray(antialias_neighbors, jnp.int32),
    sh_frame=sh_frame,
  )
  albedo = jnp.asarray(albedo)
  sh_coefficients = jnp.asarray(sh_coefficients)
  if vertices.ndim == 2:
    return _render_single(vertices, camera, albedo, sh_coefficients, **options)
  batch = vertices.shape[0]
  albedo = jnp.broadcast_to(albedo, (batch, *albedo.shape[-3:]))
  sh_coefficients = jnp.broadcast_to(sh_coefficients, (batch, sh_coefficients.shape[-1]))
  single = lambda args: _render_single(*args, **options)
  if batch_mode == "map":
    return jax.lax.map(single, (vertices, camera, albedo, sh_coefficients))
  if batch_mode == "vmap":
    return jax.vmap(lambda *args: single(args))(vertices, camera, albedo, sh_coefficients)
  raise ValueError(f"batch_mode must be 'map' or 'vmap', got {batch_mode!r}")


def depth_map(
  vertices: jax.Array,
  triangles: jax.Array,
  camera,
  image_size: tuple[int, int],
  *,
  near: float = 1.0,
  far: float = 1000.0,
  max_candidates: int | None = None,
) -> tuple[jax.Array, jax.Array]:
  """The z-buffered camera depth of one mesh and its mask, without shading.

  Args:
    vertices: (V, 3) world positions.
    triangles: (F, 3) vertex ids.
    camera: a PerspectiveCamera or OrthographicCamera (unbatched).
    image_size: (H, W).
    near, far, max_candidates: as in `render`.

  Returns:
    depth (H, W): camera depth (-z_camera) of the nearest surface, 0 on
    background; mask (H, W) bool. Differentiable w.r.t. vertices and camera.
  """
  vertices = jnp.asarray(vertices)
  if vertices.ndim != 2 or vertices.shape[-1] != 3:
    raise ValueError(f"vertices must have shape (V, 3), got {vertices.shape}")
  if isinstance(camera, WeakPerspectiveCamera):
    raise ValueError("depth_map needs a perspective or orthographic camera (metric depth)")
  image_size = (int(image_size[0]), int(image_size[1]))
  triangles = jnp.asarray(triangles, jnp.int32)
  clip = camera.to_clip(vertices, image_size, near=near, far=far)  # (V, 4)
  fragments = rasterize(clip, triangles, image_size, max_candidates=max_candidates)
  depth = interpolate(camera.project(vertices)[1][:, None], fragments, triangles)[..., 0]
  return jnp.where(fragments.mask, depth, 0.0), fragments.mask
