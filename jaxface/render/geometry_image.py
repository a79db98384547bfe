"""The geometry-mapping layer (decoupled-GAN paper, sec. 4.1, eq. 5).

Precomputed once from a UV map: for every pixel of an n x n image, the UV
triangle containing the pixel centre, its three vertex ids and the pixel's
barycentrics (pixels outside the chart are masked). The layer is then

    I = I^U * v1 + I^V * v2 + (1 - I^U - I^V) * v3            (eq. 5)

a gather and two multiply-adds, differentiable w.r.t. the vertices.

Seams: the lookup runs on per-corner UVs (`triangle_uv`) but gathers 3D
vertices through `triangles`, so a chart cut along a seam (the ICT face
area has 138 seam vertices) is handled: both sides of the cut read the same
3D vertices, and the image shows the two sides of the seam where the chart
puts them. The ICT narrow face and the procedural grid have no seam.
The image follows the UV convention: row 0 is v near 1 (top).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxface.geometry.uv import uv_texel_lookup


class GeometryImageLookup(NamedTuple):
  """The precomputed tables (a pytree of arrays).

  Attributes:
    vertex_ids: (n, n, 3) int32 (v1, v2, v3) of each pixel's triangle; 0 outside.
    barycentric: (n, n, 2) float32 (I^U, I^V) weights of v1 and v2.
    mask: (n, n) bool, pixels inside the chart.
  """

  vertex_ids: jax.Array
  barycentric: jax.Array
  mask: jax.Array


def geometry_image_lookup(
  triangles: np.ndarray, uv: np.ndarray, triangle_uv: np.ndarray, size: int = 64
) -> GeometryImageLookup:
  """Builds the per-pixel tables for an n x n geometry image (host, once)."""
  triangle_id, barycentric = uv_texel_lookup(uv, triangle_uv, (size, size))
  mask = triangle_id >= 0
  vertex_ids = np.asarray(triangles)[np.maximum(triangle_id, 0)]
  vertex_ids = np.where(mask[..., None], vertex_ids, 0)
  return GeometryImageLookup(
    vertex_ids=jnp.asarray(vertex_ids, jnp.int32),
    barycentric=jnp.asarray(barycentric[..., :2], jnp.float32),
    mask=jnp.asarray(mask),
  )


def geometry_image(vertices: jax.Array, lookup: GeometryImageLookup) -> jax.Array:
  """Maps vertices (..., V, 3) to a geometry image (..., n, n, 3); zero outside the chart."""
  vertices = jnp.asarray(vertices)
  if vertices.shape[-1] != 3:
    raise ValueError(f"vertices must have shape (..., V, 3), got {vertices.shape}")
  v1, v2, v3 = (jnp.take(vertices, lookup.vertex_ids[..., k], axis=-2) for k in range(3))
  weight_u = lookup.barycentric[..., 0:1]  # I^U
  weight_v = lookup.barycentric[..., 1:2]  # I^V
  image = v3 + weight_u * (v1 - v3) + weight_v * (v2 - v3)  # eq. 5 as two FMAs
  return jnp.where(lookup.mask[..., None], image, 0.0)
