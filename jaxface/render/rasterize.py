"""An exact, differentiable triangle rasterizer in plain JAX.

Algorithm (memory grows with the candidate budget ~ H*W, never with F*H*W):

1. Triangle setup: project to pixels, bounding box of pixel centres, and the
   number of candidate pixels per triangle.
2. Expand every triangle's box into one fixed-size candidate list
   (`cumsum` offsets + `jnp.repeat(..., total_repeat_length=N)`). Candidates
   beyond N are counted in `Fragments.overflow`, never dropped silently.
3. Edge test at pixel centres. Edge functions are evaluated in a canonical
   vertex order (lower id first) so two triangles sharing an edge compute
   bit-identical values; a centre exactly on an edge is decided as if it
   were nudged by an infinitesimal (e1, e2) (the top-left rule), so a centre
   on a shared edge or a shared vertex belongs to exactly one triangle.
4. Z-buffer with two scatter-min passes: the smallest NDC depth per pixel,
   then the smallest triangle id among the candidates at that depth (exact
   visibility, deterministic ties).
5. Barycentrics and depth are recomputed per pixel from the winning
   triangle's vertices (ids under `stop_gradient`), so autodiff gives the
   exact derivatives of perspective-correct barycentrics w.r.t. the vertices.

Conventions (docs/architecture.md): clip-space input, NDC x in [-1, 1] left to
right over columns, NDC y = +1 at the top of row 0, pixel centres at i + 0.5,
smaller NDC z is nearer. Triangles with a vertex at w <= 0 (behind the eye)
are skipped; there is no depth clipping otherwise.

Batches: `rasterize` takes (V, 4) or (B, V, 4). On CPU a `lax.map` over the
batch is faster than `vmap` (the per-image scatters stay small and
cache-resident; measured in benchmarks/render.py); `batch_mode="vmap"` is the
choice for accelerators, where one large scatter parallelises.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

_W_EPSILON = 1e-8


class Fragments(NamedTuple):
  """What the rasterizer saw at each pixel. Leading batch dims if batched.

  Attributes:
    triangle_id: (H, W) int32 visible triangle, -1 for background.
    barycentric: (H, W, 3) perspective-correct weights of the triangle's
      corners, differentiable w.r.t. vertex positions; 0 on background.
    depth: (H, W) NDC depth z/w of the visible surface; +inf on background.
    overflow: () int32 candidates that did not fit the work buffer. Non-zero
      means some coverage may be missing: re-run with a larger
      `max_candidates`.
  """

  triangle_id: jax.Array
  barycentric: jax.Array
  depth: jax.Array
  overflow: jax.Array

  @property
  def mask(self) -> jax.Array:
    """(H, W) bool: pixels covered by the mesh."""
    return self.triangle_id >= 0


def default_max_candidates(image_size: tuple[int, int], num_triangles: int) -> int:
  """Candidate budget: 4 candidates per pixel plus 2 per triangle.

  Bounding boxes over-cover their triangles about 2x and a head seen from
  the side covers some pixels twice (ear and cheek), so large images need up
  to ~3 H*W (measured worst case on ICT over random poses and close-ups:
  2.95 H*W at 1024x1024); at small images most triangles are below a pixel
  and cost at most a few candidates each, hence the F term. The worst
  observed use is about 0.75 of this budget; `benchmarks/render.py` prints
  the measurement.
  """
  height, width = image_size
  return int(4 * height * width + 2 * num_triangles + 1024)


def clip_to_screen(vertices_clip: jax.Array, image_size: tuple[int, int]):
  """Pixel x, y (y down), NDC z and clip w of each vertex: four (V,) arrays.

  Vertices at w <= 0 (behind the eye) get finite placeholder values; the
  rasterizer skips their triangles.
  """
  height, width = image_size
  w = vertices_clip[:, 3]
  safe_w = jnp.where(w > _W_EPSILON, w, 1.0)
  x = (vertices_clip[:, 0] / safe_w + 1.0) * (0.5 * width)
  y = (1.0 - vertices_clip[:, 1] / safe_w) * (0.5 * height)
  z = vertices_clip[:, 2] / safe_w
  return x, y, z, w


def _visibility(vertices_clip, triangles, image_size, cull_backfaces, max_candidates):
  """Steps 1-4: triangle id per pixel (H*W,) and the overflow count. No gradients."""
  height, width = image_size
  num_triangles = triangles.shape[0]
  num_pixels = height * width
  x, y, z, w = clip_to_screen(vertices_clip, image_size)
  tx, ty, tz = x[triangles], y[triangles], z[triangles]  # (F, 3) each
  # Pixel y runs down, so a triangle counter-clockwise in NDC is clockwise
  # here: front faces have negative pixel-space area.
  area = (tx[:, 1] - tx[:, 0]) * (ty[:, 2] - ty[:, 0]) - (ty[:, 1] - ty[:, 0]) * (
    tx[:, 2] - tx[:, 0]
  )
  valid = (
    jnp.all(w[triangles] > _W_EPSILON, axis=1)
    & (area != 0)
    & jnp.all(jnp.isfinite(tx + ty), axis=1)
  )
  if cull_backfaces:
    valid &= area < 0
  # Pixel (row, col) has its centre at (col + 0.5, row + 0.5).
  col0 = jnp.clip(jnp.ceil(jnp.min(tx, axis=1) - 0.5), 0, width).astype(jnp.int32)
  col1 = jnp.clip(jnp.floor(jnp.max(tx, axis=1) - 0.5), -1, width - 1).astype(jnp.int32)
  row0 = jnp.clip(jnp.ceil(jnp.min(ty, axis=1) - 0.5), 0, height).astype(jnp.int32)
  row1 = jnp.clip(jnp.floor(jnp.max(ty, axis=1) - 0.5), -1, height - 1).astype(jnp.int32)
  box_w = jnp.maximum(col1 - col0 + 1, 0)
  box_h = jnp.maximum(row1 - row0 + 1, 0)
  counts = jnp.where(valid, box_w * box_h, 0)  # (F,)
  total = jnp.sum(counts.astype(jnp.float32))  # float: an int32 sum could wrap
  starts = jnp.cumsum(counts) - counts

  # Step 2: one candidate per (triangle, pixel in its box).
  n = max_candidates
  candidate = jnp.arange(n, dtype=jnp.int32)
  tri = jnp.repeat(jnp.arange(num_triangles, dtype=jnp.int32), counts, total_repeat_length=n)
  in_list = candidate.astype(jnp.float32) < total
  local = candidate - starts[tri]
  width_of_box = jnp.maximum(box_w[tri], 1)
  col = col0[tri] + local % width_of_box
  row = row0[tri] + local // width_of_box
  px = col.astype(jnp.float32) + 0.5
  py = row.astype(jnp.float32) + 0.5

  # Step 3: edge functions in canonical order; edge k is opposite corner k.
  ids = triangles[tri]  # (N, 3)
  orientation = jnp.sign(area[tri])  # (N,), -1 for front faces
  inside = in_list
  edges = []
  for k in range(3):
    a, b = (k + 1) % 3, (k + 2) % 3
    id_a, id_b = ids[:, a], ids[:, b]
    forward = id_a < id_b
    lo = jnp.where(forward, id_a, id_b)
    hi = jnp.where(forward, id_b, id_a)
    dx = x[hi] - x[lo]
    dy = y[hi] - y[lo]
    value = dx * (py - y[lo]) - dy * (px - x[lo])
    direction = jnp.where(forward, 1.0, -1.0)  # a -> b in canonical terms
    value = direction * value
    dx, dy = direction * dx, direction * dy
    edges.append(value)
    # Inside means the same side as the triangle's area. A centre exactly on
    # an edge is decided as if it were nudged by (e1, e2), 0 < e2 << e1:
    # include it when the edge function grows along the nudge. Neighbours
    # see the same edge with opposite signs, so exactly one of them (or, at
    # a shared vertex, one triangle of the fan) owns the centre.
    signed = value * orientation
    grows = (orientation * -dy > 0) | ((dy == 0) & (orientation * dx > 0))
    inside &= (signed > 0) | ((signed == 0) & grows)
  edge_sum = edges[0] + edges[1] + edges[2]
  safe_sum = jnp.where(edge_sum != 0, edge_sum, 1.0)
  depth = (edges[0] * tz[tri, 0] + edges[1] * tz[tri, 1] + edges[2] * tz[tri, 2]) / safe_sum

  # Step 4: z-buffer, then the smallest id among the nearest candidates.
  pixel = jnp.where(inside, row * width + col, num_pixels)  # invalid -> dump slot
  depth = jnp.where(inside, depth, jnp.inf)
  nearest = jnp.full((num_pixels + 1,), jnp.inf, depth.dtype).at[pixel].min(depth)
  winner = jnp.where(inside & (depth == nearest[pixel]), tri, num_triangles)
  ids_buffer = jnp.full((num_pixels + 1,), num_triangles, jnp.int32).at[pixel].min(winner)
  triangle_id = jnp.where(ids_buffer[:num_pixels] < num_triangles, ids_buffer[:num_pixels], -1)
  overflow = jnp.maximum(total - n, 0.0)
  overflow = jnp.minimum(overflow, float(2**31 - 1)).astype(jnp.int32)
  return triangle_id, overflow


def _rasterize_single(vertices_clip, triangles, image_size, cull_backfaces, max_candidates):
  height, width = image_size
  triangle_id, overflow = _visibility(
    jax.lax.stop_gradient(vertices_clip), triangles, image_size, cull_backfaces, max_candidates
  )
  triangle_id = jax.lax.stop_gradient(triangle_id).reshape(height, width)
  mask = triangle_id >= 0
  # Step 5: differentiable barycentrics of the winner at each pixel centre,
  # straight from clip coordinates (2D homogeneous rasterization, Olano &
  # Greer 1997): the point sum_i b_i P_i of the triangle lies on the pixel's
  # ray when sum_i b_i (x_i - u w_i) = 0 and sum_i b_i (y_i - v w_i) = 0, so
  # b is the normalised cross product of those two coefficient vectors. This
  # is perspective-correct by construction and avoids dividing by w first,
  # which loses about 10x more float32 precision.
  corners = triangles[jnp.maximum(triangle_id, 0)]  # (H, W, 3)
  clip = vertices_clip[corners]  # (H, W, 3, 4), one gather
  v_ndc, u_ndc = jnp.meshgrid(
    1.0 - (2.0 * jnp.arange(height, dtype=clip.dtype) + 1.0) / height,
    (2.0 * jnp.arange(width, dtype=clip.dtype) + 1.0) / width - 1.0,
    indexing="ij",
  )
  a = clip[..., 0] - u_ndc[..., None] * clip[..., 3]  # (H, W, 3)
  b = clip[..., 1] - v_ndc[..., None] * clip[..., 3]
  weights = jnp.stack(
    [
      a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
      a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
      a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
    ],
    axis=-1,
  )
  total = jnp.sum(weights, axis=-1, keepdims=True)
  barycentric = weights / jnp.where(mask[..., None], total, 1.0)
  # NDC depth: interpolate clip z and w with the 3D weights, then divide.
  clip_z = jnp.sum(barycentric * clip[..., 2], axis=-1)
  clip_w = jnp.sum(barycentric * clip[..., 3], axis=-1)
  depth = clip_z / jnp.where(mask, clip_w, 1.0)
  return Fragments(
    triangle_id=triangle_id,
    barycentric=jnp.where(mask[..., None], barycentric, 0.0),
    depth=jnp.where(mask, depth, jnp.inf),
    overflow=overflow,
  )


def rasterize(
  vertices_clip: jax.Array,
  triangles: jax.Array,
  image_size: tuple[int, int],
  *,
  cull_backfaces: bool = False,
  max_candidates: int | None = None,
  batch_mode: str = "map",
) -> Fragments:
  """Rasterizes triangles given in clip space.

  Args:
    vertices_clip: (V, 4) or (B, V, 4) clip coordinates (x, y, z, w).
    triangles: (F, 3) int32 vertex ids.
    image_size: (H, W), static.
    cull_backfaces: skip triangles that are clockwise on screen (the
      counter-clockwise side faces the camera).
    max_candidates: size N of the work buffer; `default_max_candidates` by
      default. Memory is O(N + H*W).
    batch_mode: "map" (`lax.map`, fastest on CPU) or "vmap" (accelerators).

  Returns:
    Fragments with (H, W) fields, or (B, H, W) for batched input.
  """
  vertices_clip = jnp.asarray(vertices_clip)
  triangles = jnp.asarray(triangles, jnp.int32)
  if vertices_clip.ndim not in (2, 3) or vertices_clip.shape[-1] != 4:
    raise ValueError(
      f"vertices_clip must have shape (V, 4) or (B, V, 4), got {vertices_clip.shape}"
    )
  if triangles.ndim != 2 or triangles.shape[-1] != 3:
    raise ValueError(f"triangles must have shape (F, 3), got {triangles.shape}")
  if len(image_size) != 2 or min(image_size) <= 0:
    raise ValueError(f"image_size must be (H, W) with positive entries, got {image_size}")
  image_size = (int(image_size[0]), int(image_size[1]))
  if max_candidates is None:
    max_candidates = default_max_candidates(image_size, triangles.shape[0])
  single = lambda clip: _rasterize_single(
    clip, triangles, image_size, cull_backfaces, int(max_candidates)
  )
  if vertices_clip.ndim == 2:
    return single(vertices_clip)
  if batch_mode == "map":
    return jax.lax.map(single, vertices_clip)
  if batch_mode == "vmap":
    return jax.vmap(single)(vertices_clip)
  raise ValueError(f"batch_mode must be 'map' or 'vmap', got {batch_mode!r}")


def candidate_count(
  vertices_clip: jax.Array,
  triangles: jax.Array,
  image_size: tuple[int, int],
  cull_backfaces: bool = False,
) -> jax.Array:
  """Candidates a (V, 4) mesh needs (the sum of its bounding boxes), for sizing buffers."""
  _, overflow = _visibility(
    jnp.asarray(vertices_clip),
    jnp.asarray(triangles, jnp.int32),
    tuple(image_size),
    cull_backfaces,
    1,
  )
  return overflow + 1
