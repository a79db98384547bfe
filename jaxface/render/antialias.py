"""Analytic antialiasing at silhouettes, which gives vertex gradients there.

A rasterized image is piecewise constant in the vertex positions at
silhouettes (a pixel is either covered or not), so its gradient there is 0.
In the spirit of nvdiffrast's `antialias`, this pass looks at every pair of
horizontally or vertically adjacent pixels whose triangle ids differ. When
the nearer pixel's triangle has a silhouette edge (a boundary edge, or one
shared with a triangle facing the other way) crossing the segment between the
two pixel centres at fraction t, and that triangle, extended, lies in front
of what the other pixel shows, the two colours are blended by how far the
edge reaches into the other pixel: the far pixel takes (t - 1/2) of the
near colour when t > 1/2, the near pixel takes (1/2 - t) of the far colour
otherwise. t depends on the edge's vertex positions, so silhouette vertices
get gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxface.render.rasterize import Fragments, clip_to_screen


def _edge_values(corners: jax.Array, px: jax.Array, py: jax.Array) -> jax.Array:
  """Edge functions (..., 3) of triangles `corners` (..., 3, >=2) at points.

  Edge k is the one opposite corner k.
  """
  values = []
  for k in range(3):
    a, b = (k + 1) % 3, (k + 2) % 3
    xa, ya = corners[..., a, 0], corners[..., a, 1]
    xb, yb = corners[..., b, 0], corners[..., b, 1]
    values.append((xb - xa) * (py - ya) - (yb - ya) * (px - xa))
  return jnp.stack(values, axis=-1)


def _pair_deltas(color, triangle_id, depth, screen, triangles, silhouette, axis):
  """Colour changes (near side, far side) for pixel pairs along `axis` with the near pixel first.

  Returns deltas for the first and second pixel of each pair, from the
  first pixel's triangle acting as occluder.
  """
  height, width = triangle_id.shape
  first = (slice(None), slice(0, width - 1)) if axis == 1 else (slice(0, height - 1), slice(None))
  second = (slice(None), slice(1, width)) if axis == 1 else (slice(1, height), slice(None))
  t_first, t_second = triangle_id[first], triangle_id[second]
  rows, cols = jnp.meshgrid(jnp.arange(height), jnp.arange(width), indexing="ij")
  px = cols[first].astype(screen.dtype) + 0.5
  py = rows[first].astype(screen.dtype) + 0.5
  qx = px + (1.0 if axis == 1 else 0.0)
  qy = py + (0.0 if axis == 1 else 1.0)
  corners = screen[triangles[jnp.maximum(t_first, 0)]]  # (..., 3, 4)
  area = _edge_values(corners, corners[..., 0, 0], corners[..., 0, 1])[..., 0]  # e_0 at corner 0
  orientation = jnp.sign(jax.lax.stop_gradient(area))
  at_p = _edge_values(corners, px, py) * orientation[..., None]  # >= 0 inside
  at_q = _edge_values(corners, qx, qy) * orientation[..., None]
  leaving = at_q < 0
  crossing = at_p / jnp.where(leaving, at_p - at_q, 1.0)  # fraction along p -> q
  crossing = jnp.where(leaving, crossing, jnp.inf)
  edge = jnp.argmin(jax.lax.stop_gradient(crossing), axis=-1)  # the first edge crossed
  t = jnp.take_along_axis(crossing, edge[..., None], axis=-1)[..., 0]
  is_silhouette = jnp.take_along_axis(
    silhouette[jnp.maximum(t_first, 0)], edge[..., None], axis=-1
  )[..., 0]
  # The occluder's plane at q must be nearer than what q shows.
  safe_area = jnp.where(area != 0, area, 1.0)
  weights_q = _edge_values(corners, qx, qy) / safe_area[..., None]
  depth_at_q = jnp.sum(weights_q * corners[..., 2], axis=-1)
  in_front = jax.lax.stop_gradient(depth_at_q) < depth[second]
  # Like nvdiffrast, an edge is handled only across the pixel pairs it cuts
  # most squarely: mostly-vertical edges by horizontal pairs and vice versa,
  # so no pixel is blended twice for one edge and t moves smoothly.
  start = jnp.take_along_axis(corners, ((edge + 1) % 3)[..., None, None], axis=-2)[..., 0, :]
  end = jnp.take_along_axis(corners, ((edge + 2) % 3)[..., None, None], axis=-2)[..., 0, :]
  along = jax.lax.stop_gradient(jnp.abs(end - start))
  squarely = along[..., 1] >= along[..., 0] if axis == 1 else along[..., 0] > along[..., 1]
  active = (
    (t_first >= 0)
    & (t_first != t_second)
    & jnp.any(leaving, axis=-1)
    & is_silhouette
    & in_front
    & squarely
  )
  active &= (t >= 0) & (t <= 1)
  t = jnp.where(active, t, 0.5)
  near, far = color[first], color[second]
  into_far = jnp.maximum(t - 0.5, 0.0)[..., None]
  into_near = jnp.maximum(0.5 - t, 0.0)[..., None]
  delta_far = jnp.where(active[..., None], into_far * (near - far), 0.0)
  delta_near = jnp.where(active[..., None], into_near * (far - near), 0.0)
  return delta_near, delta_far


def antialias(
  color: jax.Array,
  fragments: Fragments,
  vertices_clip: jax.Array,
  triangles: jax.Array,
  neighbors: jax.Array,
) -> jax.Array:
  """Blends colours across silhouette edges; (H, W, C) -> (H, W, C).

  Args:
    color: (H, W, C) shaded image (background included).
    fragments: its rasterization (unbatched).
    vertices_clip: (V, 4) the clip coordinates that were rasterized.
    triangles: (F, 3) vertex ids.
    neighbors: (F, 3) from `jaxface.geometry.triangle_neighbors`.
  """
  height, width = fragments.triangle_id.shape
  triangles = jnp.asarray(triangles, jnp.int32)
  neighbors = jnp.asarray(neighbors, jnp.int32)
  screen = jnp.stack(clip_to_screen(vertices_clip, (height, width)), axis=-1)  # (V, 4)
  triangle_id = jax.lax.stop_gradient(fragments.triangle_id)
  depth = jax.lax.stop_gradient(fragments.depth)
  corners = jax.lax.stop_gradient(screen)[triangles]  # (F, 3, 4)
  area = _edge_values(corners, corners[:, 0, 0], corners[:, 0, 1])[:, 0]
  front = area < 0
  neighbor_front = front[jnp.maximum(neighbors, 0)]
  silhouette = (neighbors < 0) | (neighbor_front != front[:, None])  # (F, 3)
  out = color
  for axis in (0, 1):
    for flip in (False, True):
      # Each pair is looked at from both sides: flipping puts the other
      # pixel first, so its triangle gets to be the occluder.
      c, tid, d = color, triangle_id, depth
      if flip:
        c, tid, d = jnp.flip(c, axis), jnp.flip(tid, axis), jnp.flip(d, axis)
      flipped_screen = screen
      if flip:
        size = (height, width)[axis]
        flipped_screen = screen.at[:, 1 - axis].set(size - screen[:, 1 - axis])
        # Mirroring reverses orientation: keep areas' signs meaningful via the
        # orientation factor inside _pair_deltas; silhouettes are unaffected.
      delta_near, delta_far = _pair_deltas(c, tid, d, flipped_screen, triangles, silhouette, axis)
      delta = jnp.zeros_like(c)
      if axis == 1:
        delta = delta.at[:, : width - 1].add(delta_near).at[:, 1:].add(delta_far)
      else:
        delta = delta.at[: height - 1].add(delta_near).at[1:].add(delta_far)
      out = out + (jnp.flip(delta, axis) if flip else delta)
  return out
