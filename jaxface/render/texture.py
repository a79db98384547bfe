"""UV textures: bilinear lookup, sampling at mesh vertices, and unwrapping an image into UV space.

UV convention (docs/architecture.md): u left to right over texture columns,
v bottom to top, texel (i, j) centred at u = (j + 0.5) / W, v = 1 - (i + 0.5) / H.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxface.render.rasterize import Fragments, clip_to_screen


def bilinear(image: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
  """Samples image (H, W, C) at continuous pixel coordinates (centres at i + 0.5).

  x, y: (...) column and row coordinates; out-of-range samples clamp to the
  edge. Returns (..., C); differentiable w.r.t. the image and x, y.
  """
  height, width = image.shape[:2]
  fx = x - 0.5
  fy = y - 0.5
  x0 = jnp.floor(fx)
  y0 = jnp.floor(fy)
  wx = (fx - x0)[..., None]
  wy = (fy - y0)[..., None]
  x0 = x0.astype(jnp.int32)
  y0 = y0.astype(jnp.int32)
  xs = (jnp.clip(x0, 0, width - 1), jnp.clip(x0 + 1, 0, width - 1))
  ys = (jnp.clip(y0, 0, height - 1), jnp.clip(y0 + 1, 0, height - 1))
  top = image[ys[0], xs[0]] * (1 - wx) + image[ys[0], xs[1]] * wx
  bottom = image[ys[1], xs[0]] * (1 - wx) + image[ys[1], xs[1]] * wx
  return top * (1 - wy) + bottom * wy


def sample_texture(texture: jax.Array, uv: jax.Array) -> jax.Array:
  """Bilinear lookup of texture (Ht, Wt, C) at uv (..., 2) -> (..., C), clamped at the edges."""
  texture = jnp.asarray(texture)
  uv = jnp.asarray(uv)
  if texture.ndim != 3:
    raise ValueError(f"texture must have shape (Ht, Wt, C), got {texture.shape}")
  if uv.shape[-1] != 2:
    raise ValueError(f"uv must have shape (..., 2), got {uv.shape}")
  height, width = texture.shape[:2]
  return bilinear(texture, uv[..., 0] * width, (1.0 - uv[..., 1]) * height)


class VertexUVTable(NamedTuple):
  """Each vertex's distinct texture coordinates (a pytree of arrays).

  A vertex on a UV seam has several (one per side of the cut). Attributes:
    uv_ids: (V, M) int32 ids into the model's uv array, padded with 0.
    weights: (V, M) float32, 1 / (the vertex's count) on its ids, 0 on padding.
  """

  uv_ids: jax.Array
  weights: jax.Array


def vertex_uv_table(triangles: np.ndarray, triangle_uv: np.ndarray, num_vertices: int):
  """The `VertexUVTable` of a mesh's per-corner UVs; ValueError for a vertex no corner uses."""
  triangles, triangle_uv = np.asarray(triangles), np.asarray(triangle_uv)
  if triangles.shape != triangle_uv.shape:
    raise ValueError(
      f"triangles {triangles.shape} and triangle_uv {triangle_uv.shape} must have one uv per corner"
    )
  pairs = np.unique(np.stack([triangles.ravel(), triangle_uv.ravel()], axis=1), axis=0)
  counts = np.bincount(pairs[:, 0], minlength=num_vertices)
  if (counts == 0).any():
    raise ValueError(f"vertex {int(np.argmin(counts))} is in no triangle: it has no uv")
  width = int(counts.max())
  slot = np.arange(len(pairs)) - np.searchsorted(pairs[:, 0], pairs[:, 0])
  uv_ids = np.zeros((num_vertices, width), np.int32)
  weights = np.zeros((num_vertices, width), np.float32)
  uv_ids[pairs[:, 0], slot] = pairs[:, 1]
  weights[pairs[:, 0], slot] = 1.0 / counts[pairs[:, 0]]
  return VertexUVTable(jnp.asarray(uv_ids), jnp.asarray(weights))


def sample_at_vertices(texture: jax.Array, uv: jax.Array, table: VertexUVTable) -> jax.Array:
  """A UV map's value at every vertex: texture (Ht, Wt, C), uv (T, 2) -> (V, C).

  A seam vertex takes the mean over its texture coordinates, so a map that
  disagrees across a cut gives the vertex the average of both sides.
  """
  samples = sample_texture(texture, jnp.asarray(uv)[table.uv_ids])  # (V, M, C)
  return jnp.einsum("vm,vmc->vc", table.weights, samples)


def unwrap(
  image: jax.Array,
  fragments: Fragments,
  vertices_clip: jax.Array,
  triangles: jax.Array,
  texel_triangle: jax.Array,
  texel_barycentric: jax.Array,
  depth_slack: float = 1.0,
) -> tuple[jax.Array, jax.Array]:
  """Reprojects an image into UV space: texture (Hu, Wu, C) and visibility (Hu, Wu).

  Each texel's surface point (its UV triangle and barycentrics, from
  `jaxface.geometry.uv_texel_lookup`) is projected into the image and
  sampled bilinearly. A texel is visible when it faces the camera, lands
  inside the image with all four bilinear taps on covered pixels, and is not
  behind the surface at its pixel by more than the depth its own triangle
  spans over `depth_slack` pixels. This is how 3DFaceFill gets the partial UV albedo of a photo.

  Args:
    image: (H, W, C) picture that was rendered (or photographed) from the view.
    fragments: the rasterization of the same mesh and view (unbatched).
    vertices_clip: (V, 4) clip coordinates of that view.
    triangles: (F, 3) vertex ids.
    texel_triangle: (Hu, Wu) triangle of each texel, -1 outside the chart.
    texel_barycentric: (Hu, Wu, 3) the texel's barycentrics in its triangle.
    depth_slack: tolerance in pixels of the depth test.
  """
  height, width = fragments.triangle_id.shape
  screen = jnp.stack(clip_to_screen(vertices_clip, (height, width)), axis=-1)  # (V, 4)
  clip_corners = jnp.asarray(vertices_clip)[
    triangles[jnp.maximum(texel_triangle, 0)]
  ]  # (Hu, Wu, 3, 4)
  # Barycentrics are 3D (affine) weights, so interpolate in clip space, then divide.
  clip = jnp.einsum("uvk,uvkc->uvc", texel_barycentric, clip_corners)
  w = jnp.where(clip[..., 3] > 1e-8, clip[..., 3], 1.0)
  x = (clip[..., 0] / w + 1.0) * (0.5 * width)
  y = (1.0 - clip[..., 1] / w) * (0.5 * height)
  z = clip[..., 2] / w
  # The texel triangle's screen-space depth slope bounds how far the depth
  # may differ at the nearest pixel centre on the same surface.
  corners = screen[triangles[jnp.maximum(texel_triangle, 0)]]  # (Hu, Wu, 3, 4)
  ex1 = corners[..., 1, :] - corners[..., 0, :]
  ex2 = corners[..., 2, :] - corners[..., 0, :]
  area = ex1[..., 0] * ex2[..., 1] - ex1[..., 1] * ex2[..., 0]
  safe_area = jnp.where(area != 0, area, 1.0)
  dz_dx = (ex1[..., 2] * ex2[..., 1] - ex2[..., 2] * ex1[..., 1]) / safe_area
  dz_dy = (ex2[..., 2] * ex1[..., 0] - ex1[..., 2] * ex2[..., 0]) / safe_area
  tolerance = depth_slack * (jnp.abs(dz_dx) + jnp.abs(dz_dy)) + 1e-6
  column = jnp.clip(jnp.floor(x).astype(jnp.int32), 0, width - 1)
  row = jnp.clip(jnp.floor(y).astype(jnp.int32), 0, height - 1)
  inside_image = (x >= 0) & (x < width) & (y >= 0) & (y < height)
  surface_depth = fragments.depth[row, column]
  front_facing = area < 0  # counter-clockwise in NDC is clockwise in pixels
  # All four bilinear taps must be on the face, or the sample mixes in
  # background at silhouettes.
  tap_x = jnp.floor(x - 0.5).astype(jnp.int32)
  tap_y = jnp.floor(y - 0.5).astype(jnp.int32)
  taps_covered = jnp.ones_like(inside_image)
  for dy in (0, 1):
    for dx in (0, 1):
      tap_row = jnp.clip(tap_y + dy, 0, height - 1)
      tap_column = jnp.clip(tap_x + dx, 0, width - 1)
      taps_covered &= fragments.mask[tap_row, tap_column]
  visible = (
    (texel_triangle >= 0)
    & inside_image
    & taps_covered
    & front_facing
    & (z <= surface_depth + tolerance)
  )
  texture = bilinear(jnp.asarray(image), x, y)
  texture = jnp.where(visible[..., None], texture, 0.0)
  return texture, visible
