"""Interpolating vertex or corner attributes over rasterized fragments."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxface.render.rasterize import Fragments


def _interpolate_single(attributes, fragments: Fragments, index):
  corners = index[jnp.maximum(fragments.triangle_id, 0)]  # (H, W, 3)
  values = attributes[corners]  # (H, W, 3, C)
  out = jnp.einsum("hwk,hwkc->hwc", fragments.barycentric, values)
  return jnp.where(fragments.mask[..., None], out, 0.0)


def interpolate(attributes: jax.Array, fragments: Fragments, index: jax.Array) -> jax.Array:
  """Perspective-correct attribute images.

  Args:
    attributes: (A, C) values, or (B, A, C) per batch item.
    fragments: from `rasterize`, (H, W) or (B, H, W) fields.
    index: (F, 3) int ids into `attributes` for each triangle corner: the
      mesh's `triangles` for per-vertex attributes, or e.g. `triangle_uv`
      for per-corner ones (UVs that differ across a seam).

  Returns:
    (H, W, C) or (B, H, W, C), zero on background. Differentiable w.r.t.
    `attributes` and, through the barycentrics, the vertex positions.
  """
  attributes = jnp.asarray(attributes)
  index = jnp.asarray(index, jnp.int32)
  batched = fragments.triangle_id.ndim == 3
  if not batched:
    if attributes.ndim != 2:
      raise ValueError(
        f"attributes must have shape (A, C) for unbatched fragments, got {attributes.shape}"
      )
    return _interpolate_single(attributes, fragments, index)
  if attributes.ndim == 2:
    return jax.vmap(lambda f: _interpolate_single(attributes, f, index))(fragments)
  if attributes.ndim == 3 and attributes.shape[0] == fragments.triangle_id.shape[0]:
    return jax.vmap(lambda a, f: _interpolate_single(a, f, index))(attributes, fragments)
  raise ValueError(
    f"attributes must have shape (A, C) or (B, A, C) with B={fragments.triangle_id.shape[0]}, "
    f"got {attributes.shape}"
  )
